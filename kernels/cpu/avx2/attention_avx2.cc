// AVX2 + FMA + F16C attention kernel (head_dim a multiple of 16) and KV-row conversion.
//
// Per chunk of 64 KV tokens, for the rows of a tile:
//   QK: 8 K rows at a time are converted to f32; query rows are packed two per ymm, lane 4r + e
//       holding dims 4i + e (built once per tile); a K row's dims 4i..4i+3 broadcast to both
//       128-bit lanes (vbroadcastf128: a plain load on AVX2) meet it in one FMA, and four tokens
//       reduce in-lane to score = (c0 + c2) + (c1 + c3), c_e summing d = e mod 4 in order of d.
//   softmax: 64 scores per row in 8 ymm, masked to the row's causal limit; vector exp.
//   PV: acc[r] += p[r][t] * V[t], V row-major, rows in blocks of 2 sharing every V load.
// Each score and output element is produced by the same instruction sequence whichever rows,
// tokens or blocks share its tile (batch invariance).
// Only intrinsics and builtins here (see attention_cpu_driver.h).
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/attention_cpu_driver.h"
#include "kernels/cpu/avx2/exp_avx2.h"

namespace llmos::kernels::cpu {
namespace {

template <DType kDt>
inline __m256 load8(const uint8_t* row, int d) {
  if constexpr (kDt == DType::kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * d)));
  } else if constexpr (kDt == DType::kBF16) {
    const __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * d)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
  } else {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + d);
  }
}

constexpr int kChunk = kAttentionChunk;  // 64 tokens: 8 ymm of scores per row
static_assert(kChunk == 64, "the AVX2 kernel holds a chunk's scores in 8 ymm");

// K rows t0 .. t0 + 7 of the chunk -> kbuf [8][head_dim] f32 (stays in L1 while every row pair
// reads it); rows n.. are zero (their scores are masked).
template <DType kDt>
void load_k8(const uint8_t* const* rows, int t0, int n, int head_dim, float* kbuf) {
  for (int t = 0; t < 8; ++t) {
    if (t0 + t < n) {
      for (int d = 0; d < head_dim; d += 8) _mm256_storeu_ps(kbuf + t * head_dim + d, load8<kDt>(rows[t0 + t], d));
    } else {
      for (int d = 0; d < head_dim; d += 8) _mm256_storeu_ps(kbuf + t * head_dim + d, _mm256_setzero_ps());
    }
  }
}

inline float exp1(float x) { return _mm256_cvtss_f32(detail::exp256(_mm256_set1_ps(x))); }

inline float hmax8(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
  return _mm_cvtss_f32(x);
}

inline float hsum8(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
  return _mm_cvtss_f32(x);
}

// Scores, pair layout (the AVX-512 kernel's quad layout with two rows per ymm): qp[a][i] holds
// q[2a + r][4i + e] in lane 4r + e; a K row's dims 4i..4i+3, broadcast to both 128-bit lanes,
// meet it in one FMA; lane (r, e) sums d = e mod 4 in order of d, and four tokens reduce in-lane
// to score = (c0 + c2) + (c1 + c3). The same for every score whatever the blocking.
// kD: head_dim as a constant (the K rows are then immediate offsets), or 0 for any multiple of 16.
template <int kD, int TT>
inline void qk_pair(const float* qp, int a, const float* kbuf, int t0, int head_dim_any, float* sc) {
  const int head_dim = kD != 0 ? kD : head_dim_any;
  const int steps = head_dim / 4;
  __m256 acc[TT];
  for (int t = 0; t < TT; ++t) acc[t] = _mm256_setzero_ps();
  const float* k = kbuf;
  const float* q = qp + a * steps * 8;
  for (int i = 0; i < steps; ++i) {
    const __m256 qv = _mm256_loadu_ps(q + i * 8);
    for (int t = 0; t < TT; ++t) {
      const __m256 kb = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(k + t * head_dim + 4 * i));
      acc[t] = _mm256_fmadd_ps(kb, qv, acc[t]);
    }
  }
  for (int g = 0; g < TT; g += 4) {
    const __m256 x01 = _mm256_add_ps(_mm256_unpacklo_ps(acc[g], acc[g + 1]), _mm256_unpackhi_ps(acc[g], acc[g + 1]));
    const __m256 x23 =
        _mm256_add_ps(_mm256_unpacklo_ps(acc[g + 2], acc[g + 3]), _mm256_unpackhi_ps(acc[g + 2], acc[g + 3]));
    const __m256 y = _mm256_add_ps(
        _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(x01), _mm256_castps_pd(x23))),
        _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(x01), _mm256_castps_pd(x23))));
    // 128-bit lane r of y: row 2a + r, tokens t0 + g .. + 3.
    float* out = sc + (2 * a) * kChunk + t0 + g;
    _mm_storeu_ps(out, _mm256_castps256_ps128(y));
    _mm_storeu_ps(out + kChunk, _mm256_extractf128_ps(y, 1));
  }
}

// Online-softmax update of one row from its 64 raw scores in p; the probabilities replace them.
inline void softmax_row(float scale, int valid, float* m, float* l, float* p, float* alpha) {
  const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 vscale = _mm256_set1_ps(scale), neg_inf = _mm256_set1_ps(attn_neg_inf());
  const __m256 vvalid = _mm256_set1_ps(static_cast<float>(valid));
  __m256 s[8], mask[8];
  for (int j = 0; j < 8; ++j) {
    mask[j] = _mm256_cmp_ps(_mm256_add_ps(lane, _mm256_set1_ps(8.0f * j)), vvalid, _CMP_LT_OQ);
    s[j] = _mm256_blendv_ps(neg_inf, _mm256_mul_ps(_mm256_loadu_ps(p + 8 * j), vscale), mask[j]);
  }
  const __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_max_ps(s[0], s[1]), _mm256_max_ps(s[2], s[3])),
                                  _mm256_max_ps(_mm256_max_ps(s[4], s[5]), _mm256_max_ps(s[6], s[7])));
  const float chunk_max = hmax8(mx);
  const float m_old = *m;
  const float m_new = m_old > chunk_max ? m_old : chunk_max;
  const __m256 vm = _mm256_set1_ps(m_new);
  __m256 e[8];
  for (int j = 0; j < 8; ++j) {
    e[j] = 8 * j < valid ? _mm256_and_ps(mask[j], detail::exp256(_mm256_sub_ps(s[j], vm))) : _mm256_setzero_ps();
    _mm256_storeu_ps(p + 8 * j, e[j]);
  }
  // A fixed tree over all eight vectors (missing tokens add exact zeros).
  const __m256 sum8 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(e[0], e[1]), _mm256_add_ps(e[2], e[3])),
                                    _mm256_add_ps(_mm256_add_ps(e[4], e[5]), _mm256_add_ps(e[6], e[7])));
  const float sum = hsum8(sum8);
  const float a = m_old == attn_neg_inf() ? 0.0f : exp1(m_old - m_new);
  *alpha = a;
  *l = __builtin_fmaf(*l, a, sum);
  *m = m_new;
}

// acc[i] = acc[i] * alpha[i] + sum_t p[i][t] * v_t, columns [c, c + 8 * NV), NR rows from r.
template <DType kDt, int NR, int NV>
inline void pv_block(const float* p, const float* alpha, const uint8_t* const* v, int n, int head_dim,
                     float* acc, int r, int c) {
  __m256 a[NR][NV];
  for (int i = 0; i < NR; ++i) {
    const __m256 al = _mm256_set1_ps(alpha[r + i]);
    for (int j = 0; j < NV; ++j) a[i][j] = _mm256_mul_ps(_mm256_loadu_ps(acc + (r + i) * head_dim + c + 8 * j), al);
  }
  for (int t = 0; t < n; ++t) {
    __m256 vv[NV];
    for (int j = 0; j < NV; ++j) vv[j] = load8<kDt>(v[t], c + 8 * j);
    for (int i = 0; i < NR; ++i) {
      const __m256 pb = _mm256_set1_ps(p[(r + i) * kChunk + t]);
      for (int j = 0; j < NV; ++j) a[i][j] = _mm256_fmadd_ps(pb, vv[j], a[i][j]);
    }
  }
  for (int i = 0; i < NR; ++i) {
    for (int j = 0; j < NV; ++j) _mm256_storeu_ps(acc + (r + i) * head_dim + c + 8 * j, a[i][j]);
  }
}

template <DType kDt, int NR>
void pv_rows_n(const float* p, const float* alpha, const uint8_t* const* v, int n, int head_dim, float* acc, int r) {
  int c = 0;
  for (; c + 32 <= head_dim; c += 32) pv_block<kDt, NR, 4>(p, alpha, v, n, head_dim, acc, r, c);
  if (head_dim - c == 16) pv_block<kDt, NR, 2>(p, alpha, v, n, head_dim, acc, r, c);
}

template <DType kDt>
void pv_all(const float* p, const float* alpha, const uint8_t* const* v, int n, int head_dim, float* acc,
            int rb, int re) {
  int r = rb;
  for (; r + 2 <= re; r += 2) pv_rows_n<kDt, 2>(p, alpha, v, n, head_dim, acc, r);
  if (r < re) pv_rows_n<kDt, 1>(p, alpha, v, n, head_dim, acc, r);
}

struct Avx2Kernel {
  static void begin_tile(const AttnTile& tile, int rows, float* qp) {
    const int steps = tile.head_dim / 4;
    for (int a = 0; a < (rows + 1) / 2; ++a) {
      for (int r = 0; r < 2; ++r) {
        const int row = 2 * a + r;
        const float* q = row < rows ? tile.q_row(row) : nullptr;
        for (int i = 0; i < steps; ++i) {
          float* dst = qp + (a * steps + i) * 8 + 4 * r;
          if (q != nullptr) {
            std::memcpy(dst, q + 4 * i, 4 * sizeof(float));
          } else {
            std::memset(dst, 0, 4 * sizeof(float));
          }
        }
      }
    }
  }
  static void softmax_rows(const AttnTile& tile, const float* qp, int rb, int re, const uint8_t* const* k_rows,
                           DType dtype, float* kbuf, float scale, int n, int ctx0, float* m, float* l, float* p,
                           float* alpha) {
    for (int t0 = 0; t0 < n; t0 += 8) {
      switch (dtype) {
        case DType::kF16: load_k8<DType::kF16>(k_rows, t0, n, tile.head_dim, kbuf); break;
        case DType::kBF16: load_k8<DType::kBF16>(k_rows, t0, n, tile.head_dim, kbuf); break;
        default: load_k8<DType::kF32>(k_rows, t0, n, tile.head_dim, kbuf); break;
      }
      for (int a = rb / 2; a < (re + 1) / 2; ++a) {
        switch (tile.head_dim) {
          case 64: qk_pair<64, 8>(qp, a, kbuf, t0, 64, p); break;
          case 128: qk_pair<128, 8>(qp, a, kbuf, t0, 128, p); break;
          default: qk_pair<0, 8>(qp, a, kbuf, t0, tile.head_dim, p); break;
        }
      }
    }
    for (int r = rb; r < re; ++r) {
      const int valid = attn_imin(n, ctx0 + r / tile.group);
      softmax_row(scale, valid, &m[r], &l[r], p + r * kChunk, &alpha[r]);
    }
  }
  static void pv_rows(const float* p, const float* alpha, const uint8_t* const* v_rows, DType dtype, int n,
                      int head_dim, float* vbuf, float* acc, int rb, int re, const AttnNextChunk& next) {
    attn_prefetch_chunk(next);
    if (dtype == DType::kF32) return pv_all<DType::kF32>(p, alpha, v_rows, n, head_dim, acc, rb, re);
    if (re - rb <= 4) {  // at most two row blocks: convert V as it is read
      if (dtype == DType::kF16) return pv_all<DType::kF16>(p, alpha, v_rows, n, head_dim, acc, rb, re);
      return pv_all<DType::kBF16>(p, alpha, v_rows, n, head_dim, acc, rb, re);
    }
    const uint8_t* rows[kChunk];
    for (int t = 0; t < n; ++t) {
      float* dst = vbuf + t * head_dim;
      if (dtype == DType::kF16) {
        for (int d = 0; d < head_dim; d += 8) _mm256_storeu_ps(dst + d, load8<DType::kF16>(v_rows[t], d));
      } else {
        for (int d = 0; d < head_dim; d += 8) _mm256_storeu_ps(dst + d, load8<DType::kBF16>(v_rows[t], d));
      }
      rows[t] = reinterpret_cast<const uint8_t*>(dst);
    }
    pv_all<DType::kF32>(p, alpha, rows, n, head_dim, acc, rb, re);
  }
  __attribute__((noinline)) static void merge(float* m, float* l, float* acc, float m2, float l2,
                                              const float* acc2, int head_dim) {
    const float mn = *m > m2 ? *m : m2;
    const float a = exp1(*m - mn);
    const float b = exp1(m2 - mn);
    *l = __builtin_fmaf(l2, b, *l * a);
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    for (int d = 0; d < head_dim; d += 8) {
      const __m256 x = _mm256_mul_ps(_mm256_loadu_ps(acc + d), va);
      _mm256_storeu_ps(acc + d, _mm256_fmadd_ps(_mm256_loadu_ps(acc2 + d), vb, x));
    }
    *m = mn;
  }
  __attribute__((noinline)) static void finalize(const float* acc, float l, int head_dim, float* out) {
    const __m256 vl = _mm256_set1_ps(l);
    for (int d = 0; d < head_dim; d += 8) {
      // + 0 turns -0 into +0 (see the AVX-512 kernel).
      _mm256_storeu_ps(out + d, _mm256_add_ps(_mm256_div_ps(_mm256_loadu_ps(acc + d), vl), _mm256_setzero_ps()));
    }
  }
};

// f32 -> bf16 with f32_to_bf16's rounding, 8 values (in the low 16 bits of each lane).
inline __m256i to_bf16_lanes(__m256 f) {
  const __m256i x = _mm256_castps_si256(f);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
  return _mm256_blendv_epi8(rounded, quiet, nan);
}

// 8 floats -> 8 halves of the KV dtype.
inline __m128i to_half8(__m256 f, DType dtype) {
  if (dtype == DType::kF16) return _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256i w = to_bf16_lanes(f);  // values < 65536: packus keeps them exactly
  return _mm_packus_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
}

}  // namespace

namespace detail {

void attention_items_avx2(const PagedAttentionParams& p, const AttentionPlan& plan,
                            const AttentionWorkItem* items, int64_t count, float* workspace, int thread,
                            const AttentionWorkItem* following) {
  attn_run_items<Avx2Kernel>(p, plan, items, count, workspace, thread, following);
}

void attention_combine_avx2(const PagedAttentionParams& p, const AttentionPlan&,
                            const AttentionCombineItem* items, int64_t count, float* workspace) {
  attn_run_combines<Avx2Kernel>(p, items, count, workspace);
}

void kv_store_row_avx2(const float* src, void* dst, DType dtype, int n) {
  if (dtype == DType::kF32) {
    std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
    return;
  }
  uint8_t* out = static_cast<uint8_t*>(dst);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), to_half8(_mm256_loadu_ps(src + i), dtype));
  }
  if (i < n) {  // tail through a zero-padded vector
    float tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(tail, src + i, sizeof(float) * static_cast<size_t>(n - i));
    uint16_t halves[8];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(halves), to_half8(_mm256_loadu_ps(tail), dtype));
    std::memcpy(out + 2 * i, halves, 2 * static_cast<size_t>(n - i));
  }
}

}  // namespace detail
}  // namespace llmos::kernels::cpu
