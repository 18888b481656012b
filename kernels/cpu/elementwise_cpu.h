// Fast row-wise ops of the transformer block on the CPU: RMSNorm and SwiGLU at the active ISA.
// The scalar references (kernels/norm.h, kernels/activation.h) are the oracles:
//   rms_norm_row_cpu: the same double-precision arithmetic as rms_norm_ref (sum of squares in
//     double, x * inv * weight in double, one rounding), only the summation order differs, so a
//     result is within 1 ulp of the reference.
//   swiglu_cpu: float arithmetic with a vectorized exp (a degree-6 polynomial on the reduced
//     argument, < 2 ulp), so silu(g) * u is within a few ulp of swiglu_ref's double result.
// Both are per element / per row, hence batch-invariant. Isa::kScalar runs the references.
#pragma once

#include <cstdint>

#include "kernels/cpu/isa.h"

namespace llmos::kernels::cpu {

// y = x / sqrt(mean(x^2) + eps) * weight for one row of `dim` floats (y may alias x).
void rms_norm_row_cpu(Isa isa, const float* x, const float* weight, float* y, int64_t dim,
                      float eps);

// out[i] = silu(gate[i]) * up[i] for i in [0, n) (out may alias gate or up).
void swiglu_cpu(Isa isa, const float* gate, const float* up, float* out, int64_t n);

// y[i] += x[i] for i in [0, n).
void add_cpu(Isa isa, float* y, const float* x, int64_t n);

namespace detail {
// ISA entry points (call only when the ISA is supported).
void rms_norm_row_avx512(const float* x, const float* weight, float* y, int64_t dim, float eps);
void swiglu_avx512(const float* gate, const float* up, float* out, int64_t n);
void add_avx512(float* y, const float* x, int64_t n);
void rms_norm_row_avx2(const float* x, const float* weight, float* y, int64_t dim, float eps);
void swiglu_avx2(const float* gate, const float* up, float* out, int64_t n);
void add_avx2(float* y, const float* x, int64_t n);
}  // namespace detail

}  // namespace llmos::kernels::cpu
