// Exact scalar references of the math the fast CPU matmul kernels do (kernels/cpu/matmul_cpu.h),
// so every SIMD path is compared with them bit for bit, not just within a tolerance.
// (kernels::matmul_ref, the f64 dequantize-and-dot oracle, stays the accuracy reference.)
//
// Q4_0 / Q8_0 weights ("q8 math"): each activation row is quantized on the fly into blocks of 32
// int8 values with an f32 scale, rounded as GGUF's q8_0 reference quantizer does (d = amax / 127,
// q = x / d rounded half away from zero) but with d kept in f32. Per block b the integer dot
// product isum_b = sum_t qw[t] * qx[t] is exact (qw = nibble - 8 for Q4_0, the int8 for Q8_0), and
// the blocks are combined in block order in f32 as
//     acc = fma(d_w * d_x, (float)isum_b, acc)        (acc starts at +0; y = acc + bias)
// d_w * d_x is rounded on its own; the fma rounds once. SIMD kernels vectorise across output
// columns (one lane per weight row), so each lane performs exactly this sequence.
//
// F32 / F16 / BF16 weights ("fp32 chain"): one fp32 accumulator per output, t = 0 .. k-1 in order:
//     F32, F16:  acc = fma(w[t], x[t], acc)             (w exactly converted from f16)
//     BF16:      x rounded to bf16 first (as GGUF runtimes do, and as vdpbf16ps needs); per pair
//                p: acc = fma(w[2p+1], xb[2p+1], acc); acc = fma(w[2p], xb[2p], acc) — the order
//                and rounding of vdpbf16ps (the bf16 x bf16 products are exact in f32); an odd k
//                is padded with one zero weight and zero activation. vdpbf16ps also flushes
//                subnormal inputs and results to zero, so it matches this only for normal data.
//     y = acc + bias.
// One sequential chain per output (no partial sums) is what makes the kernels batch invariant:
// the same operations run whether a row is computed alone or inside a tile of many rows.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/matmul.h"

namespace llmos::kernels {

inline constexpr int kQ8ActBlockSize = 32;

// One block of 32 quantized activations: x[t] ~= d * qs[t], and sum = sum of qs. The SIMD
// kernels multiply unsigned weight bytes (Q4_0 nibble = q + 8, Q8_0 code stored as q + 128) by
// signed activation bytes (vpdpbusd), so the exact block sum is that dot product minus 8 * sum or
// 128 * sum; the negated products are kept too so a kernel starts its integer accumulator from
// them with one broadcast load. 48 bytes, 16-byte aligned.
struct Q8ActBlock {
  int8_t qs[kQ8ActBlockSize];
  float d;
  int32_t sum;
  int32_t neg_sum8;    // -8 * sum
  int32_t neg_sum128;  // -128 * sum
};
static_assert(sizeof(Q8ActBlock) == 48);

// Quantizes x[0 .. k) (k a multiple of 32) into k / 32 blocks. Non-finite inputs give codes
// clamped to [-127, 127] (garbage in, garbage out, but no undefined behaviour).
void quantize_row_q8_act(const float* x, int64_t k, Q8ActBlock* out);

struct MatmulQ8Params {
  const void* weight = nullptr;  // n GGUF rows of Q4_0 or Q8_0, weight_row_bytes apart
  DType weight_dtype = DType::kQ8_0;
  int64_t weight_row_bytes = 0;
  const float* bias = nullptr;      // [n] or null
  const Q8ActBlock* act = nullptr;  // [m][k / 32] blocks, row i at act + i * (k / 32)
  float* y = nullptr;               // [m, n], row stride y_stride floats
  int64_t y_stride = 0;
  int64_t m = 0, n = 0, k = 0;
};

// Output columns [n_begin, n_end) for all m rows, by the q8 math above.
StatusCode matmul_q8_ref(const MatmulQ8Params& p, int64_t n_begin, int64_t n_end);

// Output columns [n_begin, n_end) for all m rows of an F32, F16 or BF16 weight (MatmulParams as
// for matmul_ref), by the fp32 chain above. Needs no scratch.
StatusCode matmul_fp_chain_ref(const MatmulParams& p, int64_t n_begin, int64_t n_end);

}  // namespace llmos::kernels
