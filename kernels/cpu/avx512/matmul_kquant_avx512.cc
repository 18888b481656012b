// AVX-512 (F, BW, VL, VNNI) K-quant kernels: q8_K activation quantization and the panel matmul.
//
// Lanes are output columns: lane c of every vector belongs to column 16p + c of the panel, so a
// weight vector is decoded once per row tile and used by R rows (once per panel pass, into a
// 32 KiB buffer all tiles read, when three or more tiles share it), each row's 4 activation bytes
// come from memory as a {1to16} broadcast operand of vpdpbusd, and no horizontal sums are
// needed. Per step (p, t) two weight vectors feed one vpdpbusd each per row; after a pair of
// sub-blocks the int32 sums are scaled (vpmulld) into the block sum S; once per block S (and the
// mins sum M) go through the f32 fma steps of kernels/matmul_q8k.h. The same instruction sequence
// runs for every lane and every R, so the results are batch invariant and bit-exact with the
// scalar reference.
// GCC 12 reports its own _mm512_undefined_*() (used inside cvtepi8_epi32, cvtph_ps, ...) as
// "maybe uninitialized" once inlined; the pragma must precede the header to cover it.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
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

inline __m512i bcast32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}
inline __m512i load64(const uint8_t* p) { return _mm512_loadu_si512(p); }

// Shifts each 16-bit lane left by S (right by -S): moves a bit to position 4 or 5 of its byte.
template <int S>
inline __m512i shift16(__m512i v) {
  if constexpr (S > 0) return _mm512_slli_epi16(v, S);
  else if constexpr (S < 0) return _mm512_srli_epi16(v, -S);
  else return v;
}
// a | (b & c), one instruction.
inline __m512i or_and(__m512i a, __m512i b, __m512i c) { return _mm512_ternarylogic_epi32(a, b, c, 0xF8); }

// Per format: kPairs pairs of sub-blocks of kSub elements, kSteps steps of 4 codes per pair;
// decode<P>(pb, t) yields the two unsigned code vectors of step (P, t); scale(pb, s) the int32
// scale of sub-block s per column; init(meta, s) the accumulator seed of sub-block s.
struct Q4 {
  using Pack = PackQ4K;
  static constexpr int kPairs = 4, kSteps = 8, kSub = 32;
  static constexpr bool kMins = true;
  template <int P>
  static void decode(const uint8_t* pb, int t, __m512i& w0, __m512i& w1) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i v = load64(pb + PackQ4K::kQs + (P * 8 + t) * 64);
    w0 = _mm512_and_si512(v, low4);
    w1 = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
  }
  static __m512i scale(const uint8_t* pb, int s) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pb + Pack::kSc + 16 * s)));
  }
  static __m512i init(const KqActMeta*, int) { return _mm512_setzero_si512(); }
};

struct Q5 : Q4 {
  using Pack = PackQ5K;
  template <int P>
  static void decode(const uint8_t* pb, int t, __m512i& w0, __m512i& w1) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), bit4 = _mm512_set1_epi8(0x10);
    const __m512i v = load64(pb + PackQ5K::kQs + (P * 8 + t) * 64);
    const __m512i h = load64(pb + PackQ5K::kQh + t * 64);
    // Bit 2P of h is W0's fifth bit, bit 2P + 1 W1's: move each to bit 4.
    w0 = or_and(_mm512_and_si512(v, low4), shift16<4 - 2 * P>(h), bit4);
    w1 = or_and(_mm512_and_si512(_mm512_srli_epi16(v, 4), low4), shift16<3 - 2 * P>(h), bit4);
  }
};

struct Q6 {
  using Pack = PackQ6K;
  static constexpr int kPairs = 8, kSteps = 4, kSub = 16;
  static constexpr bool kMins = false;
  template <int P>
  static void decode(const uint8_t* pb, int t, __m512i& w0, __m512i& w1) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), top2 = _mm512_set1_epi8(0x30);
    const __m512i v = load64(pb + PackQ6K::kQl + (P * 4 + t) * 64);
    const __m512i h = load64(pb + PackQ6K::kQh + ((P / 2) * 4 + t) * 64);
    // Even P: top bits in h bits 0-1 (W0) and 2-3 (W1); odd P: bits 4-5 and 6-7. Move to 4-5.
    constexpr int kS0 = P % 2 == 0 ? 4 : 0, kS1 = P % 2 == 0 ? 2 : -2;
    w0 = or_and(_mm512_and_si512(v, low4), shift16<kS0>(h), top2);
    w1 = or_and(_mm512_and_si512(_mm512_srli_epi16(v, 4), low4), shift16<kS1>(h), top2);
  }
  static __m512i scale(const uint8_t* pb, int s) {
    return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pb + Pack::kSc + 16 * s)));
  }
  // Seeding with -32 * bsums makes the sum over (q - 32) * a.
  static __m512i init(const KqActMeta* meta, int s) { return _mm512_set1_epi32(meta->neg32_bsums[s]); }
};

// Bytes of one block's decoded code vectors: the 2 * kPairs * kSteps vectors decode<P>(pb, t)
// yields, stored in (P, t, W0 / W1) order. 4 KiB for every format.
template <class F>
constexpr int64_t kDecodedBytes = int64_t{F::kPairs} * F::kSteps * 2 * 64;

template <class F, int... P>
inline void decode_block(const uint8_t* pb, uint8_t* out, std::integer_sequence<int, P...>) {
  auto one_pair = [&](auto pc) {
    constexpr int kP = decltype(pc)::value;
#pragma GCC unroll 8
    for (int t = 0; t < F::kSteps; ++t) {
      __m512i w0, w1;
      F::template decode<kP>(pb, t, w0, w1);
      _mm512_store_si512(out + ((kP * F::kSteps + t) * 2) * 64, w0);
      _mm512_store_si512(out + ((kP * F::kSteps + t) * 2 + 1) * 64, w1);
    }
  };
  (one_pair(std::integral_constant<int, P>{}), ...);
}

// One pair of sub-blocks (2P, 2P + 1) of one block for R rows; adds the scaled sums into s[].
// kDecoded: the code vectors come from `dec` (decode_block's output) instead of being decoded
// from the packed block here.
template <class F, int R, int P, bool kDecoded>
inline void pair(const uint8_t* pb, const uint8_t* dec, const int8_t* const* qs,
                 const KqActMeta* const* meta, __m512i* s) {
  __m512i a0[R], a1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    a0[r] = F::init(meta[r], 2 * P);
    a1[r] = F::init(meta[r], 2 * P + 1);
  }
#pragma GCC unroll 8
  for (int t = 0; t < F::kSteps; ++t) {
    __m512i w0, w1;
    if constexpr (kDecoded) {
      w0 = _mm512_load_si512(dec + ((P * F::kSteps + t) * 2) * 64);
      w1 = _mm512_load_si512(dec + ((P * F::kSteps + t) * 2 + 1) * 64);
    } else {
      F::template decode<P>(pb, t, w0, w1);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      a0[r] = _mm512_dpbusd_epi32(a0[r], w0, bcast32(qs[r] + (2 * P) * F::kSub + 4 * t));
      a1[r] = _mm512_dpbusd_epi32(a1[r], w1, bcast32(qs[r] + (2 * P + 1) * F::kSub + 4 * t));
    }
  }
  const __m512i sc0 = F::scale(pb, 2 * P), sc1 = F::scale(pb, 2 * P + 1);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    s[r] = _mm512_add_epi32(s[r], _mm512_add_epi32(_mm512_mullo_epi32(a0[r], sc0),
                                                   _mm512_mullo_epi32(a1[r], sc1)));
  }
}

template <class F, int R, bool kDecoded, int... P>
inline void all_pairs(const uint8_t* pb, const uint8_t* dec, const int8_t* const* qs,
                      const KqActMeta* const* meta, __m512i* s, std::integer_sequence<int, P...>) {
  (pair<F, R, P, kDecoded>(pb, dec, qs, meta, s), ...);
}

// R rows x one panel (16 columns, lanes in `mask`) over blocks [b_begin, b_end); with kDecoded,
// block b's code vectors are at decoded + (b - b_begin) * kDecodedBytes<F>.
constexpr int kPrefetchMaxRows = 2;  // tiles this small stream the weights: prefetch them

template <class F, int R, bool kDecoded = false>
void tile(const uint8_t* panel, const uint8_t* decoded, int64_t b_begin, int64_t b_end,
          const uint8_t* const* rows, int64_t k, float* const* ys, const float* bias16,
          __mmask16 mask, bool first, bool last) {
  using Pack = typename F::Pack;
  __m512 acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, ys[r]);
  for (int64_t b = b_begin; b < b_end; ++b) {
    const uint8_t* pb = panel + (b - b_begin) * Pack::kBytes;
    if constexpr (R <= kPrefetchMaxRows && !kDecoded) {
      // Decode streams the panels from DRAM with little arithmetic per byte: fetch the block
      // after next (blocks, then panels, are contiguous) while this one is computed.
      const uint8_t* ahead = pb + 2 * Pack::kBytes;
#pragma GCC unroll 8
      for (int l = 0; l < (Pack::kBytes + 63) / 64; ++l) {
        _mm_prefetch(reinterpret_cast<const char*>(ahead + 64 * l), _MM_HINT_T0);
      }
    }
    const int8_t* qs[R];
    const KqActMeta* meta[R];
    __m512i s[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      qs[r] = reinterpret_cast<const int8_t*>(rows[r]) + 256 * b;
      meta[r] = act_meta(rows[r], k) + b;
      s[r] = _mm512_setzero_si512();
    }
    const uint8_t* dec = kDecoded ? decoded + (b - b_begin) * kDecodedBytes<F> : nullptr;
    all_pairs<F, R, kDecoded>(pb, dec, qs, meta, s, std::make_integer_sequence<int, F::kPairs>{});
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb + Pack::kD)));
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 dd = _mm512_mul_ps(dw, _mm512_set1_ps(meta[r]->d));
      acc[r] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(s[r]), acc[r]);
    }
    if constexpr (F::kMins) {
      const __m512 dmw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb + Pack::kDmin)));
      __m512i msum[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) msum[r] = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int t = 0; t < 4; ++t) {
        const __m512i mn = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb + Pack::kMn + 32 * t)));
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) msum[r] = _mm512_dpwssd_epi32(msum[r], mn, bcast32(&meta[r]->bsums32[2 * t]));
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m512 dm = _mm512_mul_ps(dmw, _mm512_set1_ps(meta[r]->d));
        acc[r] = _mm512_fnmadd_ps(dm, _mm512_cvtepi32_ps(msum[r]), acc[r]);
      }
    }
  }
  const __m512 bias = (last && bias16) ? _mm512_maskz_loadu_ps(mask, bias16) : _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512 out = (last && bias16) ? _mm512_add_ps(acc[r], bias) : acc[r];
    _mm512_mask_storeu_ps(ys[r], mask, out);
  }
}

// Rows per tile: each decoded weight vector feeds 6 rows. 6 beats 4 (decode amortized) and 8
// (accumulators spill for Q6_K) on the development machine.
constexpr int kMaxRows = 6;
// When three or more row tiles share a panel, its blocks are decoded once, this many at a time
// (32 KiB of code vectors), and every tile reads them: decoding per tile costs 3-6 vector ops
// per 2 weight vectors against 2 * kMaxRows vpdpbusd.
constexpr int64_t kDecodeBlocks = 8;
// Below this many rows (two tiles) storing and reloading the decoded vectors costs more than
// decoding them in each tile.
constexpr int64_t kMinDecodedRows = 2 * kMaxRows;

// Rows [i0, i1) in tiles of up to kMaxRows against blocks [b_begin, b_end) of one panel (`panel`
// points at block b_begin).
template <class F, bool kDecoded>
void row_tiles(const PanelArgs& a, const uint8_t* panel, const uint8_t* decoded, int64_t b_begin,
               int64_t b_end, int64_t i0, int64_t i1, int64_t col0, __mmask16 mask,
               const float* bias16, bool first, bool last) {
  for (int64_t i = i0; i < i1; i += kMaxRows) {
    const int r = static_cast<int>(min_i64(kMaxRows, i1 - i));
    const uint8_t* rows[kMaxRows];
    float* ys[kMaxRows];
    for (int q = 0; q < r; ++q) {
      rows[q] = a.act + (i + q) * a.act_row_bytes;
      ys[q] = a.y + (i + q) * a.y_stride + col0;
    }
    switch (r) {
      case 1: tile<F, 1, kDecoded>(panel, decoded, b_begin, b_end, rows, a.k, ys, bias16, mask, first, last); break;
      case 2: tile<F, 2, kDecoded>(panel, decoded, b_begin, b_end, rows, a.k, ys, bias16, mask, first, last); break;
      case 3: tile<F, 3, kDecoded>(panel, decoded, b_begin, b_end, rows, a.k, ys, bias16, mask, first, last); break;
      case 4: tile<F, 4, kDecoded>(panel, decoded, b_begin, b_end, rows, a.k, ys, bias16, mask, first, last); break;
      case 5: tile<F, 5, kDecoded>(panel, decoded, b_begin, b_end, rows, a.k, ys, bias16, mask, first, last); break;
      default: tile<F, kMaxRows, kDecoded>(panel, decoded, b_begin, b_end, rows, a.k, ys, bias16, mask, first, last); break;
    }
  }
}

template <class F>
void run(const PanelArgs& a) {
  using Pack = typename F::Pack;
  // Rows are taken in chunks whose activations stay in L2 while every panel passes over them.
  const int64_t chunk = max_i64(kMaxRows, (256 * 1024 / a.act_row_bytes) / kMaxRows * kMaxRows);
  const int64_t p_begin = a.n_begin / kKquantPanel;
  const int64_t p_end = (a.n_end + kKquantPanel - 1) / kKquantPanel;
  alignas(64) uint8_t decoded[kDecodeBlocks * kDecodedBytes<F>];
  for (int64_t i0 = 0; i0 < a.m; i0 += chunk) {
    const int64_t i1 = min_i64(a.m, i0 + chunk);
    for (int64_t p = p_begin; p < p_end; ++p) {
      const uint8_t* panel = a.panels + (p - a.panel_base) * a.panel_stride;
      const int64_t col0 = p * kKquantPanel;
      const int lo = static_cast<int>(max_i64(a.n_begin, col0) - col0);
      const int hi = static_cast<int>(min_i64(a.n_end, col0 + kKquantPanel) - col0);
      const auto mask = static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
      const float* bias16 = a.bias ? a.bias + col0 : nullptr;
      if (i1 - i0 <= kMinDecodedRows) {  // few tiles: each decodes as it goes
        row_tiles<F, false>(a, panel, nullptr, a.block_begin, a.block_end, i0, i1, col0, mask,
                            bias16, a.first, a.last);
        continue;
      }
      // Several tiles: decode a few blocks once, run every tile over them, and carry the sums
      // to the next few through y (an exact f32 store and reload, as between calls).
      for (int64_t b0 = a.block_begin; b0 < a.block_end; b0 += kDecodeBlocks) {
        const int64_t b1 = min_i64(a.block_end, b0 + kDecodeBlocks);
        const uint8_t* pb0 = panel + (b0 - a.block_begin) * Pack::kBytes;
        for (int64_t b = b0; b < b1; ++b) {
          decode_block<F>(pb0 + (b - b0) * Pack::kBytes, decoded + (b - b0) * kDecodedBytes<F>,
                          std::make_integer_sequence<int, F::kPairs>{});
        }
        row_tiles<F, true>(a, pb0, decoded, b0, b1, i0, i1, col0, mask, bias16,
                           a.first && b0 == a.block_begin, a.last && b1 == a.block_end);
      }
    }
  }
}

}  // namespace

void panels_avx512(const PanelArgs& a) {
  switch (a.dtype) {
    case DType::kQ4_K: run<Q4>(a); break;
    case DType::kQ5_K: run<Q5>(a); break;
    case DType::kQ6_K: run<Q6>(a); break;
    default: break;
  }
}

int32_t int8_peak_probe_avx512(int64_t iters) {
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-5);
  __m512i c0 = _mm512_set1_epi32(0), c1 = _mm512_set1_epi32(1), c2 = _mm512_set1_epi32(2), c3 = _mm512_set1_epi32(3);
  __m512i c4 = _mm512_set1_epi32(4), c5 = _mm512_set1_epi32(5), c6 = _mm512_set1_epi32(6), c7 = _mm512_set1_epi32(7);
  __m512i c8 = _mm512_set1_epi32(8), c9 = _mm512_set1_epi32(9), ca = _mm512_set1_epi32(10), cb = _mm512_set1_epi32(11);
  __m512i cc = _mm512_set1_epi32(12), cd = _mm512_set1_epi32(13), ce = _mm512_set1_epi32(14), cf = _mm512_set1_epi32(15);
  for (int64_t i = 0; i < iters; ++i) {
    c0 = _mm512_dpbusd_epi32(c0, a, b); c1 = _mm512_dpbusd_epi32(c1, a, b);
    c2 = _mm512_dpbusd_epi32(c2, a, b); c3 = _mm512_dpbusd_epi32(c3, a, b);
    c4 = _mm512_dpbusd_epi32(c4, a, b); c5 = _mm512_dpbusd_epi32(c5, a, b);
    c6 = _mm512_dpbusd_epi32(c6, a, b); c7 = _mm512_dpbusd_epi32(c7, a, b);
    c8 = _mm512_dpbusd_epi32(c8, a, b); c9 = _mm512_dpbusd_epi32(c9, a, b);
    ca = _mm512_dpbusd_epi32(ca, a, b); cb = _mm512_dpbusd_epi32(cb, a, b);
    cc = _mm512_dpbusd_epi32(cc, a, b); cd = _mm512_dpbusd_epi32(cd, a, b);
    ce = _mm512_dpbusd_epi32(ce, a, b); cf = _mm512_dpbusd_epi32(cf, a, b);
  }
  const __m512i s = _mm512_add_epi32(
      _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                       _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7))),
      _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(ca, cb)),
                       _mm512_add_epi32(_mm512_add_epi32(cc, cd), _mm512_add_epi32(ce, cf))));
  return _mm512_reduce_add_epi32(s);
}

void quantize_rows_avx512(const float* x, int64_t x_stride, int64_t rows, int64_t k, uint8_t* act) {
  const int64_t row_bytes = kquant_activation_row_bytes(k);
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < rows; ++i) {
    uint8_t* row = act + i * row_bytes;
    auto* meta = reinterpret_cast<KqActMeta*>(row + k);
    for (int64_t b = 0; b < k / 256; ++b) {
      const float* xb = x + i * x_stride + 256 * b;
      __m512 v[16];
      __m512 amax_v = _mm512_setzero_ps();
      for (int g = 0; g < 16; ++g) {
        v[g] = _mm512_loadu_ps(xb + 16 * g);
        // max(new, old) keeps old where new is NaN: NaNs are skipped as in the reference.
        amax_v = _mm512_max_ps(_mm512_and_ps(v[g], abs_mask), amax_v);
      }
      const float amax = _mm512_reduce_max_ps(amax_v);
      KqActMeta& mb = meta[b];
      if (amax == 0.0f) {
        std::memset(row + 256 * b, 0, 256);
        std::memset(&mb, 0, sizeof(mb));
        continue;
      }
      // The reference's max is the first element of largest magnitude (its sign matters).
      float max = 0.0f;
      for (int g = 0; g < 16; ++g) {
        const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_and_ps(v[g], abs_mask), _mm512_set1_ps(amax), _CMP_EQ_OQ);
        if (hit) {
          max = xb[16 * g + __builtin_ctz(hit)];
          break;
        }
      }
      const float iscale = -127.0f / max;
      const __m512 vs = _mm512_set1_ps(iscale);
      for (int g = 0; g < 16; ++g) {
        // Round half to even (the MXCSR default), as the reference's float-adder trick does.
        __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(v[g], vs));
        q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(row + 256 * b + 16 * g), _mm512_cvtepi32_epi8(q));
        mb.bsums[g] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
      }
      mb.d = 1.0f / iscale;
      finish_meta(&mb);
    }
  }
}

}  // namespace llmos::kernels::cpu::kquant_detail
