// AVX2 + FMA + F16C kernels for F32, F16 and BF16 weights: the fp32 chain of
// kernels/matmul_q8.h, bit for bit, over column groups of 8 rows laid out k-major (see the
// AVX-512 twin, avx512/matmul_float_avx512.cc, for the reasoning). BF16 always takes the two-FMA
// form of vdpbf16ps's arithmetic, on bf16-rounded activations.
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() and trip -Wmaybe-uninitialized
// once inlined (GCC PR 105593, fixed in 13); the values are never read.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "kernels/cpu/matmul_cpu_internal.h"

namespace llmos::kernels::cpu::detail {
namespace {

constexpr int kLanes = 8;
constexpr int kMaxRows = 4;  // rows x column groups per register tile: 8 accumulators
constexpr int kMaxGroups = 2;

enum class Kind { kF32, kF16, kBf16 };

template <Kind K, int R, int C>
inline void fp_tile(const uint8_t* const* groups, int64_t steps, const float* const* xs,
                    __m256 (*acc)[C]) {
  for (int64_t t = 0; t < steps; ++t) {
    if constexpr (K == Kind::kBf16) {
      __m256 we[C], wo[C];
      const __m256i high = _mm256_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
#pragma GCC unroll 2
      for (int c = 0; c < C; ++c) {
        const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(groups[c] + t * 32));
        we[c] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
        wo[c] = _mm256_castsi256_ps(_mm256_and_si256(v, high));
      }
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256 xo = _mm256_set1_ps(xs[r][2 * t]);  // pairs stored odd element first
        const __m256 xe = _mm256_set1_ps(xs[r][2 * t + 1]);
#pragma GCC unroll 2
        for (int c = 0; c < C; ++c) {
          acc[r][c] = _mm256_fmadd_ps(wo[c], xo, acc[r][c]);
          acc[r][c] = _mm256_fmadd_ps(we[c], xe, acc[r][c]);
        }
      }
    } else {
      __m256 w[C];
#pragma GCC unroll 2
      for (int c = 0; c < C; ++c) {
        if constexpr (K == Kind::kF32) {
          w[c] = _mm256_load_ps(reinterpret_cast<const float*>(groups[c] + t * 32));
        } else {
          w[c] =
              _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(groups[c] + t * 16)));
        }
      }
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256 x = _mm256_set1_ps(xs[r][t]);
#pragma GCC unroll 2
        for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(w[c], x, acc[r][c]);
      }
    }
  }
}

struct Tile {
  const uint8_t* groups[kMaxGroups];
  int lo[kMaxGroups], hi[kMaxGroups];
  const float* bias[kMaxGroups];
  const float* xs[kMaxRows];
  float* y[kMaxRows];
};

template <Kind K, int R, int C>
void run_tile(const Tile& tile, int64_t steps) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  }
  fp_tile<K, R, C>(tile.groups, steps, tile.xs, acc);
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      alignas(32) float lanes[kLanes];
      _mm256_store_ps(lanes, acc[r][c]);
      float* y = tile.y[r] + c * kLanes;
      for (int l = tile.lo[c]; l < tile.hi[c]; ++l) {
        y[l] = tile.bias[c] ? lanes[l] + tile.bias[c][l] : lanes[l];
      }
    }
  }
}

template <Kind K, int C>
void run_rows(const Tile& tile, int rows, int64_t steps) {
  switch (rows) {
    case 1: run_tile<K, 1, C>(tile, steps); break;
    case 2: run_tile<K, 2, C>(tile, steps); break;
    case 3: run_tile<K, 3, C>(tile, steps); break;
    case 4: run_tile<K, 4, C>(tile, steps); break;
    default: break;
  }
}

template <Kind K>
void matmul_fp(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  const PackedWeight& w = *args.weight;
  const int64_t steps = K == Kind::kBf16 ? (w.k + 1) / 2 : w.k;
  const int64_t g_end = (n_end + kLanes - 1) / kLanes;
  for (int64_t g0 = n_begin / kLanes; g0 < g_end; g0 += kMaxGroups) {
    const int groups = static_cast<int>(g_end - g0 < kMaxGroups ? g_end - g0 : kMaxGroups);
    Tile tile{};
    for (int c = 0; c < groups; ++c) {
      const int64_t col0 = (g0 + c) * kLanes;
      tile.lo[c] = static_cast<int>((n_begin > col0 ? n_begin : col0) - col0);
      tile.hi[c] = static_cast<int>((n_end < col0 + kLanes ? n_end : col0 + kLanes) - col0);
      tile.groups[c] = static_cast<const uint8_t*>(w.data) + (g0 + c) * w.row_bytes;
      tile.bias[c] = args.bias ? args.bias + col0 : nullptr;
    }
    for (int64_t i = 0; i < args.m; i += kMaxRows) {
      const int rows = static_cast<int>(args.m - i < kMaxRows ? args.m - i : kMaxRows);
      for (int r = 0; r < rows; ++r) {
        tile.xs[r] = K == Kind::kBf16 ? static_cast<const float*>(args.act) + (i + r) * 2 * steps
                                      : args.x + (i + r) * args.x_stride;
        tile.y[r] = args.y + (i + r) * args.y_stride + g0 * kLanes;
      }
      if (groups == 2) {
        run_rows<K, 2>(tile, rows, steps);
      } else {
        run_rows<K, 1>(tile, rows, steps);
      }
    }
  }
}

}  // namespace

void round_bf16_row_avx2(const float* x, int64_t k, void* out) {
  // Round to nearest even on the bit pattern, as f32_to_bf16 (NaN quieted); each pair stored
  // odd element first (the chain's order), a zero pad element when k is odd.
  auto* o = static_cast<float*>(out);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i bias = _mm256_set1_epi32(0x7fff);
  const __m256i high = _mm256_set1_epi32(static_cast<int32_t>(0xFFFF0000u));
  int64_t t = 0;
  for (; t + 8 <= k; t += 8) {
    const __m256 f = _mm256_loadu_ps(x + t);
    const __m256i v = _mm256_castps_si256(f);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(v, 16), one);
    __m256i r = _mm256_add_epi32(v, _mm256_add_epi32(bias, lsb));
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(f, f, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, _mm256_or_si256(v, _mm256_set1_epi32(0x400000)), nan);
    const __m256 rounded = _mm256_castsi256_ps(_mm256_and_si256(r, high));
    _mm256_storeu_ps(o + t, _mm256_permute_ps(rounded, 0xB1));
  }
  for (; t < (k + 1) / 2 * 2; ++t) {
    uint32_t v = 0;
    if (t < k) {
      __builtin_memcpy(&v, x + t, 4);
      if ((v & 0x7fffffffu) > 0x7f800000u) {
        v |= 0x400000u;
      } else {
        v += 0x7fffu + ((v >> 16) & 1u);
      }
      v &= 0xFFFF0000u;
    }
    __builtin_memcpy(o + (t ^ 1), &v, 4);
  }
}

void matmul_f32_avx2(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  matmul_fp<Kind::kF32>(args, n_begin, n_end);
}
void matmul_f16_avx2(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  matmul_fp<Kind::kF16>(args, n_begin, n_end);
}
void matmul_bf16_avx2(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  matmul_fp<Kind::kBf16>(args, n_begin, n_end);
}

}  // namespace llmos::kernels::cpu::detail
