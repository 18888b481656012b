// AVX-512 VNNI kernels for Q4_0 and Q8_0 weights against q8-quantized activations (the math of
// kernels/matmul_q8.h, bit for bit). Weights come in column groups of 16 rows
// (matmul_cpu_internal.h): one zmm lane per output column, so a block's integer dot product for
// 16 columns is 8 vpdpbusd of (16 columns x 4 weight bytes) by 4 broadcast activation bytes, and
// no horizontal sums are needed.
//
// vpdpbusd multiplies unsigned by signed bytes: the weight side is unsigned (Q4_0 nibbles 0..15,
// Q8_0 codes stored + 128), so each block's integer accumulator starts from -8 * sum(qx) or
// -128 * sum(qx), kept with the activation block. The integer sums are exact, and every lane
// then does the same two float operations per block whatever the tile shape, so results are
// batch invariant and equal to the scalar reference.
//
// Two paths. Decode (m < 4) streams the packed codes once, unpacking nibbles in registers, with
// software prefetch ahead of the stream. The GEMM (m >= 4) takes row panels of 48 rows (their
// activations stay in L1/L2); for each column group the panel's first 12-row register tile
// unpacks the Q4_0 nibbles in registers as it computes and leaves them in a 32 KiB stack buffer
// that the panel's other tiles read: 12 independent vpdpbusd chains per weight vector,
// activation bytes broadcast straight from memory. (A separate unpack pass before the tiles cost
// 5-10% of the GEMM's time at m = 32-512.)
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
constexpr int kGemmMinRows = 4;                // below this, rows stream the packed codes directly
constexpr int kGemmRows = kActTileRows;        // rows per register tile in the GEMM path
constexpr int64_t kPanelRows = 4 * kGemmRows;  // rows whose activations stay cached per pass
constexpr int64_t kChunkBlocks = 64;           // blocks of one group unpacked at a time (32 KiB)
constexpr int kPrefetchBytes = 2048;           // how far ahead of the codes being read to prefetch
// GEMM: lines of the next chunk prefetched per block of the current one: a chunk's codes plus
// its share of the scales (Q4_0: 256 code bytes per block; Q8_0: 512), with a line to spare.
template <bool kQ4>
constexpr int kPrefetchLinesPerBlock = kQ4 ? 5 : 9;

// round(v) half away from zero (the GGUF quantizer's roundf), exact for |v| < 2^23.
__m512 round_half_away(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
  const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 one =
      _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));  // +-1 like v
  return _mm512_mask_add_ps(t, up, t, one);
}

// dot += w (16 x 4 unsigned bytes) . broadcast of the 4 signed bytes at x. Written in asm so the
// broadcast rides on the instruction as an embedded {1to16} memory operand (GCC 12 emits a
// separate vpbroadcastd, one more uop per vpdpbusd, which the front end cannot afford).
inline __m512i dpbusd_bcast(__m512i dot, __m512i w, const int8_t* x) {
  __asm__("vpdpbusd %2%{1to16%}, %1, %0"
          : "+v"(dot)
          : "v"(w), "m"(*static_cast<const int32_t*>(static_cast<const void*>(x))));
  return dot;
}

// The starting value of a block's integer accumulator: the correction for the unsigned weights.
template <bool kQ4>
inline __m512i dot_start(const Q8ActBlock& a) {
  return _mm512_set1_epi32(kQ4 ? a.neg_sum8 : a.neg_sum128);
}

// acc += (dw * d_x) * float(isum): the per-block float step of the q8 math.
inline __m512 combine(__m512 acc, __m512 dw, const Q8ActBlock& a, __m512i isum) {
  return _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(a.d)), _mm512_cvtepi32_ps(isum), acc);
}

// The 8 unsigned weight vectors of block b (step s pairs with activation bytes 4s .. 4s+3).
template <bool kQ4>
inline void load_codes(const uint8_t* q, __m512i* w) {
  if constexpr (kQ4) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int s = 0; s < 4; ++s) {
      const __m512i v = _mm512_load_si512(q + 64 * s);
      w[s] = _mm512_and_si512(v, low4);
      w[4 + s] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
    }
  } else {
#pragma GCC unroll 8
    for (int s = 0; s < 8; ++s) w[s] = _mm512_load_si512(q + 64 * s);
  }
}

// Decode path: R (< kGemmMinRows) rows against one group, codes read straight from the packed
// stream (each byte is used R times, so unpacking it to memory first would not pay).
template <bool kQ4, int R>
inline void gemv_tile(const uint8_t* scales, const uint8_t* codes, int64_t nb,
                      const Q8ActBlock* tile, __m512* acc) {
  constexpr int64_t kCodeBytes = kQ4 ? 16 * kLanes : 32 * kLanes;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* q = codes + b * kCodeBytes;
#pragma GCC unroll 8
    for (int64_t p = 0; p < kCodeBytes; p += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(q + kPrefetchBytes + p), _MM_HINT_T0);
    }
    if (b % 2 == 0) {
      _mm_prefetch(reinterpret_cast<const char*>(scales + b * 2 * kLanes + kPrefetchBytes / 4),
                   _MM_HINT_T0);
    }
    const __m512 dw = _mm512_cvtph_ps(
        _mm256_load_si256(reinterpret_cast<const __m256i*>(scales + b * 2 * kLanes)));
    __m512i w[8];
    load_codes<kQ4>(q, w);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const Q8ActBlock& a = tile[b * kActTileRows + r];
      __m512i dot = dot_start<kQ4>(a);
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) dot = dpbusd_bcast(dot, w[s], a.qs + 4 * s);
      acc[r] = combine(acc[r], dw, a, dot);
    }
  }
}

// GEMM path: R rows of an activation tile against `nb` blocks of one group whose 8 unsigned
// weight vectors per block sit in `w` (512 bytes per block: Q8_0's packed codes as they are,
// Q4_0's unpacked nibbles). Steps outside, rows inside, so R independent vpdpbusd chains hide
// the instruction's latency; the tiled activations keep every address one pointer + a constant.
// When `prefetch` is not null, each block also prefetches kPrefetchLinesPerBlock cache lines
// from it onwards (the weight bytes the next chunk will read) into L2, so DRAM reads overlap
// with the arithmetic (into L1 as well measured 2-4% slower: the current chunk gets evicted).
//
// kUnpack (Q4_0 only): `w` is the packed nibble stream itself (256 bytes per block), unpacked in
// registers as the tile goes; when `unpack_to` is not null the unpacked vectors are also stored
// there (512 bytes per block) for the panel's other row tiles. The steps then run in the order
// 0, 4, 1, 5, 2, 6, 3, 7 (low and high nibbles of one loaded vector back to back): the integer
// sums are exact, so the order does not change a bit of the result.
template <bool kQ4, int R, bool kUnpack = false>
inline void gemm_tile(const uint8_t* w, const uint8_t* scales, int64_t nb, const Q8ActBlock* tile,
                      __m512* acc, const uint8_t* prefetch, uint8_t* unpack_to = nullptr) {
  static_assert(kQ4 || !kUnpack, "only Q4_0 codes are unpacked");
  constexpr int64_t kWeightStep = kUnpack ? 16 * kLanes : 512;
  for (int64_t b = 0; b < nb; ++b, tile += kActTileRows, w += kWeightStep, scales += 2 * kLanes) {
    if (prefetch != nullptr) {
#pragma GCC unroll 8
      for (int l = 0; l < kPrefetchLinesPerBlock<kQ4>; ++l) {
        _mm_prefetch(reinterpret_cast<const char*>(prefetch + (b * kPrefetchLinesPerBlock<kQ4> + l) * 64),
                     _MM_HINT_T2);
      }
    }
    __m512i dot[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) dot[r] = dot_start<kQ4>(tile[r]);
    if constexpr (kUnpack) {
      const __m512i low4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {
        const __m512i v = _mm512_load_si512(w + 64 * s);
        const __m512i lo = _mm512_and_si512(v, low4);
        if (unpack_to != nullptr) _mm512_store_si512(unpack_to + b * 512 + 64 * s, lo);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) dot[r] = dpbusd_bcast(dot[r], lo, tile[r].qs + 4 * s);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        if (unpack_to != nullptr) _mm512_store_si512(unpack_to + b * 512 + 64 * (4 + s), hi);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) dot[r] = dpbusd_bcast(dot[r], hi, tile[r].qs + 4 * (4 + s));
      }
    } else {
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) {
        const __m512i ws = _mm512_load_si512(w + 64 * s);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) dot[r] = dpbusd_bcast(dot[r], ws, tile[r].qs + 4 * s);
      }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales)));
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r] = combine(acc[r], dw, tile[r], dot[r]);
  }
}

// Where one group's rows of output go, and how many columns of it this call owns.
struct GroupOut {
  float* y;  // column 0 of the group in row 0
  int64_t y_stride;
  const float* bias;  // or null
  __mmask16 mask;
};

template <int R>
void store_rows(const GroupOut& out, int64_t row0, const __m512* acc, bool final) {
  for (int r = 0; r < R; ++r) {
    __m512 v = acc[r];
    if (final && out.bias != nullptr)
      v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(out.mask, out.bias));
    _mm512_mask_storeu_ps(out.y + (row0 + r) * out.y_stride, out.mask, v);
  }
}

template <bool kQ4, int R>
void run_gemv(const uint8_t* scales, const uint8_t* codes, int64_t nb, const Q8ActBlock* tile,
              const GroupOut& out) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  gemv_tile<kQ4, R>(scales, codes, nb, tile, acc);
  store_rows<R>(out, 0, acc, true);
}

// Rows [row0, row0 + R) (row0 a multiple of kActTileRows) over blocks [b0, b0 + nb) of the
// group; the accumulators continue from y when b0 > 0 (an exact f32 store and reload), and the
// bias is added after the last block. kUnpack and unpack_to as for gemm_tile.
template <bool kQ4, int R, bool kUnpack = false>
void run_gemm(const uint8_t* w, const uint8_t* scales, int64_t b0, int64_t nb, int64_t nb_total,
              const Q8ActBlock* act, int64_t row0, const GroupOut& out,
              const uint8_t* prefetch = nullptr, uint8_t* unpack_to = nullptr) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = b0 == 0 ? _mm512_setzero_ps()
                     : _mm512_maskz_loadu_ps(out.mask, out.y + (row0 + r) * out.y_stride);
  }
  const Q8ActBlock* tile = act + ((row0 / kActTileRows) * nb_total + b0) * kActTileRows;
  gemm_tile<kQ4, R, kUnpack>(w, scales + b0 * 2 * kLanes, nb, tile, acc, prefetch, unpack_to);
  store_rows<R>(out, row0, acc, b0 + nb == nb_total);
}

// run_gemm<kQ4, rows, kUnpack> for 1 <= rows < kGemmRows (a partial register tile: the last
// one, or with kUnpack a panel's only one).
template <bool kQ4, bool kUnpack = false, int R = kGemmRows - 1>
void run_gemm_tail(int rows, const uint8_t* w, const uint8_t* scales, int64_t b0, int64_t nb,
                   int64_t nb_total, const Q8ActBlock* act, int64_t row0, const GroupOut& out,
                   const uint8_t* prefetch = nullptr) {
  if constexpr (R >= 1) {
    if (rows == R) {
      run_gemm<kQ4, R, kUnpack>(w, scales, b0, nb, nb_total, act, row0, out, prefetch);
    } else {
      run_gemm_tail<kQ4, kUnpack, R - 1>(rows, w, scales, b0, nb, nb_total, act, row0, out,
                                         prefetch);
    }
  }
}

// The GEMM rows of one group: blocks in chunks, rows [i0, i1) in register tiles. Q4_0's first
// row tile unpacks the chunk's nibbles in registers and leaves them in `unpacked` for the other
// tiles (one pass over the packed codes per chunk, no separate unpack loop).
template <bool kQ4>
void gemm_group(const uint8_t* scales, const uint8_t* codes, int64_t nb, const Q8ActBlock* act,
                int64_t i0, int64_t i1, const GroupOut& out, uint8_t* unpacked) {
  constexpr int64_t kCodeBytes = kQ4 ? 16 * kLanes : 32 * kLanes;
  for (int64_t b0 = 0; b0 < nb; b0 += kChunkBlocks) {
    const int64_t count = nb - b0 < kChunkBlocks ? nb - b0 : kChunkBlocks;
    const uint8_t* wv = codes + b0 * kCodeBytes;
    // The packed groups are consecutive in memory, so whatever comes next (this group's next
    // chunk, or the next group's scales and codes) starts where this chunk's codes end.
    const uint8_t* next = codes + (b0 + count) * kCodeBytes;
    int64_t i = i0;
    if constexpr (kQ4) {
      if (i1 - i0 < kGemmRows) {
        run_gemm_tail<kQ4, true>(static_cast<int>(i1 - i0), wv, scales, b0, count, nb, act, i0,
                                 out, next);
        continue;
      }
      uint8_t* unpack_to = i1 - i0 > kGemmRows ? unpacked : nullptr;
      run_gemm<kQ4, kGemmRows, true>(wv, scales, b0, count, nb, act, i0, out, next, unpack_to);
      wv = unpacked;
      i += kGemmRows;
      next = nullptr;
    }
    for (; i + kGemmRows <= i1; i += kGemmRows) {
      run_gemm<kQ4, kGemmRows>(wv, scales, b0, count, nb, act, i, out, i == i0 ? next : nullptr);
    }
    if (i < i1) {
      run_gemm_tail<kQ4>(static_cast<int>(i1 - i), wv, scales, b0, count, nb, act, i, out,
                         i == i0 ? next : nullptr);
    }
  }
}

template <bool kQ4>
void matmul_q(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  const PackedWeight& w = *args.weight;
  const int64_t nb = w.k / kQ8ActBlockSize;
  const int64_t scale_bytes = (nb * 2 * kLanes + 63) / 64 * 64;
  const auto* act = static_cast<const Q8ActBlock*>(args.act);
  auto group_out = [&](int64_t g) {
    const int64_t col0 = g * kLanes;
    const int64_t lo = (n_begin > col0 ? n_begin : col0) - col0;
    const int64_t hi = (n_end < col0 + kLanes ? n_end : col0 + kLanes) - col0;
    GroupOut out;
    out.y = args.y + col0;
    out.y_stride = args.y_stride;
    out.bias = args.bias ? args.bias + col0 : nullptr;
    out.mask = static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
    return out;
  };
  const int64_t g_begin = n_begin / kLanes, g_end = (n_end + kLanes - 1) / kLanes;
  const auto* base = static_cast<const uint8_t*>(w.data);
  if (args.m < kGemmMinRows) {
    for (int64_t g = g_begin; g < g_end; ++g) {
      const uint8_t* scales = base + g * w.row_bytes;
      const GroupOut out = group_out(g);
      switch (args.m) {
        case 1: run_gemv<kQ4, 1>(scales, scales + scale_bytes, nb, act, out); break;
        case 2: run_gemv<kQ4, 2>(scales, scales + scale_bytes, nb, act, out); break;
        case 3: run_gemv<kQ4, 3>(scales, scales + scale_bytes, nb, act, out); break;
        default: break;
      }
    }
    return;
  }
  // Row panels outside, groups inside: a panel's activations stay in L1/L2 while the groups'
  // weights stream past them.
  alignas(64) uint8_t unpacked[kQ4 ? kChunkBlocks * 512 : 64];
  for (int64_t i0 = 0; i0 < args.m; i0 += kPanelRows) {
    const int64_t i1 = args.m - i0 < kPanelRows ? args.m : i0 + kPanelRows;
    for (int64_t g = g_begin; g < g_end; ++g) {
      const uint8_t* scales = base + g * w.row_bytes;
      gemm_group<kQ4>(scales, scales + scale_bytes, nb, act, i0, i1, group_out(g), unpacked);
    }
  }
}

}  // namespace

void quantize_q8_act_avx512(const float* x, int64_t k, Q8ActBlock* out, int64_t block_stride) {
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < k / kQ8ActBlockSize; ++b, x += kQ8ActBlockSize) {
    const __m512 v0 = _mm512_loadu_ps(x);
    const __m512 v1 = _mm512_loadu_ps(x + 16);
    // maxps returns its second operand when either is NaN: with the running maximum second (it
    // starts at 0, never NaN) a NaN element is skipped, as std::fmax skips it in the reference.
    const __m512 m0 = _mm512_max_ps(_mm512_and_ps(v0, abs_mask), _mm512_setzero_ps());
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(v1, abs_mask), m0));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    // Rounded values are integral, so the conversion is exact; the saturating narrowing
    // clamps to [-128, 127] (NaN converts to INT_MIN, so -128) as the reference does.
    const __m512i q0 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(v0, vid)));
    const __m512i q1 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(v1, vid)));
    const __m128i b0 = _mm512_cvtsepi32_epi8(q0);
    const __m128i b1 = _mm512_cvtsepi32_epi8(q1);
    Q8ActBlock& a = out[b * block_stride];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a.qs), b0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a.qs + 16), b1);
    a.d = d;
    a.sum = _mm512_reduce_add_epi32(
        _mm512_add_epi32(_mm512_cvtepi8_epi32(b0), _mm512_cvtepi8_epi32(b1)));
    a.neg_sum8 = -8 * a.sum;
    a.neg_sum128 = -128 * a.sum;
  }
}

double q4_0_tile_loop_avx512(int64_t iterations) {
  // 16 blocks of unpacked weights (8 KiB), their scales and a 12-row activation tile: all in L1.
  constexpr int64_t kBlocks = 16;
  alignas(64) uint8_t w[kBlocks * 512];
  alignas(64) uint16_t scales[kBlocks * kLanes];
  alignas(64) Q8ActBlock tile[kBlocks * kActTileRows];
  for (int64_t i = 0; i < kBlocks * 512; ++i) w[i] = static_cast<uint8_t>((i * 7) & 15);
  for (int64_t i = 0; i < kBlocks * kLanes; ++i) scales[i] = 0x3c00;  // f16 1.0
  for (int64_t b = 0; b < kBlocks * kActTileRows; ++b) {
    for (int t = 0; t < kQ8ActBlockSize; ++t) tile[b].qs[t] = static_cast<int8_t>(b * 3 + t - 40);
    tile[b].d = 1e-3f;
    tile[b].neg_sum8 = -8;
  }
  __m512 acc[kGemmRows];
  for (int r = 0; r < kGemmRows; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t it = 0; it < iterations; ++it) {
    __asm__ volatile("" : : "r"(w), "r"(tile) : "memory");  // the loads stay in the loop
    gemm_tile<true, kGemmRows>(w, reinterpret_cast<const uint8_t*>(scales), kBlocks, tile, acc,
                               nullptr);
  }
  __m512 sum = acc[0];
  for (int r = 1; r < kGemmRows; ++r) sum = _mm512_add_ps(sum, acc[r]);
  __asm__ volatile("" : : "v"(sum));
  return static_cast<double>(iterations) * kBlocks * kGemmRows * kLanes * kQ8ActBlockSize * 2;
}

void matmul_q4_0_avx512(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  matmul_q<true>(args, n_begin, n_end);
}

void matmul_q8_0_avx512(const MatmulArgs& args, int64_t n_begin, int64_t n_end) {
  matmul_q<false>(args, n_begin, n_end);
}

}  // namespace llmos::kernels::cpu::detail
