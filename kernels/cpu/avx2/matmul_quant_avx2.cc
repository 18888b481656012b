// AVX2 kernels for Q4_0 and Q8_0 weights against q8-quantized activations (the math of
// kernels/matmul_q8.h, bit for bit): column groups of 8 rows, one ymm int32 lane per output
// column, like the AVX-512 kernels but with vpmaddubsw + vpmaddwd for the byte dot products.
//
// vpmaddubsw saturates its int16 pair sums, so the operands are kept small enough that it never
// does: Q4_0 nibbles (0..15) x codes (|q| <= 127 for finite input) give |pair| <= 3810, and eight
// of them still fit in int16, so a whole block accumulates in int16 before one vpmaddwd. Q8_0
// uses |w| x sign-adjusted x (|pair| <= 2 * 128 * 127 = 32512), widened to int32 every step.
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() and trip -Wmaybe-uninitialized
// once inlined (GCC PR 105593, fixed in 13); the values are never read.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/matmul_cpu_internal.h"

namespace llmos::kernels::cpu::detail {
namespace {

constexpr int kLanes = 8;
constexpr int kMaxRows = 4;

int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

__m256 round_half_away(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
  const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
  const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 one = _mm256_and_ps(up, _mm256_or_ps(_mm256_set1_ps(1.0f), sign));
  return _mm256_add_ps(t, one);
}

int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

template <bool kQ4, int R>
inline void q_tile(const uint8_t* scales, const uint8_t* codes, int64_t nb,
                   const Q8ActBlock* const* act, __m256* acc) {
  constexpr int64_t kCodeBytes = kQ4 ? 16 * kLanes : 32 * kLanes;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i ones16 = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* q = codes + b * kCodeBytes;
    const __m256 dw =
        _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(scales + b * 2 * kLanes)));
    __m256i w[8];
    if constexpr (kQ4) {
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {
        const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 32 * s));
        w[s] = _mm256_and_si256(v, low4);
        w[4 + s] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      }
    } else {
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) {
        w[s] = _mm256_abs_epi8(_mm256_load_si256(reinterpret_cast<const __m256i*>(q + 32 * s)));
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const Q8ActBlock& a = act[r][b];
      __m256i isum;
      if constexpr (kQ4) {
        __m256i dot16 = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int s = 0; s < 8; ++s) {
          const __m256i x = _mm256_set1_epi32(load_i32(a.qs + 4 * s));
          dot16 = _mm256_add_epi16(dot16, _mm256_maddubs_epi16(w[s], x));
        }
        isum = _mm256_add_epi32(_mm256_madd_epi16(dot16, ones16), _mm256_set1_epi32(a.neg_sum8));
      } else {
        isum = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int s = 0; s < 8; ++s) {
          const __m256i x = _mm256_set1_epi32(load_i32(a.qs + 4 * s));
          const __m256i wv = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 32 * s));
          const __m256i p = _mm256_maddubs_epi16(w[s], _mm256_sign_epi8(x, wv));
          isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, ones16));
        }
      }
      acc[r] =
          _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(a.d)), _mm256_cvtepi32_ps(isum), acc[r]);
    }
  }
}

// Stores lanes [lo, hi) of v to y[lo .. hi) (AVX2 has no masked f32 store that is as simple).
void store_lanes(float* y, __m256 v, int lo, int hi) {
  if (lo == 0 && hi == kLanes) {
    _mm256_storeu_ps(y, v);
    return;
  }
  alignas(32) float tmp[kLanes];
  _mm256_store_ps(tmp, v);
  for (int c = lo; c < hi; ++c) y[c] = tmp[c];
}

template <bool kQ4, int R>
void run_tile(const uint8_t* scales, const uint8_t* codes, int64_t nb, const Q8ActBlock* act0,
              const float* bias, int lo, int hi, float* y, int64_t y_stride) {
  const Q8ActBlock* act[R];
  __m256 acc[R];
  for (int r = 0; r < R; ++r) {
    act[r] = act0 + r * nb;
    acc[r] = _mm256_setzero_ps();
  }
  q_tile<kQ4, R>(scales, codes, nb, act, acc);
  alignas(32) float bias_lanes[kLanes] = {};
  if (bias != nullptr) {
    for (int c = lo; c < hi; ++c) bias_lanes[c] = bias[c];
  }
  for (int r = 0; r < R; ++r) {
    const __m256 v = bias ? _mm256_add_ps(acc[r], _mm256_load_ps(bias_lanes)) : acc[r];
    store_lanes(y + r * y_stride, v, lo, hi);
  }
}

template <bool kQ4>
void matmul_q(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  const PackedWeight& w = *args.weight;
  const int64_t nb = w.k / kQ8ActBlockSize;
  const int64_t scale_bytes = (nb * 2 * kLanes + 63) / 64 * 64;
  const auto* act = static_cast<const Q8ActBlock*>(args.act);
  for (int64_t g = n_begin / kLanes; g * kLanes < n_end; ++g) {
    const int64_t col0 = g * kLanes;
    const int lo = static_cast<int>((n_begin > col0 ? n_begin : col0) - col0);
    const int hi = static_cast<int>((n_end < col0 + kLanes ? n_end : col0 + kLanes) - col0);
    const uint8_t* scales = static_cast<const uint8_t*>(w.data) + g * w.row_bytes;
    const uint8_t* codes = scales + scale_bytes;
    const float* bias = args.bias ? args.bias + col0 : nullptr;
    for (int64_t i = 0; i < args.m; i += kMaxRows) {
      const int64_t rows = args.m - i < kMaxRows ? args.m - i : kMaxRows;
      const Q8ActBlock* a = act + i * nb;
      float* y = args.y + i * args.y_stride + col0;
      switch (rows) {
        case 1: run_tile<kQ4, 1>(scales, codes, nb, a, bias, lo, hi, y, args.y_stride); break;
        case 2: run_tile<kQ4, 2>(scales, codes, nb, a, bias, lo, hi, y, args.y_stride); break;
        case 3: run_tile<kQ4, 3>(scales, codes, nb, a, bias, lo, hi, y, args.y_stride); break;
        case 4: run_tile<kQ4, 4>(scales, codes, nb, a, bias, lo, hi, y, args.y_stride); break;
        default: break;
      }
    }
  }
}

}  // namespace

void quantize_q8_act_avx2(const float* x, int64_t k, Q8ActBlock* out) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < k / kQ8ActBlockSize; ++b, x += kQ8ActBlockSize) {
    __m256 v[4];
    for (int s = 0; s < 4; ++s) v[s] = _mm256_loadu_ps(x + 8 * s);
    // maxps returns its second operand when either is NaN: with the running maximum second (it
    // starts at 0, never NaN) a NaN element is skipped, as std::fmax skips it in the reference.
    __m256 m = _mm256_setzero_ps();
    for (int s = 0; s < 4; ++s) m = _mm256_max_ps(_mm256_and_ps(v[s], abs_mask), m);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int s = 0; s < 4; ++s)
      q[s] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[s], vid)));
    // Saturating packs clamp to [-128, 127]; they interleave 128-bit lanes, which the final
    // permute undoes.
    const __m256i q16a = _mm256_packs_epi32(q[0], q[1]);
    const __m256i q16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b),
                                                   _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    Q8ActBlock& a = out[b];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.qs), q8);
    a.d = d;
    a.sum = hsum_epi32(
        _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q8), _mm256_set1_epi16(1)));
    a.neg_sum8 = -8 * a.sum;
    a.neg_sum128 = -128 * a.sum;
  }
}

void matmul_q4_0_avx2(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  matmul_q<true>(args, n_begin, n_end);
}

void matmul_q8_0_avx2(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  matmul_q<false>(args, n_begin, n_end);
}

}  // namespace llmos::kernels::cpu::detail
