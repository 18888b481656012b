// The per-block arithmetic of the CUDA q8 GEMV (gemv_q8_cuda.h), written once for host and
// device so the CPU tests can prove it against kernels::quantize_row_q8_act and
// kernels::matmul_q8_ref (the "q8 math" of kernels/matmul_q8.h) on a machine without a GPU:
//   - activation quantization: d = amax / 127 in f32, codes round(x * (1 / d)) half away from
//     zero, clamped as the CPU reference clamps them;
//   - weight code words: the 32 codes of a Q4_0 / Q8_0 block as 8 little-endian 32-bit words
//     lined up with the activation words (Q4_0 nibbles unsigned, 0..15);
//   - the exact integer block dot product (dp4a) and its -8 * sum correction for Q4_0;
//   - the f32 combine acc = fma(d_w * d_x, (float)isum, acc), d_w * d_x rounded on its own.
// Every multiply that must round on its own is written with __fmul_rn / __fdiv_rn on the device
// (nvcc contracts a * b + c into an FMA by default) and is a plain statement on the host (no
// add follows it there, so no contraction can apply).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "core/half.h"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif
#include "kernels/cuda/host_device.h"

namespace llmos::kernels::cuda {

inline constexpr int kQ8Block = 32;    // values per activation / weight block
inline constexpr int kQ8Words = 8;     // 32-bit code words per block
inline constexpr int kQ4_0Bytes = 18;  // f16 d + 16 bytes of nibbles
inline constexpr int kQ8_0Bytes = 34;  // f16 d + 32 int8

// One block of 32 quantized activations on the device: x[t] ~= d * code t, code t is byte t % 4
// of qs[t / 4] (little-endian, so a word feeds __dp4a directly). 48 bytes and 16-byte aligned so
// a kernel reads a block with three 16-byte loads.
struct alignas(16) Q8ActBlockCuda {
  int32_t qs[kQ8Words];
  float d;
  int32_t sum;  // sum of the 32 codes
  int32_t pad[2];
};
static_assert(sizeof(Q8ActBlockCuda) == 48);

// ---- activation quantization -------------------------------------------------------------------

// max(amax, |x|), NaN-ignoring as std::fmax; max is exact, so any order of the 32 steps gives
// the same amax (which is what lets the device reduce it across a warp).
LLMOS_HD inline float amax_step(float amax, float x) {
#if defined(__CUDA_ARCH__)
  return fmaxf(amax, fabsf(x));
#else
  return std::fmax(amax, std::fabs(x));
#endif
}

// d = amax / 127 rounded once.
LLMOS_HD inline float act_scale(float amax) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(amax, 127.0f);
#else
  return amax / 127.0f;
#endif
}

// 1 / d rounded once, 0 for d == 0 (an all-zero block).
LLMOS_HD inline float act_inv_scale(float d) {
#if defined(__CUDA_ARCH__)
  return d != 0.0f ? __fdiv_rn(1.0f, d) : 0.0f;
#else
  return d != 0.0f ? 1.0f / d : 0.0f;
#endif
}

// The code of x: x * id rounded on its own, then rounded half away from zero into [-128, 127];
// NaN gives -128, as the CPU reference (and its SIMD saturating pack) does.
LLMOS_HD inline int act_code(float x, float id) {
#if defined(__CUDA_ARCH__)
  const float v = __fmul_rn(x, id);
#else
  const float v = x * id;
#endif
  if (!(v > -128.0f)) return -128;
  if (v >= 127.0f) return 127;
#if defined(__CUDA_ARCH__)
  return static_cast<int>(roundf(v));
#else
  return static_cast<int>(std::round(v));
#endif
}

// Quantizes 32 values serially (the host's way; the device kernel computes the same amax with a
// warp reduction and the same codes per lane from these functions).
LLMOS_HD inline void quantize_act_block(const float* x, Q8ActBlockCuda* out) {
  float amax = 0.0f;
  for (int t = 0; t < kQ8Block; ++t) amax = amax_step(amax, x[t]);
  const float d = act_scale(amax);
  const float id = act_inv_scale(d);
  int32_t sum = 0;
  for (int w = 0; w < kQ8Words; ++w) {
    uint32_t word = 0;
    for (int i = 0; i < 4; ++i) {
      const int q = act_code(x[4 * w + i], id);
      sum += q;
      word |= (static_cast<uint32_t>(q) & 0xFFu) << (8 * i);
    }
    out->qs[w] = static_cast<int32_t>(word);
  }
  out->d = d;
  out->sum = sum;
  out->pad[0] = out->pad[1] = 0;
}

// ---- integer dot product -----------------------------------------------------------------------

// Sum of the four signed byte products of a and b, plus c (exact in int32 for block sums).
LLMOS_HD inline int32_t dp4a(int32_t a, int32_t b, int32_t c) {
#if defined(__CUDA_ARCH__)
  return __dp4a(a, b, c);
#else
  for (int i = 0; i < 4; ++i) {
    const auto ab = static_cast<int8_t>(static_cast<uint32_t>(a) >> (8 * i));
    const auto bb = static_cast<int8_t>(static_cast<uint32_t>(b) >> (8 * i));
    c += static_cast<int32_t>(ab) * static_cast<int32_t>(bb);
  }
  return c;
#endif
}

// ---- weight blocks -----------------------------------------------------------------------------
// GGUF blocks of 18 / 34 bytes leave a row only 2-byte aligned (row and block offsets are even,
// the callers check the base). The code bytes of a block are read as 4-byte words from the
// 4-byte aligned address at or below them, shifted into place when they sit 2 bytes off, so a
// block costs 4 (Q4_0) / 8 (Q8_0) word loads and one 2-byte tail load instead of 8 / 16 2-byte
// loads. Every byte read lies inside the block: the aligned-down start is the block's own scale.

LLMOS_HD inline uint32_t load_u16(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(reinterpret_cast<const unsigned short*>(p));
#else
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
#endif
}

// A 4-byte aligned word.
LLMOS_HD inline uint32_t load_u32_aligned(const uint8_t* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(reinterpret_cast<const unsigned int*>(p));
#else
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
#endif
}

// Bits shift .. shift + 31 of hi:lo (shift is 0 or 16).
LLMOS_HD inline uint32_t funnel_right(uint32_t lo, uint32_t hi, uint32_t shift) {
#if defined(__CUDA_ARCH__)
  return __funnelshift_r(lo, hi, shift);
#else
  return static_cast<uint32_t>(((static_cast<uint64_t>(hi) << 32) | lo) >> shift);
#endif
}

// Bytes p[0 .. 4 * W) (p 2-byte aligned) as W little-endian words.
template <int W>
LLMOS_HD inline void load_code_words(const uint8_t* p, uint32_t out[W]) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(p);
  const uint32_t shift = static_cast<uint32_t>(addr & 2u) * 8u;  // 0 or 16
  const uint8_t* base = p - (addr & 2u);
  uint32_t a[W + 1];
  for (int j = 0; j < W; ++j) a[j] = load_u32_aligned(base + 4 * j);
  // Aligned codes need no tail; the load then rereads the last code pair instead of running
  // past the block.
  a[W] = load_u16(shift != 0 ? base + 4 * W : base + 4 * W - 2);
  for (int j = 0; j < W; ++j) out[j] = funnel_right(a[j], a[j + 1], shift);
}

LLMOS_HD inline float f16_bits_to_f32(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
#else
  return f16_to_f32(static_cast<uint16_t>(bits));
#endif
}

// Block `b` of a GGUF row (2-byte aligned): its codes as 8 words lined up with
// Q8ActBlockCuda::qs, and its scale. Q4_0: element t < 16 is the low nibble of qs[t], element
// 16 + t the high one, so word j holds the low nibbles of bytes 4j..4j+3 and word 4 + j their
// high nibbles, as unsigned 0..15 (the -8 goes into block_isum). Q8_0: the 32 int8 codes.
template <DType DT>
LLMOS_HD inline float load_weight_block(const uint8_t* row, int64_t b, int32_t w[kQ8Words]) {
  static_assert(DT == DType::kQ4_0 || DT == DType::kQ8_0, "q8 GEMV serves Q4_0 and Q8_0");
  if constexpr (DT == DType::kQ4_0) {
    const uint8_t* blk = row + b * kQ4_0Bytes;
    uint32_t raw[4];
    load_code_words<4>(blk + 2, raw);
    for (int j = 0; j < 4; ++j) {
      w[j] = static_cast<int32_t>(raw[j] & 0x0F0F0F0Fu);
      w[4 + j] = static_cast<int32_t>((raw[j] >> 4) & 0x0F0F0F0Fu);
    }
    return f16_bits_to_f32(load_u16(blk));
  } else {
    const uint8_t* blk = row + b * kQ8_0Bytes;
    uint32_t raw[kQ8Words];
    load_code_words<kQ8Words>(blk + 2, raw);
    for (int j = 0; j < kQ8Words; ++j) w[j] = static_cast<int32_t>(raw[j]);
    return f16_bits_to_f32(load_u16(blk));
  }
}

// The exact integer dot product of one weight block with one activation block:
// sum_t q_w[t] * q_x[t], q_w = nibble - 8 for Q4_0 (sum of nibble * q_x, minus 8 * sum q_x).
template <DType DT>
LLMOS_HD inline int32_t block_isum(const int32_t w[kQ8Words], const int32_t x[kQ8Words],
                                   int32_t x_sum) {
  int32_t isum = 0;
  for (int j = 0; j < kQ8Words; ++j) isum = dp4a(w[j], x[j], isum);
  if constexpr (DT == DType::kQ4_0) isum -= 8 * x_sum;
  return isum;
}

// acc + (d_w * d_x) * isum: the product of the scales rounded on its own, then one FMA.
LLMOS_HD inline float accumulate_block(float acc, float d_w, float d_x, int32_t isum) {
#if defined(__CUDA_ARCH__)
  return fmaf(__fmul_rn(d_w, d_x), __int2float_rn(isum), acc);
#else
  const float scale = d_w * d_x;
  return std::fma(scale, static_cast<float>(isum), acc);
#endif
}

#if defined(__CUDACC__)
// One q8 block of 32 values quantized by a warp, lane t holding value t: max is exact in any
// order, so the warp's fmaxf tree gives the amax of the host's serial loop, and d, 1 / d and the
// codes come from the functions above: the block is bit-identical to quantize_row_q8_act's.
// Every lane of the warp must call it.
__device__ inline void q8_quantize_warp(float v, int lane, Q8ActBlockCuda* o) {
  float amax = amax_step(0.0f, v);  // NaN counts as 0, as in the host's fmax chain
  for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  const float d = act_scale(amax);
  const int q = act_code(v, act_inv_scale(d));
  uint32_t word = (static_cast<uint32_t>(q) & 0xFFu) << (8 * (lane % 4));
  word |= __shfl_xor_sync(0xffffffffu, word, 1);
  word |= __shfl_xor_sync(0xffffffffu, word, 2);
  int sum = q;
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (lane % 4 == 0) o->qs[lane / 4] = static_cast<int32_t>(word);
  if (lane == 0) {
    o->d = d;
    o->sum = sum;
    o->pad[0] = 0;
    o->pad[1] = 0;
  }
}
#endif

}  // namespace llmos::kernels::cuda
