// Rotary embedding from a precomputed cos/sin table (rope_cos_sin_table in attention_cpu.h).
// The angles depend only on the positions, which every layer of a step shares, so the backend
// computes the table once per step instead of heads x layers times. The rotation is rope_ref's
// double-precision arithmetic on the same cos/sin values: bit-identical to rope_ref.
#pragma once

#include <cstdint>

#include "core/error.h"
#include "kernels/rope.h"

namespace llmos::kernels::cpu {

// Rows [row_begin, row_end) of p.x; cos_sin is [p.rows][p.rot_dim / 2][2] {cos, sin}, already
// scaled by attn_factor (p.positions, p.inv_freq and p.attn_factor are not read).
StatusCode rope_rows_cpu(const RopeParams& p, const double* cos_sin, int64_t row_begin,
                         int64_t row_end);

}  // namespace llmos::kernels::cpu
