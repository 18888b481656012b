#include "kernels/matmul.h"

#include "quant/quant.h"

namespace llmos::kernels {

StatusCode matmul_ref(const MatmulParams& p, int64_t n_begin, int64_t n_end, float* scratch) {
  if (p.weight == nullptr || p.x == nullptr || p.y == nullptr || scratch == nullptr)
    return StatusCode::kInvalidArgument;
  if (n_begin < 0 || n_end > p.n || n_begin > n_end || p.k <= 0 || p.m < 0)
    return StatusCode::kInvalidArgument;
  const auto* w = static_cast<const uint8_t*>(p.weight);
  for (int64_t j = n_begin; j < n_end; ++j) {
    // dequantize_row is itself the reference; it may throw only on a bad dtype/length, which
    // the backend's front end has already ruled out.
    dequantize_row(p.weight_dtype, w + j * p.weight_row_bytes, scratch, p.k);
    const double b = p.bias ? p.bias[j] : 0.0;
    for (int64_t i = 0; i < p.m; ++i) {
      const float* xi = p.x + i * p.x_stride;
      double acc = 0.0;
      for (int64_t t = 0; t < p.k; ++t) acc += static_cast<double>(xi[t]) * scratch[t];
      p.y[i * p.y_stride + j] = static_cast<float>(acc + b);
    }
  }
  return StatusCode::kOk;
}

}  // namespace llmos::kernels
