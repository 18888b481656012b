#include "kernels/cpu/elementwise_cpu.h"

#include "kernels/activation.h"
#include "kernels/norm.h"

namespace llmos::kernels::cpu {

void rms_norm_row_cpu(Isa isa, const float* x, const float* weight, float* y, int64_t dim,
                      float eps) {
  switch (isa) {
    case Isa::kAvx512:
      detail::rms_norm_row_avx512(x, weight, y, dim, eps);
      return;
    case Isa::kAvx2:
      detail::rms_norm_row_avx2(x, weight, y, dim, eps);
      return;
    case Isa::kScalar:
      break;
  }
  RmsNormParams p;
  p.x = x;
  p.x_stride = dim;
  p.weight = weight;
  p.y = y;
  p.y_stride = dim;
  p.rows = 1;
  p.dim = dim;
  p.eps = eps;
  rms_norm_ref(p, 0, 1);
}

void swiglu_cpu(Isa isa, const float* gate, const float* up, float* out, int64_t n) {
  switch (isa) {
    case Isa::kAvx512:
      detail::swiglu_avx512(gate, up, out, n);
      return;
    case Isa::kAvx2:
      detail::swiglu_avx2(gate, up, out, n);
      return;
    case Isa::kScalar:
      break;
  }
  swiglu_ref(gate, up, out, 0, n);
}

void add_cpu(Isa isa, float* y, const float* x, int64_t n) {
  switch (isa) {
    case Isa::kAvx512:
      detail::add_avx512(y, x, n);
      return;
    case Isa::kAvx2:
      detail::add_avx2(y, x, n);
      return;
    case Isa::kScalar:
      break;
  }
  add_inplace_ref(y, x, 0, n);
}

}  // namespace llmos::kernels::cpu
