// AVX-512 attention kernel (head_dim a multiple of 16) and KV-row conversion.
//
// Per chunk of 64 KV tokens, for the rows of a tile:
//   QK: 16 K rows at a time are converted to f32 and regrouped (a 4 x 4 transpose of 128-bit
//       lanes) so one zmm holds dims 4i..4i+3 of four tokens; each query row is kept as vectors
//       of its dims 4i..4i+3 repeated four times (built once per tile). One FMA then does 16
//       multiply-adds with two plain loads, and an in-lane reduction gives 16 scores in token
//       order. The shuffles cost 8 per 64 K values, whatever the number of query rows.
//   softmax: 64 scores per row in 4 zmm, masked to the row's causal limit; vector exp.
//   PV: acc[r] += p[r][t] * V[t], V row-major (read and converted in place for a single row block,
//       converted once into scratch for larger tiles), rows in blocks of 4 sharing every V load.
// Each score and each output element is produced by the same instruction sequence whichever
// rows, tokens or blocks share its tile, which is what makes the kernel batch invariant.
// Only intrinsics and builtins here (see attention_cpu_driver.h).
// GCC 12 warns about _mm512_undefined_* inside its own intrinsic headers (GCC PR 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstring>

#include "kernels/cpu/attention_cpu_driver.h"
#include "kernels/cpu/avx512/exp_avx512.h"

namespace llmos::kernels::cpu {
namespace {

template <DType kDt>
inline __m512 load16(const uint8_t* row, int d) {
  if constexpr (kDt == DType::kF16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * d)));
  } else if constexpr (kDt == DType::kBF16) {
    const __m512i x = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * d)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
  } else {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + d);
  }
}

inline __m512 unpacklo_pd(__m512 a, __m512 b) {
  return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}
inline __m512 unpackhi_pd(__m512 a, __m512 b) {
  return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}

constexpr int kChunk = kAttentionChunk;  // 64 tokens: 4 zmm of scores per row
static_assert(kChunk == 64, "the AVX-512 kernel holds a chunk's scores in 4 zmm");

// 4 x 4 transpose of 128-bit lanes: out[c] = {x0.lane c, x1.lane c, x2.lane c, x3.lane c}.
__attribute__((always_inline)) inline void transpose_lanes(__m512 x0, __m512 x1, __m512 x2, __m512 x3, __m512* out) {
  const __m512 u0 = _mm512_shuffle_f32x4(x0, x1, 0x44), u1 = _mm512_shuffle_f32x4(x0, x1, 0xee);
  const __m512 u2 = _mm512_shuffle_f32x4(x2, x3, 0x44), u3 = _mm512_shuffle_f32x4(x2, x3, 0xee);
  out[0] = _mm512_shuffle_f32x4(u0, u2, 0x88);
  out[1] = _mm512_shuffle_f32x4(u0, u2, 0xdd);
  out[2] = _mm512_shuffle_f32x4(u1, u3, 0x88);
  out[3] = _mm512_shuffle_f32x4(u1, u3, 0xdd);
}

// K rows t0 .. t0 + 15 of the chunk -> kbuf in "token-group" layout: group g holds tokens g, g + 4,
// g + 8, g + 12 (lane block j = token g + 4j) and kbuf[(g * head_dim / 4 + i) * 16 + 4j + e] =
// k_{g+4j}[4i + e]. Rows n.. are zero (their scores are masked).
template <DType kDt>
void load_k16(const uint8_t* const* rows, int t0, int n, int head_dim, float* kbuf) {
  const int steps = head_dim / 4;
  for (int g = 0; g < 4; ++g) {
    for (int c = 0; c < head_dim / 16; ++c) {
      __m512 x[4], out[4];
      for (int j = 0; j < 4; ++j) {
        const int t = t0 + g + 4 * j;
        x[j] = t < n ? load16<kDt>(rows[t], 16 * c) : _mm512_setzero_ps();
      }
      transpose_lanes(x[0], x[1], x[2], x[3], out);
      for (int e = 0; e < 4; ++e) _mm512_storeu_ps(kbuf + (g * steps + 4 * c + e) * 16, out[e]);
    }
  }
}

// Scalar exp through the same vector code (one definition for every caller).
inline float exp1(float x) { return _mm512_cvtss_f32(detail::exp512(_mm512_set1_ps(x))); }

// Scores. A query row is kept as head_dim / 4 vectors qb[i] = q[4i .. 4i + 3] repeated in the four
// 128-bit lanes; a K token group vector (see load_k16) meets it in one FMA, lane (j, e)
// accumulating q[d] k[d] for d = e mod 4 in order of d. The four groups of 16 tokens then reduce
// in-lane to score = (c0 + c2) + (c1 + c3), coming out in token order. Every score is computed
// this way whatever the blocking, so a row's scores do not depend on its tile.
inline __m512 reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  const __m512 x01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
  const __m512 x23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
  return _mm512_add_ps(unpacklo_pd(x01, x23), unpackhi_pd(x01, x23));
}

// Rows r .. r + NR - 1, tokens t0 .. t0 + 15 -> sc (one zmm store per row). kD: head_dim as a
// constant (immediate offsets), or 0 for any multiple of 16.
template <int kD, int NR>
inline void qk_rows16(const float* qb, int r, const float* kbuf, int t0, int head_dim_any, float* sc) {
  const int head_dim = kD != 0 ? kD : head_dim_any;
  const int steps = head_dim / 4;
  __m512 acc[NR][4];
  for (int i = 0; i < NR; ++i) {
    for (int g = 0; g < 4; ++g) acc[i][g] = _mm512_setzero_ps();
  }
  const float* q = qb + r * steps * 16;
  for (int s = 0; s < steps; ++s) {
    __m512 k[4];
    for (int g = 0; g < 4; ++g) k[g] = _mm512_loadu_ps(kbuf + (g * steps + s) * 16);
    for (int i = 0; i < NR; ++i) {
      const __m512 qv = _mm512_loadu_ps(q + (i * steps + s) * 16);
      for (int g = 0; g < 4; ++g) acc[i][g] = _mm512_fmadd_ps(k[g], qv, acc[i][g]);
    }
  }
  for (int i = 0; i < NR; ++i) {
    _mm512_storeu_ps(sc + (r + i) * kChunk + t0, reduce4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]));
  }
}

template <int kD>
void qk_all16(const float* qb, int rb, int re, const float* kbuf, int t0, int head_dim, float* sc) {
  int r = rb;
  for (; r + 4 <= re; r += 4) qk_rows16<kD, 4>(qb, r, kbuf, t0, head_dim, sc);
  switch (re - r) {
    case 3: qk_rows16<kD, 3>(qb, r, kbuf, t0, head_dim, sc); break;
    case 2: qk_rows16<kD, 2>(qb, r, kbuf, t0, head_dim, sc); break;
    case 1: qk_rows16<kD, 1>(qb, r, kbuf, t0, head_dim, sc); break;
    default: break;
  }
}

inline __mmask16 lane_mask(int valid) {
  return valid >= 16 ? static_cast<__mmask16>(0xffff)
                     : valid <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << valid) - 1u);
}

// Online-softmax update of one row from its 64 raw scores in p (the first `valid` count); the
// probabilities replace them.
inline void softmax_row(float scale, int valid, float* m, float* l, float* p, float* alpha) {
  const __m512 vscale = _mm512_set1_ps(scale), neg_inf = _mm512_set1_ps(attn_neg_inf());
  __m512 s[4];
  __mmask16 mask[4];
  for (int j = 0; j < 4; ++j) {
    mask[j] = lane_mask(valid - 16 * j);
    s[j] = _mm512_mask_mov_ps(neg_inf, mask[j], _mm512_mul_ps(_mm512_loadu_ps(p + 16 * j), vscale));
  }
  const float chunk_max = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(s[0], s[1]), _mm512_max_ps(s[2], s[3])));
  const float m_old = *m;
  const float m_new = m_old > chunk_max ? m_old : chunk_max;
  const __m512 vm = _mm512_set1_ps(m_new);
  __m512 e[4];
  for (int j = 0; j < 4; ++j) {
    e[j] = mask[j] == 0 ? _mm512_setzero_ps() : _mm512_maskz_mov_ps(mask[j], detail::exp512(_mm512_sub_ps(s[j], vm)));
    _mm512_storeu_ps(p + 16 * j, e[j]);
  }
  // A fixed tree over all four vectors (missing tokens add exact zeros).
  const float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(e[0], e[1]), _mm512_add_ps(e[2], e[3])));
  const float a = m_old == attn_neg_inf() ? 0.0f : exp1(m_old - m_new);
  *alpha = a;
  *l = __builtin_fmaf(*l, a, sum);
  *m = m_new;
}

// acc[i] = acc[i] * alpha[i] + sum_t p[i][t] * v_t, columns [c, c + 16 * NV), NR rows from r.
// With `next`, token t's iteration also prefetches row t of the next chunk: spread over the loop,
// the requests never pile up in the line fill buffers the way one burst per chunk does.
template <DType kDt, int NR, int NV>
inline void pv_block(const float* p, const float* alpha, const uint8_t* const* v, int n, int head_dim,
                     float* acc, int r, int c, const AttnNextChunk* next) {
  __m512 a[NR][NV];
  for (int i = 0; i < NR; ++i) {
    const __m512 al = _mm512_set1_ps(alpha[r + i]);
    for (int j = 0; j < NV; ++j) {
      a[i][j] = _mm512_mul_ps(_mm512_loadu_ps(acc + (r + i) * head_dim + c + 16 * j), al);
    }
  }
  for (int t = 0; t < n; ++t) {
    if (next != nullptr && t < next->n) attn_prefetch_row(*next, t);
    __m512 vv[NV];
    for (int j = 0; j < NV; ++j) vv[j] = load16<kDt>(v[t], c + 16 * j);
    for (int i = 0; i < NR; ++i) {
      const __m512 pb = _mm512_set1_ps(p[(r + i) * kChunk + t]);
      for (int j = 0; j < NV; ++j) a[i][j] = _mm512_fmadd_ps(pb, vv[j], a[i][j]);
    }
  }
  if (next != nullptr) {  // a next chunk longer than this one (the following item's first)
    for (int t = n; t < next->n; ++t) attn_prefetch_row(*next, t);
  }
  for (int i = 0; i < NR; ++i) {
    for (int j = 0; j < NV; ++j) _mm512_storeu_ps(acc + (r + i) * head_dim + c + 16 * j, a[i][j]);
  }
}

// `next` (or null) goes to the first column block only.
template <DType kDt, int NR>
void pv_rows_n(const float* p, const float* alpha, const uint8_t* const* v, int n, int head_dim, float* acc, int r,
               const AttnNextChunk* next) {
  int c = 0;
  for (; c + 64 <= head_dim; c += 64, next = nullptr) pv_block<kDt, NR, 4>(p, alpha, v, n, head_dim, acc, r, c, next);
  switch ((head_dim - c) / 16) {
    case 3: pv_block<kDt, NR, 3>(p, alpha, v, n, head_dim, acc, r, c, next); break;
    case 2: pv_block<kDt, NR, 2>(p, alpha, v, n, head_dim, acc, r, c, next); break;
    case 1: pv_block<kDt, NR, 1>(p, alpha, v, n, head_dim, acc, r, c, next); break;
    default: break;
  }
}

// `next` (or null) goes to the first row block only.
template <DType kDt>
void pv_all(const float* p, const float* alpha, const uint8_t* const* v, int n, int head_dim, float* acc,
            int rb, int re, const AttnNextChunk* next) {
  int r = rb;
  for (; r + 4 <= re; r += 4, next = nullptr) pv_rows_n<kDt, 4>(p, alpha, v, n, head_dim, acc, r, next);
  switch (re - r) {
    case 3: pv_rows_n<kDt, 3>(p, alpha, v, n, head_dim, acc, r, next); break;
    case 2: pv_rows_n<kDt, 2>(p, alpha, v, n, head_dim, acc, r, next); break;
    case 1: pv_rows_n<kDt, 1>(p, alpha, v, n, head_dim, acc, r, next); break;
    default: break;
  }
}

struct Avx512Kernel {
  static void begin_tile(const AttnTile& tile, int rows, float* qb) {
    const int steps = tile.head_dim / 4;
    for (int r = 0; r < rows; ++r) {
      const float* q = tile.q_row(r);
      for (int i = 0; i < steps; ++i) {
        _mm512_storeu_ps(qb + (r * steps + i) * 16, _mm512_broadcast_f32x4(_mm_loadu_ps(q + 4 * i)));
      }
    }
  }
  static void softmax_rows(const AttnTile& tile, const float* qb, int rb, int re, const uint8_t* const* k_rows,
                           DType dtype, float* kbuf, float scale, int n, int ctx0, float* m, float* l, float* p,
                           float* alpha) {
    for (int t0 = 0; t0 < n; t0 += 16) {
      switch (dtype) {
        case DType::kF16: load_k16<DType::kF16>(k_rows, t0, n, tile.head_dim, kbuf); break;
        case DType::kBF16: load_k16<DType::kBF16>(k_rows, t0, n, tile.head_dim, kbuf); break;
        default: load_k16<DType::kF32>(k_rows, t0, n, tile.head_dim, kbuf); break;
      }
      switch (tile.head_dim) {
        case 64: qk_all16<64>(qb, rb, re, kbuf, t0, 64, p); break;
        case 128: qk_all16<128>(qb, rb, re, kbuf, t0, 128, p); break;
        default: qk_all16<0>(qb, rb, re, kbuf, t0, tile.head_dim, p); break;
      }
    }
    for (int r = rb; r < re; ++r) {
      const int valid = attn_imin(n, ctx0 + r / tile.group);
      softmax_row(scale, valid, &m[r], &l[r], p + r * kChunk, &alpha[r]);
    }
  }
  static void pv_rows(const float* p, const float* alpha, const uint8_t* const* v_rows, DType dtype, int n,
                      int head_dim, float* vbuf, float* acc, int rb, int re, const AttnNextChunk& next) {
    const AttnNextChunk* pf = next.n > 0 ? &next : nullptr;
    if (dtype == DType::kF32) return pv_all<DType::kF32>(p, alpha, v_rows, n, head_dim, acc, rb, re, pf);
    if (re - rb <= 4) {  // one row block: convert V as it is read
      if (dtype == DType::kF16) return pv_all<DType::kF16>(p, alpha, v_rows, n, head_dim, acc, rb, re, pf);
      return pv_all<DType::kBF16>(p, alpha, v_rows, n, head_dim, acc, rb, re, pf);
    }
    // Several row blocks: convert the chunk once (prefetching the next one's rows meanwhile).
    const uint8_t* rows[kChunk];
    for (int t = 0; t < n; ++t) {
      if (t < next.n) attn_prefetch_row(next, t);
      float* dst = vbuf + t * head_dim;
      if (dtype == DType::kF16) {
        for (int d = 0; d < head_dim; d += 16) _mm512_storeu_ps(dst + d, load16<DType::kF16>(v_rows[t], d));
      } else {
        for (int d = 0; d < head_dim; d += 16) _mm512_storeu_ps(dst + d, load16<DType::kBF16>(v_rows[t], d));
      }
      rows[t] = reinterpret_cast<const uint8_t*>(dst);
    }
    for (int t = n; t < next.n; ++t) attn_prefetch_row(next, t);
    pv_all<DType::kF32>(p, alpha, rows, n, head_dim, acc, rb, re, nullptr);
  }
  // noinline: one compiled body serves the in-item fold and attention_combine alike.
  __attribute__((noinline)) static void merge(float* m, float* l, float* acc, float m2, float l2,
                                              const float* acc2, int head_dim) {
    const float mn = *m > m2 ? *m : m2;
    const float a = exp1(*m - mn);
    const float b = exp1(m2 - mn);
    *l = __builtin_fmaf(l2, b, *l * a);
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    for (int d = 0; d < head_dim; d += 16) {
      const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(acc + d), va);
      _mm512_storeu_ps(acc + d, _mm512_fmadd_ps(_mm512_loadu_ps(acc2 + d), vb, x));
    }
    *m = mn;
  }
  __attribute__((noinline)) static void finalize(const float* acc, float l, int head_dim, float* out) {
    const __m512 vl = _mm512_set1_ps(l);
    for (int d = 0; d < head_dim; d += 16) {
      // + 0 turns a -0 into +0: a zero's sign may depend on how many masked (p = 0) terms a row
      // received, which depends on its tile; no other bit does.
      _mm512_storeu_ps(out + d, _mm512_add_ps(_mm512_div_ps(_mm512_loadu_ps(acc + d), vl), _mm512_setzero_ps()));
    }
  }
};

// f32 -> bf16 with f32_to_bf16's rounding (nearest even; NaN -> quiet NaN), 16 values.
inline __m256i to_bf16(__m512 f) {
  const __m512i x = _mm512_castps_si512(f);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x40));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet));
}

}  // namespace

namespace detail {

void attention_items_avx512(const PagedAttentionParams& p, const AttentionPlan& plan,
                            const AttentionWorkItem* items, int64_t count, float* workspace, int thread,
                            const AttentionWorkItem* following) {
  attn_run_items<Avx512Kernel>(p, plan, items, count, workspace, thread, following);
}

void attention_combine_avx512(const PagedAttentionParams& p, const AttentionPlan&,
                              const AttentionCombineItem* items, int64_t count, float* workspace) {
  attn_run_combines<Avx512Kernel>(p, items, count, workspace);
}

void kv_store_row_avx512(const float* src, void* dst, DType dtype, int n) {
  if (dtype == DType::kF32) {
    std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
    return;
  }
  uint16_t* out = static_cast<uint16_t*>(dst);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? static_cast<__mmask16>(0xffff)
                                       : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 f = _mm512_maskz_loadu_ps(mask, src + i);
    const __m256i h = dtype == DType::kF16 ? _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
                                           : to_bf16(f);
    _mm256_mask_storeu_epi16(out + i, mask, h);
  }
}

}  // namespace detail
}  // namespace llmos::kernels::cpu
