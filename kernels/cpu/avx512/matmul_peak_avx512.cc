// Register-only throughput loops and a read loop that measure the AVX-512 ceilings the matmul
// benchmark reports its kernels against (not used by the kernels themselves).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC PR 105593, see matmul_quant_avx512.cc
#endif
#include <immintrin.h>

#include "kernels/cpu/matmul_cpu_internal.h"

namespace llmos::kernels::cpu::detail {
namespace {

constexpr int kChains = 12;  // enough independent accumulators to cover latency x 2 ports

// The empty asm makes the operands opaque, so the loop cannot be folded or hoisted.
template <typename V>
inline void opaque(V& v) {
  __asm__ volatile("" : "+v"(v));
}

}  // namespace

double peak_loop_avx512(PeakLoop loop, int64_t iterations) {
  switch (loop) {
    case PeakLoop::kInt8Dot: {
      __m512i acc[kChains];
      for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_epi32(c);
      __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(2);
      for (int64_t it = 0; it < iterations; ++it) {
        opaque(a);
        opaque(b);
#pragma GCC unroll 12
        for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
      }
      for (int c = 1; c < kChains; ++c) acc[0] = _mm512_add_epi32(acc[0], acc[c]);
      opaque(acc[0]);
      return static_cast<double>(iterations) * kChains * 64 * 2;
    }
    case PeakLoop::kFp32Fma: {
      __m512 acc[kChains];
      for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c));
      __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
      for (int64_t it = 0; it < iterations; ++it) {
        opaque(a);
        opaque(b);
#pragma GCC unroll 12
        for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
      }
      for (int c = 1; c < kChains; ++c) acc[0] = _mm512_add_ps(acc[0], acc[c]);
      opaque(acc[0]);
      return static_cast<double>(iterations) * kChains * 16 * 2;
    }
    case PeakLoop::kBf16Dot: {
      __m512 acc[kChains];
      for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c));
      __m512i a = _mm512_set1_epi32(0x3f803f80), b = _mm512_set1_epi32(0x3a833a83);
      for (int64_t it = 0; it < iterations; ++it) {
        opaque(a);
        opaque(b);
#pragma GCC unroll 12
        for (int c = 0; c < kChains; ++c) {
          acc[c] = _mm512_dpbf16_ps(acc[c], reinterpret_cast<__m512bh>(a),
                                    reinterpret_cast<__m512bh>(b));
        }
      }
      for (int c = 1; c < kChains; ++c) acc[0] = _mm512_add_ps(acc[0], acc[c]);
      opaque(acc[0]);
      return static_cast<double>(iterations) * kChains * 32 * 2;
    }
  }
  return 0.0;
}

uint64_t read_loop_avx512(const void* data, size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  __m512i s[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                  _mm512_setzero_si512()};
  for (size_t i = 0; i + 256 <= bytes; i += 256) {
    for (int u = 0; u < 4; ++u) s[u] = _mm512_add_epi64(s[u], _mm512_load_si512(p + i + 64 * u));
  }
  s[0] = _mm512_add_epi64(_mm512_add_epi64(s[0], s[1]), _mm512_add_epi64(s[2], s[3]));
  // Summed as unsigned lanes: _mm512_reduce_add_epi64 adds signed ones, which may overflow.
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, s[0]);
  uint64_t sum = 0;
  for (uint64_t v : lanes) sum += v;
  return sum;
}

}  // namespace llmos::kernels::cpu::detail
