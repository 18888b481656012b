// Register-only throughput loops and a read loop that measure the AVX2 ceilings the matmul
// benchmark reports its kernels against (not used by the kernels themselves).
#include <immintrin.h>

#include "kernels/cpu/matmul_cpu_internal.h"

namespace llmos::kernels::cpu::detail {
namespace {

constexpr int kChains = 12;

template <typename V>
inline void opaque(V& v) {
  __asm__ volatile("" : "+x"(v));
}

}  // namespace

double peak_loop_avx2(PeakLoop loop, int64_t iterations) {
  switch (loop) {
    case PeakLoop::kInt8Dot: {
      // vpmaddubsw throughput (32 byte products per instruction): an upper bound for the AVX2
      // quantized kernels, which also need vpmaddwd / vpaddd around it.
      __m256i acc[kChains];
      for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_epi8(static_cast<char>(c));
      __m256i b = _mm256_set1_epi8(2);
      for (int64_t it = 0; it < iterations; ++it) {
        opaque(b);
#pragma GCC unroll 12
        for (int c = 0; c < kChains; ++c) acc[c] = _mm256_maddubs_epi16(acc[c], b);
      }
      for (int c = 1; c < kChains; ++c) acc[0] = _mm256_add_epi16(acc[0], acc[c]);
      opaque(acc[0]);
      return static_cast<double>(iterations) * kChains * 32 * 2;
    }
    case PeakLoop::kFp32Fma: {
      __m256 acc[kChains];
      for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(static_cast<float>(c));
      __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
      for (int64_t it = 0; it < iterations; ++it) {
        opaque(a);
        opaque(b);
#pragma GCC unroll 12
        for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
      }
      for (int c = 1; c < kChains; ++c) acc[0] = _mm256_add_ps(acc[0], acc[c]);
      opaque(acc[0]);
      return static_cast<double>(iterations) * kChains * 8 * 2;
    }
    case PeakLoop::kBf16Dot: return 0.0;
  }
  return 0.0;
}

uint64_t read_loop_avx2(const void* data, size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  __m256i s[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                  _mm256_setzero_si256()};
  for (size_t i = 0; i + 256 <= bytes; i += 256) {
    for (int u = 0; u < 8; ++u) {
      s[u % 4] = _mm256_add_epi64(
          s[u % 4], _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32 * u)));
    }
  }
  const __m256i t = _mm256_add_epi64(_mm256_add_epi64(s[0], s[1]), _mm256_add_epi64(s[2], s[3]));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), t);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

}  // namespace llmos::kernels::cpu::detail
