#include <cmath>

#include "kernels/norm.h"

namespace llmos::kernels {

StatusCode rms_norm_ref(const RmsNormParams& p, int64_t row_begin, int64_t row_end) {
  if (p.x == nullptr || p.weight == nullptr || p.y == nullptr || p.dim <= 0)
    return StatusCode::kInvalidArgument;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* x = p.x + r * p.x_stride;
    float* y = p.y + r * p.y_stride;
    double sum_sq = 0.0;
    for (int64_t i = 0; i < p.dim; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
    const double inv = 1.0 / std::sqrt(sum_sq / static_cast<double>(p.dim) + p.eps);
    for (int64_t i = 0; i < p.dim; ++i) y[i] = static_cast<float>(x[i] * inv * p.weight[i]);
  }
  return StatusCode::kOk;
}

}  // namespace llmos::kernels
