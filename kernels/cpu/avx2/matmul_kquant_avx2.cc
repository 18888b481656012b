// AVX2 + FMA K-quant kernels: q8_K activation quantization and the panel matmul.
//
// Same scheme as the AVX-512 file with 8 columns per vector (half a panel per tile). Without
// VNNI the dot products are vpmaddubsw (u8 code x s8 activation, pairs summed to int16), summed
// in int16 for as many steps as cannot overflow (Q4_K 8, Q5_K 4, Q6_K 2: |sum| <= 2 * 127 *
// (2^bits - 1) * steps < 2^15), then widened and scaled in one vpmaddwd against (sc, sc) pairs.
// Every intermediate is an exact integer, so the result is bit-identical to the reference.
#include <immintrin.h>

#include <cstring>
#include <utility>

#include "kernels/cpu/matmul_kquant.h"

namespace llmos::kernels::cpu::kquant_detail {
namespace {

// Local min/max: std::min/std::max instantiated in a file compiled with ISA flags could be the
// copy the linker keeps for generic callers (an inline function is emitted in every user).
constexpr int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
constexpr int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

inline __m256i bcast32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}
inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline __m128i load8(const uint8_t* p) { return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)); }

template <int S>
inline __m256i shift16(__m256i v) {
  if constexpr (S > 0) return _mm256_slli_epi16(v, S);
  else if constexpr (S < 0) return _mm256_srli_epi16(v, -S);
  else return v;
}
inline __m256i or_and(__m256i a, __m256i b, __m256i c) { return _mm256_or_si256(a, _mm256_and_si256(b, c)); }

// Format traits as in the AVX-512 file; h selects the half panel (bytes 32h .. 32h + 31 of each
// 64-byte step vector). kFlush: steps summed in int16 before widening.
struct Q4 {
  using Pack = PackQ4K;
  static constexpr int kPairs = 4, kSteps = 8, kSub = 32, kFlush = 8;
  static constexpr bool kMins = true, kSigned = false;
  template <int P>
  static void decode(const uint8_t* pb, int h, int t, __m256i& w0, __m256i& w1) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i v = load32(pb + PackQ4K::kQs + (P * 8 + t) * 64 + 32 * h);
    w0 = _mm256_and_si256(v, low4);
    w1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
  }
};

struct Q5 : Q4 {
  using Pack = PackQ5K;
  static constexpr int kFlush = 4;
  template <int P>
  static void decode(const uint8_t* pb, int h, int t, __m256i& w0, __m256i& w1) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
    const __m256i v = load32(pb + PackQ5K::kQs + (P * 8 + t) * 64 + 32 * h);
    const __m256i hb = load32(pb + PackQ5K::kQh + t * 64 + 32 * h);
    w0 = or_and(_mm256_and_si256(v, low4), shift16<4 - 2 * P>(hb), bit4);
    w1 = or_and(_mm256_and_si256(_mm256_srli_epi16(v, 4), low4), shift16<3 - 2 * P>(hb), bit4);
  }
};

struct Q6 {
  using Pack = PackQ6K;
  static constexpr int kPairs = 8, kSteps = 4, kSub = 16, kFlush = 2;
  static constexpr bool kMins = false, kSigned = true;
  template <int P>
  static void decode(const uint8_t* pb, int h, int t, __m256i& w0, __m256i& w1) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), top2 = _mm256_set1_epi8(0x30);
    const __m256i v = load32(pb + PackQ6K::kQl + (P * 4 + t) * 64 + 32 * h);
    const __m256i hb = load32(pb + PackQ6K::kQh + ((P / 2) * 4 + t) * 64 + 32 * h);
    constexpr int kS0 = P % 2 == 0 ? 4 : 0, kS1 = P % 2 == 0 ? 2 : -2;
    w0 = or_and(_mm256_and_si256(v, low4), shift16<kS0>(hb), top2);
    w1 = or_and(_mm256_and_si256(_mm256_srli_epi16(v, 4), low4), shift16<kS1>(hb), top2);
  }
};

// int32 scale of sub-block s for the 8 columns of half h (sign-extended for Q6_K).
template <class F>
inline __m256i scale32(const uint8_t* pb, int h, int s) {
  const __m128i raw = load8(pb + F::Pack::kSc + 16 * s + 8 * h);
  if constexpr (F::kSigned) return _mm256_cvtepi8_epi32(raw);
  else return _mm256_cvtepu8_epi32(raw);
}
// (sc, sc) as two int16 in each 32-bit lane, for vpmaddwd.
inline __m256i dup16(__m256i sc32) { return _mm256_blend_epi16(sc32, _mm256_slli_epi32(sc32, 16), 0xAA); }

template <class F, int R, int P>
inline void pair(const uint8_t* pb, int h, const int8_t* const* qs, const KqActMeta* const* meta,
                 __m256i* s, __m256i* corr) {
  const __m256i sc0 = scale32<F>(pb, h, 2 * P), sc1 = scale32<F>(pb, h, 2 * P + 1);
  const __m256i sp0 = dup16(sc0), sp1 = dup16(sc1);
  __m256i p0[R], p1[R];
#pragma GCC unroll 8
  for (int t = 0; t < F::kSteps; ++t) {
    __m256i w0, w1;
    F::template decode<P>(pb, h, t, w0, w1);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256i m0 = _mm256_maddubs_epi16(w0, bcast32(qs[r] + (2 * P) * F::kSub + 4 * t));
      const __m256i m1 = _mm256_maddubs_epi16(w1, bcast32(qs[r] + (2 * P + 1) * F::kSub + 4 * t));
      p0[r] = t % F::kFlush == 0 ? m0 : _mm256_add_epi16(p0[r], m0);
      p1[r] = t % F::kFlush == 0 ? m1 : _mm256_add_epi16(p1[r], m1);
      if (t % F::kFlush == F::kFlush - 1) {
        s[r] = _mm256_add_epi32(s[r], _mm256_add_epi32(_mm256_madd_epi16(p0[r], sp0),
                                                       _mm256_madd_epi16(p1[r], sp1)));
      }
    }
  }
  if constexpr (F::kSigned) {
    // Q6_K's -32 offset: corr += sc[2P] * bsums[2P] + sc[2P + 1] * bsums[2P + 1].
    const __m256i pair_sc = _mm256_blend_epi16(sc0, _mm256_slli_epi32(sc1, 16), 0xAA);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      corr[r] = _mm256_add_epi32(corr[r], _mm256_madd_epi16(pair_sc, bcast32(&meta[r]->bsums[2 * P])));
  }
}

template <class F, int R, int... P>
inline void all_pairs(const uint8_t* pb, int h, const int8_t* const* qs, const KqActMeta* const* meta,
                      __m256i* s, __m256i* corr, std::integer_sequence<int, P...>) {
  (pair<F, R, P>(pb, h, qs, meta, s, corr), ...);
}

// R rows x half h of one panel (8 columns, lanes selected by `mask`) over [b_begin, b_end).
template <class F, int R>
void tile(const uint8_t* panel, int h, int64_t b_begin, int64_t b_end, const uint8_t* const* rows,
          int64_t k, float* const* ys, const float* bias8, __m256i mask, bool first, bool last) {
  using Pack = typename F::Pack;
  __m256 acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(ys[r], mask);
  for (int64_t b = b_begin; b < b_end; ++b) {
    const uint8_t* pb = panel + (b - b_begin) * Pack::kBytes;
    const int8_t* qs[R];
    const KqActMeta* meta[R];
    __m256i s[R], corr[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      qs[r] = reinterpret_cast<const int8_t*>(rows[r]) + 256 * b;
      meta[r] = act_meta(rows[r], k) + b;
      s[r] = _mm256_setzero_si256();
      corr[r] = _mm256_setzero_si256();
    }
    all_pairs<F, R>(pb, h, qs, meta, s, corr, std::make_integer_sequence<int, F::kPairs>{});
    const __m256 dw = _mm256_cvtph_ps(load16(pb + Pack::kD + 16 * h));
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      if constexpr (F::kSigned) s[r] = _mm256_sub_epi32(s[r], _mm256_slli_epi32(corr[r], 5));
      const __m256 dd = _mm256_mul_ps(dw, _mm256_set1_ps(meta[r]->d));
      acc[r] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(s[r]), acc[r]);
    }
    if constexpr (F::kMins) {
      const __m256 dmw = _mm256_cvtph_ps(load16(pb + Pack::kDmin + 16 * h));
      __m256i msum[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) msum[r] = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) {
        const __m256i mn = _mm256_cvtepu8_epi16(load16(pb + Pack::kMn + 32 * t + 16 * h));
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
          msum[r] = _mm256_add_epi32(msum[r], _mm256_madd_epi16(mn, bcast32(&meta[r]->bsums32[2 * t])));
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256 dm = _mm256_mul_ps(dmw, _mm256_set1_ps(meta[r]->d));
        acc[r] = _mm256_fnmadd_ps(dm, _mm256_cvtepi32_ps(msum[r]), acc[r]);
      }
    }
  }
  const __m256 bias = (last && bias8) ? _mm256_maskload_ps(bias8, mask) : _mm256_setzero_ps();
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m256 out = (last && bias8) ? _mm256_add_ps(acc[r], bias) : acc[r];
    _mm256_maskstore_ps(ys[r], mask, out);
  }
}

constexpr int kMaxRows = 3;

template <class F>
void run(const PanelArgs& a) {
  const int64_t chunk = max_i64(kMaxRows, (256 * 1024 / a.act_row_bytes) / kMaxRows * kMaxRows);
  const int64_t p_begin = a.n_begin / kKquantPanel;
  const int64_t p_end = (a.n_end + kKquantPanel - 1) / kKquantPanel;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t i0 = 0; i0 < a.m; i0 += chunk) {
    const int64_t i1 = min_i64(a.m, i0 + chunk);
    for (int64_t p = p_begin; p < p_end; ++p) {
      const uint8_t* panel = a.panels + (p - a.panel_base) * a.panel_stride;
      for (int h = 0; h < 2; ++h) {
        const int64_t col0 = p * kKquantPanel + 8 * h;
        const int64_t lo = max_i64(a.n_begin, col0) - col0;
        const int64_t hi = min_i64(a.n_end, col0 + 8) - col0;
        if (hi <= lo) continue;
        // Lane c is active when lo <= c < hi.
        const __m256i mask = _mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(static_cast<int>(lo) - 1)),
                                              _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(hi)), lane));
        const float* bias8 = a.bias ? a.bias + col0 : nullptr;
        for (int64_t i = i0; i < i1; i += kMaxRows) {
          const int r = static_cast<int>(min_i64(kMaxRows, i1 - i));
          const uint8_t* rows[kMaxRows];
          float* ys[kMaxRows];
          for (int q = 0; q < r; ++q) {
            rows[q] = a.act + (i + q) * a.act_row_bytes;
            ys[q] = a.y + (i + q) * a.y_stride + col0;
          }
          switch (r) {
            case 1: tile<F, 1>(panel, h, a.block_begin, a.block_end, rows, a.k, ys, bias8, mask, a.first, a.last); break;
            case 2: tile<F, 2>(panel, h, a.block_begin, a.block_end, rows, a.k, ys, bias8, mask, a.first, a.last); break;
            default: tile<F, kMaxRows>(panel, h, a.block_begin, a.block_end, rows, a.k, ys, bias8, mask, a.first, a.last); break;
          }
        }
      }
    }
  }
}

// Horizontal sum of 8 int32.
inline int hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}
inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

}  // namespace

void panels_avx2(const PanelArgs& a) {
  switch (a.dtype) {
    case DType::kQ4_K: run<Q4>(a); break;
    case DType::kQ5_K: run<Q5>(a); break;
    case DType::kQ6_K: run<Q6>(a); break;
    default: break;
  }
}

void quantize_rows_avx2(const float* x, int64_t x_stride, int64_t rows, int64_t k, uint8_t* act) {
  const int64_t row_bytes = kquant_activation_row_bytes(k);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < rows; ++i) {
    uint8_t* row = act + i * row_bytes;
    auto* meta = reinterpret_cast<KqActMeta*>(row + k);
    for (int64_t b = 0; b < k / 256; ++b) {
      const float* xb = x + i * x_stride + 256 * b;
      __m256 amax_v = _mm256_setzero_ps();
      for (int g = 0; g < 32; ++g)  // max(new, old) skips NaNs, as the reference does
        amax_v = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xb + 8 * g), abs_mask), amax_v);
      const float amax = hmax(amax_v);
      KqActMeta& mb = meta[b];
      if (amax == 0.0f) {
        std::memset(row + 256 * b, 0, 256);
        std::memset(&mb, 0, sizeof(mb));
        continue;
      }
      float max = 0.0f;
      for (int g = 0; g < 32; ++g) {
        const int hit = _mm256_movemask_ps(
            _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(xb + 8 * g), abs_mask), _mm256_set1_ps(amax), _CMP_EQ_OQ));
        if (hit) {
          max = xb[8 * g + __builtin_ctz(static_cast<unsigned>(hit))];
          break;
        }
      }
      const float iscale = -127.0f / max;
      const __m256 vs = _mm256_set1_ps(iscale);
      const __m256i q127 = _mm256_set1_epi32(127);
      for (int g = 0; g < 16; ++g) {
        const __m256i q0 = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 16 * g), vs)), q127);
        const __m256i q1 = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 16 * g + 8), vs)), q127);
        // Codes are within [-127, 127] for finite input, so the saturating packs are exact.
        const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8);
        const __m128i bytes = _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(row + 256 * b + 16 * g), bytes);
        mb.bsums[g] = static_cast<int16_t>(hsum(_mm256_add_epi32(q0, q1)));
      }
      mb.d = 1.0f / iscale;
      finish_meta(&mb);
    }
  }
}

}  // namespace llmos::kernels::cpu::kquant_detail
