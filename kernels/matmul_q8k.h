// Scalar reference for K-quant weights (Q4_K, Q5_K, Q6_K) times activations quantized to
// q8_K: the exact integer-then-float arithmetic the fast kernels in kernels/cpu/matmul_kquant.*
// perform, so they can be compared bit for bit (see "The fixed arithmetic" below).
//
// Activations: each row of k floats (k a multiple of 256) becomes k / 256 q8_K blocks, rounded as
// GGUF's quantize_row_q8_K reference does: per block, max = the first element of largest
// magnitude, iscale = -127 / max, q = min(127, round-half-even(iscale * x)), d = 1 / iscale,
// bsums[g] = sum of q over elements 16g .. 16g + 15. An all-zero block gives d = 0, q = 0.
// Activations must be finite; a non-finite value gives an unspecified (never crashing) result.
//
// The fixed arithmetic, per output y[i][j], over the 256-element blocks b = 0, 1, ... in order:
//   integer part (exact, int32, order irrelevant):
//     Q4_K/Q5_K: S = sum_s sc[s] * sum_{e in sub-block s} q[e] * a[e]          (8 sub-blocks of 32)
//                M = sum_s mn[s] * (bsums[2s] + bsums[2s + 1])
//     Q6_K:      S = sum_s sc[s] * (sum_{e in s} q[e] * a[e] - 32 * bsums[s])  (16 sub-blocks of 16,
//                q in [0, 64) before the -32 offset)
//   float part (f32, each step rounded once; fma = fused multiply-add):
//     acc = fma(d_w * d_a, float(S), acc)
//     Q4_K/Q5_K only: acc = fma(-(dmin_w * d_a), float(M), acc)
//   then y = acc + bias[j] (or y = acc without a bias). acc starts at +0.
// d_w, dmin_w are the weight block's f16 scales widened to f32, d_a the activation block's d.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"

namespace llmos::kernels {

inline constexpr int kQ8KBlockSize = 256;

struct Q8KBlock {
  float d = 0.0f;
  int8_t qs[kQ8KBlockSize] = {};
  int16_t bsums[kQ8KBlockSize / 16] = {};
};

// Quantizes x[0..k) (k a multiple of 256) into k / 256 blocks.
void quantize_row_q8k_ref(const float* x, int64_t k, Q8KBlock* out);

// True for the weight dtypes this reference (and the fast kernels) handle: Q4_K, Q5_K, Q6_K.
bool q8k_weight_supported(DType dtype);

// acc (no bias) for one GGUF weight row against nblocks activation blocks.
float dot_kquant_q8k_ref(DType weight_dtype, const uint8_t* w_row, const Q8KBlock* act,
                         int64_t nblocks);

// y[i][j] for rows i < m and columns j in [n_begin, n_end): W rows are GGUF rows row_bytes apart,
// activation row i is act[i * (k / 256) ...]. kInvalidArgument for bad shapes or pointers,
// kUnsupported for other weight dtypes.
StatusCode matmul_q8k_ref(DType weight_dtype, const void* w, int64_t row_bytes, int64_t k,
                          const float* bias, const Q8KBlock* act, int64_t m, float* y,
                          int64_t y_stride, int64_t n_begin, int64_t n_end);

}  // namespace llmos::kernels
