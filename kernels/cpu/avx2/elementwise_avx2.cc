// AVX2 + FMA RMSNorm and SwiGLU (kernels/cpu/elementwise_cpu.h states the accuracy contract).
// Everything here is file-local or declared in elementwise_cpu.h: no inline library code, so
// nothing compiled with AVX2 flags can be linked into a generic caller.
#include <immintrin.h>

#include "kernels/cpu/avx2/exp_avx2.h"
#include "kernels/cpu/elementwise_cpu.h"

namespace llmos::kernels::cpu::detail {
namespace {

__m256 silu_mul(__m256 g, __m256 u) {
  const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

__m256i tail_mask(int64_t count) {  // lanes [0, count) set, count in [1, 7]
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), lanes);
}

}  // namespace

void rms_norm_row_avx2(const float* x, const float* weight, float* y, int64_t dim, float eps) {
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    const __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
    const __m256d hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
    acc0 = _mm256_fmadd_pd(lo, lo, acc0);
    acc1 = _mm256_fmadd_pd(hi, hi, acc1);
  }
  __m256d acc = _mm256_add_pd(acc0, acc1);
  __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(acc), _mm256_extractf128_pd(acc, 1));
  double sum = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
  for (; i < dim; ++i) sum += static_cast<double>(x[i]) * x[i];
  const double inv = 1.0 / __builtin_sqrt(sum / static_cast<double>(dim) + static_cast<double>(eps));
  const __m256d vinv = _mm256_set1_pd(inv);
  for (i = 0; i + 4 <= dim; i += 4) {
    const __m256d xv = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
    const __m256d wv = _mm256_cvtps_pd(_mm_loadu_ps(weight + i));
    _mm_storeu_ps(y + i, _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_mul_pd(xv, vinv), wv)));
  }
  for (; i < dim; ++i) y[i] = static_cast<float>(x[i] * inv * weight[i]);
}

void swiglu_avx2(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, silu_mul(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    const __m256 r = silu_mul(_mm256_maskload_ps(gate + i, m), _mm256_maskload_ps(up + i, m));
    _mm256_maskstore_ps(out + i, m, r);
  }
}

void add_avx2(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
  }
  for (; i < n; ++i) y[i] += x[i];
}

}  // namespace llmos::kernels::cpu::detail
