// e^x for 16 floats, shared by the AVX-512 kernels (attention's softmax, SwiGLU). Include only
// from files compiled with AVX-512 flags. `static`: every file keeps its own copy, so no
// AVX-512 code can become a shared (weak) symbol that generic code might call.
//
// x = n ln2 + r with |r| <= ln2/2; e^r by the classic degree-6 single-precision polynomial
// (Cephes' expf coefficients, < 2 ulp); 2^n applied with vscalefps. x is clamped below at
// -87.3 (results under ~1e-38 become that, which softmax weights and silu treat as 0); large x
// overflows to +inf through vscalefps.
#pragma once

#include <immintrin.h>

namespace llmos::kernels::cpu::detail {

static inline __m512 exp512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

}  // namespace llmos::kernels::cpu::detail
