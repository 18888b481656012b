#include <cmath>

#include "kernels/activation.h"

namespace llmos::kernels {

StatusCode swiglu_ref(const float* gate, const float* up, float* out, int64_t begin, int64_t end) {
  if (gate == nullptr || up == nullptr || out == nullptr) return StatusCode::kInvalidArgument;
  for (int64_t i = begin; i < end; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
  return StatusCode::kOk;
}

StatusCode add_inplace_ref(float* y, const float* x, int64_t begin, int64_t end) {
  if (y == nullptr || x == nullptr) return StatusCode::kInvalidArgument;
  for (int64_t i = begin; i < end; ++i) y[i] += x[i];
  return StatusCode::kOk;
}

}  // namespace llmos::kernels
