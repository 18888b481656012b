// AVX-512 kernels for F32, F16 and BF16 weights: the fp32 chain of kernels/matmul_q8.h, bit for
// bit. Weights come in column groups of 16 rows laid out k-major (matmul_cpu_internal.h), so one
// zmm load is element t of 16 columns and an activation value is broadcast against it: every
// output is one accumulator updated once per t in order, whatever the tile shape (batch
// invariance), and no horizontal sums are needed. Register tiles are 6 rows x 4 groups.
//
// F16 weights are widened exactly (vcvtph2ps). BF16 runs vdpbf16ps on bf16 activations when the
// CPU advertises AVX512_BF16, and otherwise the same arithmetic with two FMAs per pair (the
// bf16 x bf16 products are exact in f32, so only the vdpbf16ps flushing of subnormals differs).
//
// F32, and any dtype with m <= 6, streams each 4-group panel straight from the packed weights
// (for m > 6 once per 6-row tile, from L2). F16 / BF16 with m > 6 take row panels of 192 rows and
// go over k in chunks of 128 steps: the chunk of a panel is widened into a 32 KiB f32 buffer that
// stays in L1 for all row tiles; accumulators carry across chunks through y (an exact f32 store
// and reload). BF16 through vdpbf16ps chunks the same way without widening.
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

constexpr int kLanes = 16;
constexpr int kMaxRows = 6;  // rows x column groups per register tile: 24 accumulators
constexpr int kMaxGroups = 4;
constexpr int64_t kChunkSteps = 128;           // k steps of a 4-group panel per pass: 32 KiB of f32
constexpr int64_t kPanelRows = 32 * kMaxRows;  // rows whose x and y stay cached per pass
constexpr int kPrefetchMaxRows = 2;             // tiles this small stream weights: prefetch them
constexpr int64_t kPrefetchBytes = 2048;        // how far ahead in each group's stream

// kF32: f32 steps (the F32 layout, or a chunk converted from F16 / BF16). kF16: f16 steps.
// kBf16: bf16 pairs, widened in registers. kBf16Dp: bf16 pairs through vdpbf16ps.
enum class Kind { kF32, kF16, kBf16, kBf16Dp };

template <Kind K>
constexpr int64_t step_bytes() {
  return K == Kind::kF16 ? 32 : 64;
}

// Both halves of a bf16 pair as f32: the odd element (high half) and the even one (low half).
inline void split_pairs(__m512i v, __m512* odd, __m512* even) {
  *odd = _mm512_castsi512_ps(
      _mm512_and_si512(v, _mm512_set1_epi32(static_cast<int32_t>(0xFFFF0000u))));
  *even = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

// R rows x C groups over `steps` steps. xs[r] is the activation row at the first step: f32 for
// kF32 / kF16, bf16-rounded f32 in pair order (odd, even) for kBf16, bf16 pairs for kBf16Dp.
template <Kind K, int R, int C>
inline void fp_tile(const uint8_t* const* groups, int64_t steps, const void* const* xs,
                    __m512 (*acc)[C]) {
  for (int64_t t = 0; t < steps; ++t) {
    if constexpr (R <= kPrefetchMaxRows) {
      // Decode streams C groups from DRAM with little arithmetic per byte: prefetch each
      // stream kPrefetchBytes ahead, one line per 64 bytes consumed.
      constexpr int64_t kStep = K == Kind::kF16 ? 32 : 64;  // bytes of a group per step
      if ((t * kStep) % 64 == 0) {
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) {
          _mm_prefetch(reinterpret_cast<const char*>(groups[c] + t * kStep + kPrefetchBytes),
                       _MM_HINT_T0);
        }
      }
    }
    if constexpr (K == Kind::kF32 || K == Kind::kF16) {
      __m512 w[C];
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) {
        if constexpr (K == Kind::kF32) {
          w[c] = _mm512_load_ps(groups[c] + t * 64);
        } else {
          w[c] = _mm512_cvtph_ps(
              _mm256_load_si256(reinterpret_cast<const __m256i*>(groups[c] + t * 32)));
        }
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m512 x = _mm512_set1_ps(static_cast<const float*>(xs[r])[t]);
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(w[c], x, acc[r][c]);
      }
    } else if constexpr (K == Kind::kBf16) {
      __m512 wo[C], we[C];
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c)
        split_pairs(_mm512_load_si512(groups[c] + t * 64), &wo[c], &we[c]);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const float* x = static_cast<const float*>(xs[r]) + 2 * t;
        const __m512 xo = _mm512_set1_ps(x[0]);
        const __m512 xe = _mm512_set1_ps(x[1]);
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) {
          acc[r][c] = _mm512_fmadd_ps(wo[c], xo, acc[r][c]);
          acc[r][c] = _mm512_fmadd_ps(we[c], xe, acc[r][c]);
        }
      }
    } else {
      __m512bh w[C];
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) {
        w[c] = reinterpret_cast<__m512bh>(_mm512_load_si512(groups[c] + t * 64));
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        int32_t pair;
        std::memcpy(&pair, static_cast<const uint32_t*>(xs[r]) + t, 4);
        const __m512bh x = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], w[c], x);
      }
    }
  }
}

struct Tile {
  const uint8_t* groups[kMaxGroups];  // at the first step of this pass
  __mmask16 masks[kMaxGroups];
  const float* bias[kMaxGroups];
  const void* xs[kMaxRows];  // at the first step of this pass
  float* y[kMaxRows];        // column 0 of the panel
  bool first, last;          // first / last pass over k
};

// Accumulators start from zero on the first pass over k and continue from y after it (an exact
// f32 store and reload); the bias is added after the last.
template <Kind K, int R, int C>
void run_tile(const Tile& tile, int64_t steps) {
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      acc[r][c] = tile.first ? _mm512_setzero_ps()
                             : _mm512_maskz_loadu_ps(tile.masks[c], tile.y[r] + c * kLanes);
    }
  }
  fp_tile<K, R, C>(tile.groups, steps, tile.xs, acc);
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      __m512 v = acc[r][c];
      if (tile.last && tile.bias[c] != nullptr) {
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(tile.masks[c], tile.bias[c]));
      }
      _mm512_mask_storeu_ps(tile.y[r] + c * kLanes, tile.masks[c], v);
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
    case 5: run_tile<K, 5, C>(tile, steps); break;
    case 6: run_tile<K, 6, C>(tile, steps); break;
    default: break;
  }
}

template <Kind K>
void run_groups(const Tile& tile, int groups, int rows, int64_t steps) {
  switch (groups) {
    case 1: run_rows<K, 1>(tile, rows, steps); break;
    case 2: run_rows<K, 2>(tile, rows, steps); break;
    case 3: run_rows<K, 3>(tile, rows, steps); break;
    case 4: run_rows<K, 4>(tile, rows, steps); break;
    default: break;
  }
}

// Widens `count` steps of F16 / BF16 groups into f32 steps at buf (group c at buf + c * stride
// bytes). BF16 pairs become two steps, odd element first: the order the chain consumes them.
template <Kind K>
void widen_chunk(const uint8_t* const* groups, int n_groups, int64_t count, uint8_t* buf,
                 int64_t stride) {
  for (int c = 0; c < n_groups; ++c) {
    auto* out = reinterpret_cast<float*>(buf + c * stride);
    for (int64_t t = 0; t < count; ++t) {
      if constexpr (K == Kind::kF16) {
        _mm512_store_ps(out + t * kLanes,
                        _mm512_cvtph_ps(_mm256_load_si256(
                            reinterpret_cast<const __m256i*>(groups[c] + t * 32))));
      } else {
        __m512 odd, even;
        split_pairs(_mm512_load_si512(groups[c] + t * 64), &odd, &even);
        _mm512_store_ps(out + 2 * t * kLanes, odd);
        _mm512_store_ps(out + (2 * t + 1) * kLanes, even);
      }
    }
  }
}

template <Kind K>
void matmul_fp(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  const PackedWeight& w = *args.weight;
  constexpr bool kPairs = K == Kind::kBf16 || K == Kind::kBf16Dp;
  const int64_t steps = kPairs ? (w.k + 1) / 2 : w.k;  // of the packed layout
  // Each row's activations: x for F32 / F16; phase-1 rows for BF16 (2 * steps f32, or steps pairs).
  auto x_at = [&](int64_t row, int64_t step) -> const void* {
    if constexpr (K == Kind::kBf16) {
      return static_cast<const float*>(args.act) + row * 2 * steps + 2 * step;
    } else if constexpr (K == Kind::kBf16Dp) {
      return static_cast<const uint32_t*>(args.act) + row * steps + step;
    } else {
      return args.x + row * args.x_stride + step;
    }
  };
  // Small batches run each panel in one pass straight from the packed weights; larger ones in
  // row panels and k chunks widened to f32 once (see the top of the file). F32 needs no widening,
  // and streaming its 4-group panel from L2 for every row tile measured faster than chunking.
  const bool chunked = K != Kind::kF32 && args.m > kMaxRows;
  constexpr int64_t kChunk = K == Kind::kBf16 ? kChunkSteps / 2 : kChunkSteps;
  alignas(64)
      uint8_t wide[K == Kind::kF16 || K == Kind::kBf16 ? kMaxGroups * kChunkSteps * 64 : 64];
  const int64_t g_end = (n_end + kLanes - 1) / kLanes;
  const int64_t panel_rows = chunked ? kPanelRows : args.m;
  for (int64_t i0 = 0; i0 < args.m; i0 += panel_rows) {
    const int64_t i1 = args.m - i0 < panel_rows ? args.m : i0 + panel_rows;
    for (int64_t g0 = n_begin / kLanes; g0 < g_end; g0 += kMaxGroups) {
      const int groups = static_cast<int>(g_end - g0 < kMaxGroups ? g_end - g0 : kMaxGroups);
      Tile tile{};
      const uint8_t* packed[kMaxGroups] = {};
      for (int c = 0; c < groups; ++c) {
        const int64_t col0 = (g0 + c) * kLanes;
        const int64_t lo = (n_begin > col0 ? n_begin : col0) - col0;
        const int64_t hi = (n_end < col0 + kLanes ? n_end : col0 + kLanes) - col0;
        tile.masks[c] = static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
        packed[c] = static_cast<const uint8_t*>(w.data) + (g0 + c) * w.row_bytes;
        tile.bias[c] = args.bias ? args.bias + col0 : nullptr;
      }
      const int64_t chunk = chunked ? kChunk : steps;
      for (int64_t s0 = 0; s0 < steps; s0 += chunk) {
        const int64_t count = steps - s0 < chunk ? steps - s0 : chunk;
        tile.first = s0 == 0;
        tile.last = s0 + count == steps;
        constexpr bool kWiden = K == Kind::kF16 || K == Kind::kBf16;
        const bool widen = kWiden && chunked;
        for (int c = 0; c < groups; ++c) tile.groups[c] = packed[c] + s0 * step_bytes<K>();
        if (widen) {
          const int64_t stride = (K == Kind::kBf16 ? 2 : 1) * count * 64;
          widen_chunk<K>(tile.groups, groups, count, wide, stride);
          for (int c = 0; c < groups; ++c) tile.groups[c] = wide + c * stride;
        }
        for (int64_t i = i0; i < i1; i += kMaxRows) {
          const int rows = static_cast<int>(i1 - i < kMaxRows ? i1 - i : kMaxRows);
          for (int r = 0; r < rows; ++r) {
            tile.xs[r] = x_at(i + r, s0);
            tile.y[r] = args.y + (i + r) * args.y_stride + g0 * kLanes;
          }
          if (widen) {
            run_groups<Kind::kF32>(tile, groups, rows, K == Kind::kBf16 ? 2 * count : count);
          } else {
            run_groups<K>(tile, groups, rows, count);
          }
        }
      }
    }
  }
}

}  // namespace

void round_bf16_row_avx512(const float* x, int64_t k, bool pairs, void* out) {
  // Round to nearest even on the bit pattern (as f32_to_bf16 does; NaN stays NaN, quieted).
  const int64_t padded = (k + 1) / 2 * 2;
  for (int64_t t = 0; t < padded; t += 16) {
    const int64_t left = (k - t) < 16 ? (k - t > 0 ? k - t : 0) : 16;
    const auto mask = static_cast<__mmask16>((1u << left) - 1u);
    const __m512i v = _mm512_castps_si512(_mm512_maskz_loadu_ps(mask, x + t));
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(v, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(v, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
    const __mmask16 nan =
        _mm512_cmp_ps_mask(_mm512_castsi512_ps(v), _mm512_castsi512_ps(v), _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, v, _mm512_set1_epi32(0x400000));
    r = _mm512_and_si512(r, _mm512_set1_epi32(static_cast<int32_t>(0xFFFF0000u)));
    const int64_t count = padded - t < 16 ? padded - t : 16;
    const auto out_mask = static_cast<__mmask16>((1u << count) - 1u);
    if (pairs) {
      _mm256_mask_storeu_epi16(static_cast<uint16_t*>(out) + t, out_mask,
                               _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
    } else {
      // f32 in the chain's order: each pair's odd element first.
      const __m512 swapped = _mm512_permute_ps(_mm512_castsi512_ps(r), 0xB1);
      _mm512_mask_storeu_ps(static_cast<float*>(out) + t, out_mask, swapped);
    }
  }
}

void matmul_f32_avx512(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  matmul_fp<Kind::kF32>(args, n_begin, n_end);
}
void matmul_f16_avx512(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  matmul_fp<Kind::kF16>(args, n_begin, n_end);
}
void matmul_bf16_avx512(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  matmul_fp<Kind::kBf16>(args, n_begin, n_end);
}
void matmul_bf16_dp_avx512(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  matmul_fp<Kind::kBf16Dp>(args, n_begin, n_end);
}

}  // namespace llmos::kernels::cpu::detail
