// Elementwise ops of the feed-forward block and the residual stream.
#pragma once

#include <cstdint>

#include "core/error.h"

namespace llmos::kernels {

// out[i] = silu(gate[i]) * up[i] = gate / (1 + exp(-gate)) * up, for i in [begin, end).
// out may alias gate or up.
StatusCode swiglu_ref(const float* gate, const float* up, float* out, int64_t begin, int64_t end);

// y[i] += x[i] for i in [begin, end) (the residual add).
StatusCode add_inplace_ref(float* y, const float* x, int64_t begin, int64_t end);

}  // namespace llmos::kernels
