// The per-block arithmetic of the CUDA K-quant GEMV (gemv_q8k_cuda.h), written once for host and
// device so the CPU tests can prove it against kernels::quantize_row_q8k_ref and
// kernels::dot_kquant_q8k_ref (kernels/matmul_q8k.h) on a machine without a GPU:
//   - q8_K activation quantization: max = the first element of largest magnitude, iscale =
//     -127 / max, codes min(127, round-half-even(iscale * x)), d = 1 / iscale, 16-value bsums;
//   - a 256-value weight block split into four parts of 64 values, one per thread of a quad:
//     the part's code words from a 2-byte-aligned block, its 6-bit (Q4_K/Q5_K) or int8 (Q6_K)
//     sub-block scales, and its exact integer share of S and M;
//   - the f32 steps per block: acc = fma(d_w * d_a, S, acc), then for Q4_K/Q5_K
//     acc = fma(-(dmin_w * d_a), M, acc), each product rounded on its own.
// The integer S and M of a block are the sums of the four parts' shares (exact in int32 in any
// order), so the f32 steps see exactly the reference's integers.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "kernels/cuda/q8_block_math.cuh"  // dp4a, load_code_words, load_u16, f16_bits_to_f32

#include "kernels/cuda/host_device.h"

namespace llmos::kernels::cuda {

inline constexpr int kQ8KBlock = 256;   // values per q8_K activation / K-quant weight block
inline constexpr int kQ8KWords = 64;    // 32-bit code words per activation block
inline constexpr int kKParts = 4;       // threads (parts of 64 values) per weight block
inline constexpr int kKPartWords = 16;  // activation / weight code words per part
inline constexpr int kQ4KBytes = 144;
inline constexpr int kQ5KBytes = 176;
inline constexpr int kQ6KBytes = 210;

// One q8_K block on the device: code t is byte t % 4 of qs[t / 4]; bsums[g] = sum of codes
// 16g .. 16g + 15. 304 bytes, 16-byte aligned: a part's 16 code words are four 16-byte loads.
struct alignas(16) Q8KActBlockCuda {
  int32_t qs[kQ8KWords];
  int16_t bsums[kQ8KBlock / 16];
  float d;
  int32_t pad[3];
};
static_assert(sizeof(Q8KActBlockCuda) == 304);

LLMOS_HD constexpr int kquant_block_bytes(DType dt) {
  return dt == DType::kQ4_K ? kQ4KBytes : dt == DType::kQ5_K ? kQ5KBytes : kQ6KBytes;
}

// ---- activation quantization -------------------------------------------------------------------

// The running "first element of largest magnitude": (amax, max, idx) takes candidate (ax, x, i)
// only when ax is strictly larger, or equal with a smaller index (the second case only arises
// when the device merges lanes; the serial scan visits indices in order). NaN never wins.
struct Q8KMax {
  float amax;
  float max;
  int idx;
};

LLMOS_HD inline Q8KMax q8k_max_merge(Q8KMax a, Q8KMax b) {
  if (b.amax > a.amax || (b.amax == a.amax && b.idx < a.idx)) return b;
  return a;
}

LLMOS_HD inline float q8k_abs(float x) {
#if defined(__CUDA_ARCH__)
  return fabsf(x);
#else
  return std::fabs(x);
#endif
}

// iscale = -127 / max rounded once (max != 0).
LLMOS_HD inline float q8k_iscale(float max) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(-127.0f, max);
#else
  return -127.0f / max;
#endif
}

// d = 1 / iscale rounded once.
LLMOS_HD inline float q8k_scale(float iscale) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(1.0f, iscale);
#else
  return 1.0f / iscale;
#endif
}

// min(127, round-half-even(iscale * x)), the product rounded on its own. The reference rounds
// through the float adder (x + 1.5 * 2^23), which is round-half-even for |v| < 2^22; |v| <= 127
// here for finite inputs. Non-finite inputs give an unspecified code (never undefined behaviour).
LLMOS_HD inline int q8k_code(float x, float iscale) {
#if defined(__CUDA_ARCH__)
  const int v = __float2int_rn(__fmul_rn(iscale, x));
#else
  const float p = iscale * x;
  if (!(std::fabs(p) < 4194304.0f)) return 0;
  const int v = static_cast<int>(std::nearbyint(p));
#endif
  return v < 127 ? v : 127;
}

// Quantizes 256 values serially (the host's way; the device kernel merges per-lane maxima with
// q8k_max_merge and computes the same codes per lane from these functions).
LLMOS_HD inline void quantize_q8k_block(const float* x, Q8KActBlockCuda* out) {
  Q8KMax m{0.0f, 0.0f, 0};
  for (int t = 0; t < kQ8KBlock; ++t) m = q8k_max_merge(m, Q8KMax{q8k_abs(x[t]), x[t], t});
  for (int g = 0; g < kQ8KBlock / 16; ++g) out->bsums[g] = 0;
  out->pad[0] = out->pad[1] = out->pad[2] = 0;
  if (m.amax == 0.0f) {
    for (int w = 0; w < kQ8KWords; ++w) out->qs[w] = 0;
    out->d = 0.0f;
    return;
  }
  const float iscale = q8k_iscale(m.max);
  for (int w = 0; w < kQ8KWords; ++w) {
    uint32_t word = 0;
    for (int i = 0; i < 4; ++i) {
      const int q = q8k_code(x[4 * w + i], iscale);
      out->bsums[(4 * w + i) / 16] = static_cast<int16_t>(out->bsums[(4 * w + i) / 16] + q);
      word |= (static_cast<uint32_t>(q) & 0xFFu) << (8 * i);
    }
    out->qs[w] = static_cast<int32_t>(word);
  }
  out->d = q8k_scale(iscale);
}

// ---- activation parts --------------------------------------------------------------------------
// Part p (0..3) of a block, as the weight part p of the same dtype sees it:
//   Q4_K/Q5_K: values 64p .. 64p + 63 (sub-blocks 2p, 2p + 1): words 16p .. 16p + 15;
//     bs[j] = bsums[4p + j].
//   Q6_K: half h = p / 2, kk = p % 2: values 128h + 32kk + l and 128h + 32(kk + 2) + l,
//     l < 32 (sub-blocks 8h + 2kk, +1, +4, +5): words 32h + 8kk .. +7, then 32h + 8kk + 16 .. +7;
//     bs[j] = bsums of those four sub-blocks in that order.
struct Q8KActPart {
  int32_t x[kKPartWords];
  int32_t bs[4];
  float d;
};

template <DType DT>
LLMOS_HD inline int q8k_part_word(int p, int j) {
  if constexpr (DT == DType::kQ6_K) {
    return 32 * (p / 2) + 8 * (p % 2) + (j < 8 ? j : j + 8);
  } else {
    return 16 * p + j;
  }
}

template <DType DT>
LLMOS_HD inline int q8k_part_bsum(int p, int j) {
  if constexpr (DT == DType::kQ6_K) {
    return 8 * (p / 2) + 2 * (p % 2) + (j < 2 ? j : j + 2);
  } else {
    return 4 * p + j;
  }
}

template <DType DT>
LLMOS_HD inline void load_act_part(const Q8KActBlockCuda* a, int p, Q8KActPart* out) {
#if defined(__CUDA_ARCH__)
  // Both layouts are two runs of 8 words starting at a multiple of 8 words: four 16-byte loads.
  const int4* q = reinterpret_cast<const int4*>(a->qs);
  const int w0 = q8k_part_word<DT>(p, 0) / 4, w1 = q8k_part_word<DT>(p, 8) / 4;
  const int4 v0 = __ldg(q + w0), v1 = __ldg(q + w0 + 1), v2 = __ldg(q + w1), v3 = __ldg(q + w1 + 1);
  out->x[0] = v0.x, out->x[1] = v0.y, out->x[2] = v0.z, out->x[3] = v0.w;
  out->x[4] = v1.x, out->x[5] = v1.y, out->x[6] = v1.z, out->x[7] = v1.w;
  out->x[8] = v2.x, out->x[9] = v2.y, out->x[10] = v2.z, out->x[11] = v2.w;
  out->x[12] = v3.x, out->x[13] = v3.y, out->x[14] = v3.z, out->x[15] = v3.w;
  for (int j = 0; j < 4; ++j) out->bs[j] = __ldg(a->bsums + q8k_part_bsum<DT>(p, j));
  out->d = __ldg(&a->d);
#else
  for (int j = 0; j < kKPartWords; ++j) out->x[j] = a->qs[q8k_part_word<DT>(p, j)];
  for (int j = 0; j < 4; ++j) out->bs[j] = a->bsums[q8k_part_bsum<DT>(p, j)];
  out->d = a->d;
#endif
}

// ---- weight parts ------------------------------------------------------------------------------

// The 6-bit scale and min of sub-block j from the 12 packed bytes held as 3 little-endian
// words (k4_get_scale_min of the CPU code).
LLMOS_HD inline uint32_t k4_scale_byte(const uint32_t sw[3], int i) {
  return (sw[i / 4] >> (8 * (i % 4))) & 0xFFu;
}

LLMOS_HD inline void k4_scale_min(const uint32_t sw[3], int j, int32_t* sc, int32_t* mn) {
  if (j < 4) {
    *sc = static_cast<int32_t>(k4_scale_byte(sw, j) & 63u);
    *mn = static_cast<int32_t>(k4_scale_byte(sw, j + 4) & 63u);
  } else {
    *sc = static_cast<int32_t>((k4_scale_byte(sw, j + 4) & 0x0Fu) | ((k4_scale_byte(sw, j - 4) >> 6) << 4));
    *mn = static_cast<int32_t>((k4_scale_byte(sw, j + 4) >> 4) | ((k4_scale_byte(sw, j) >> 6) << 4));
  }
}

// Part p of a weight block: 16 code words lined up with Q8KActPart::x (unsigned codes: 0..15
// Q4_K, 0..31 Q5_K, 0..63 Q6_K before its -32), and the scales of the part's sub-blocks:
//   Q4_K/Q5_K: words 0..7 are sub-block 2p (sc[0], mn[0]), 8..15 sub-block 2p + 1 (sc[1], mn[1]);
//   Q6_K: words 4s .. 4s + 3 are the sub-block with the int8 scale sc[s], s < 4.
struct KWeightPart {
  int32_t w[kKPartWords];
  int32_t sc[4];
  int32_t mn[2];
  float d;
  float dmin;
};

template <DType DT>
LLMOS_HD inline void load_weight_part(const uint8_t* blk, int p, KWeightPart* out) {
  static_assert(DT == DType::kQ4_K || DT == DType::kQ5_K || DT == DType::kQ6_K,
                "K-quant GEMV serves Q4_K, Q5_K and Q6_K");
  if constexpr (DT == DType::kQ6_K) {
    // ql[128] qh[64] scales[16] d. Low nibbles of ql[64h + 32kk + l] are values k = kk, the
    // high ones k = kk + 2; bits 2k, 2k + 1 of qh[32h + l] are their top bits. ql starts the
    // block, so for a block 2 bytes off a word load_code_words also reads the 2 bytes before
    // it (the previous block's or row's: the caller keeps the tensor's base 4-byte aligned).
    const int h = p / 2, kk = p % 2;
    uint32_t ql[8], qh[8];
    load_code_words<8>(blk + 64 * h + 32 * kk, ql);
    load_code_words<8>(blk + 128 + 32 * h, qh);
    for (int j = 0; j < 8; ++j) {
      const uint32_t hi_lo = (qh[j] >> (2 * kk)) & 0x03030303u;
      const uint32_t hi_hi = (qh[j] >> (2 * (kk + 2))) & 0x03030303u;
      out->w[j] = static_cast<int32_t>((ql[j] & 0x0F0F0F0Fu) | (hi_lo << 4));
      out->w[8 + j] = static_cast<int32_t>(((ql[j] >> 4) & 0x0F0F0F0Fu) | (hi_hi << 4));
    }
    // Scales 8h + 2kk, +1 and 8h + 2kk + 4, +5: two even-offset byte pairs.
    const uint32_t s01 = load_u16(blk + 192 + 8 * h + 2 * kk);
    const uint32_t s45 = load_u16(blk + 192 + 8 * h + 2 * kk + 4);
    out->sc[0] = static_cast<int8_t>(s01 & 0xFFu);
    out->sc[1] = static_cast<int8_t>(s01 >> 8);
    out->sc[2] = static_cast<int8_t>(s45 & 0xFFu);
    out->sc[3] = static_cast<int8_t>(s45 >> 8);
    out->mn[0] = out->mn[1] = 0;
    out->d = f16_bits_to_f32(load_u16(blk + 208));
    out->dmin = 0.0f;
  } else {
    // d dmin scales[12] (qh[32] for Q5_K) qs[128]. qs[32p + l]: low nibble value 64p + l,
    // high nibble value 64p + 32 + l; Q5_K's fifth bit of value e is bit e / 32 of qh[e % 32].
    constexpr int kQsOffset = DT == DType::kQ5_K ? 48 : 16;
    uint32_t sw[3], qs[8];
    load_code_words<3>(blk + 4, sw);
    load_code_words<8>(blk + kQsOffset + 32 * p, qs);
    for (int j = 0; j < 8; ++j) {
      out->w[j] = static_cast<int32_t>(qs[j] & 0x0F0F0F0Fu);
      out->w[8 + j] = static_cast<int32_t>((qs[j] >> 4) & 0x0F0F0F0Fu);
    }
    if constexpr (DT == DType::kQ5_K) {
      uint32_t qh[8];
      load_code_words<8>(blk + 16, qh);
      for (int j = 0; j < 8; ++j) {
        out->w[j] |= static_cast<int32_t>(((qh[j] >> (2 * p)) & 0x01010101u) << 4);
        out->w[8 + j] |= static_cast<int32_t>(((qh[j] >> (2 * p + 1)) & 0x01010101u) << 4);
      }
    }
    k4_scale_min(sw, 2 * p, &out->sc[0], &out->mn[0]);
    k4_scale_min(sw, 2 * p + 1, &out->sc[1], &out->mn[1]);
    out->sc[2] = out->sc[3] = 0;
    out->d = f16_bits_to_f32(load_u16(blk));
    out->dmin = f16_bits_to_f32(load_u16(blk + 2));
  }
}

// The part's exact share of the block's S and M (kernels/matmul_q8k.h):
//   Q4_K/Q5_K: S += sc[s] * dot_s, M += mn[s] * (bsums[2s] + bsums[2s + 1]);
//   Q6_K:      S += sc[s] * (dot_s - 32 * bsums[s]).
struct KPartSums {
  int32_t s;
  int32_t m;
};

template <DType DT>
LLMOS_HD inline KPartSums kquant_part_sums(const KWeightPart& w, const Q8KActPart& a) {
  KPartSums r{0, 0};
  if constexpr (DT == DType::kQ6_K) {
    for (int s = 0; s < 4; ++s) {
      int32_t dot = 0;
      for (int j = 0; j < 4; ++j) dot = dp4a(w.w[4 * s + j], a.x[4 * s + j], dot);
      r.s += w.sc[s] * (dot - 32 * a.bs[s]);
    }
  } else {
    for (int s = 0; s < 2; ++s) {
      int32_t dot = 0;
      for (int j = 0; j < 8; ++j) dot = dp4a(w.w[8 * s + j], a.x[8 * s + j], dot);
      r.s += w.sc[s] * dot;
      r.m += w.mn[s] * (a.bs[2 * s] + a.bs[2 * s + 1]);
    }
  }
  return r;
}

// The f32 steps of one block: acc = fma(d_w * d_a, S, acc), then (Q4_K/Q5_K)
// acc = fma(-(dmin_w * d_a), M, acc); each product rounded on its own.
template <DType DT>
LLMOS_HD inline float accumulate_kblock(float acc, float d_w, float dmin_w, float d_a, int32_t s,
                                        int32_t m) {
#if defined(__CUDA_ARCH__)
  acc = fmaf(__fmul_rn(d_w, d_a), __int2float_rn(s), acc);
  if constexpr (DT != DType::kQ6_K) acc = fmaf(-__fmul_rn(dmin_w, d_a), __int2float_rn(m), acc);
  return acc;
#else
  const float scale = d_w * d_a;
  acc = std::fma(scale, static_cast<float>(s), acc);
  if constexpr (DT != DType::kQ6_K) {
    const float mscale = dmin_w * d_a;
    acc = std::fma(-mscale, static_cast<float>(m), acc);
  }
  return acc;
#endif
}

#if defined(__CUDACC__)
// One q8_K block quantized by a warp: lane l holds values 8l .. 8l + 7 in v. The lanes' serial
// maxima are merged by q8k_max_merge (exact, and it keeps the first index on ties, so the warp
// finds the serial scan's max); codes, d and bsums then come from the functions above, so the
// block is bit-identical to quantize_q8k_block's. Every lane of the warp must call it.
__device__ inline void q8k_quantize_warp(const float v[8], int lane, Q8KActBlockCuda* out) {
  Q8KMax m{0.0f, 0.0f, 0};
  for (int i = 0; i < 8; ++i) m = q8k_max_merge(m, Q8KMax{q8k_abs(v[i]), v[i], 8 * lane + i});
  for (int off = 16; off > 0; off /= 2) {
    const Q8KMax o{__shfl_xor_sync(0xffffffffu, m.amax, off), __shfl_xor_sync(0xffffffffu, m.max, off),
                   __shfl_xor_sync(0xffffffffu, m.idx, off)};
    m = q8k_max_merge(m, o);
  }
  const bool zero = m.amax == 0.0f;  // uniform over the warp
  const float iscale = zero ? 0.0f : q8k_iscale(m.max);
  uint32_t words[2] = {0, 0};
  int sum = 0;
  for (int i = 0; i < 8; ++i) {
    const int q = zero ? 0 : q8k_code(v[i], iscale);
    sum += q;
    words[i / 4] |= (static_cast<uint32_t>(q) & 0xFFu) << (8 * (i % 4));
  }
  sum += __shfl_xor_sync(0xffffffffu, sum, 1);  // bsum g covers lanes 2g, 2g + 1
  reinterpret_cast<int2*>(out->qs)[lane] = make_int2(static_cast<int>(words[0]), static_cast<int>(words[1]));
  if (lane % 2 == 0) out->bsums[lane / 2] = static_cast<int16_t>(sum);
  if (lane == 0) {
    out->d = zero ? 0.0f : q8k_scale(iscale);
    out->pad[0] = out->pad[1] = out->pad[2] = 0;
  }
}
#endif

}  // namespace llmos::kernels::cuda
