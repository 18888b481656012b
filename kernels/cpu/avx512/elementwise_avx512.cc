// AVX-512 RMSNorm and SwiGLU (kernels/cpu/elementwise_cpu.h states the accuracy contract).
// Everything here is file-local or declared in elementwise_cpu.h: no inline library code, so
// nothing compiled with AVX-512 flags can be linked into a generic caller.
#include <immintrin.h>

#include "kernels/cpu/avx512/exp_avx512.h"
#include "kernels/cpu/elementwise_cpu.h"

namespace llmos::kernels::cpu::detail {
namespace {

__m512 silu_mul(__m512 g, __m512 u) {
  const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

}  // namespace

void rms_norm_row_avx512(const float* x, const float* weight, float* y, int64_t dim, float eps) {
  __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    acc0 = _mm512_fmadd_pd(lo, lo, acc0);
    acc1 = _mm512_fmadd_pd(hi, hi, acc1);
  }
  if (i < dim) {
    const __mmask16 m = static_cast<__mmask16>((1u << (dim - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    acc0 = _mm512_fmadd_pd(lo, lo, acc0);
    acc1 = _mm512_fmadd_pd(hi, hi, acc1);
  }
  const double sum = _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
  const double inv = 1.0 / __builtin_sqrt(sum / static_cast<double>(dim) + static_cast<double>(eps));
  const __m512d vinv = _mm512_set1_pd(inv);
  // x * inv * weight in double with one rounding, as the reference.
  for (i = 0; i + 8 <= dim; i += 8) {
    const __m512d xv = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
    const __m512d wv = _mm512_cvtps_pd(_mm256_loadu_ps(weight + i));
    _mm256_storeu_ps(y + i, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_mul_pd(xv, vinv), wv)));
  }
  if (i < dim) {
    const __mmask8 m = static_cast<__mmask8>((1u << (dim - i)) - 1u);
    const __m512d xv = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + i));
    const __m512d wv = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, weight + i));
    _mm256_mask_storeu_ps(y + i, m, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_mul_pd(xv, vinv), wv)));
  }
}

void swiglu_avx512(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(out + i, silu_mul(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 r = silu_mul(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i));
    _mm512_mask_storeu_ps(out + i, m, r);
  }
}

void add_avx512(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_loadu_ps(x + i)));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(y + i, m,
                          _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
  }
}

}  // namespace llmos::kernels::cpu::detail
