#include <cmath>

#include "kernels/rope.h"

namespace llmos::kernels {

StatusCode rope_ref(const RopeParams& p, int64_t row_begin, int64_t row_end) {
  if (p.x == nullptr || p.positions == nullptr || p.inv_freq == nullptr) return StatusCode::kInvalidArgument;
  if (p.rot_dim <= 0 || p.rot_dim % 2 != 0 || p.rot_dim > p.head_dim) return StatusCode::kInvalidArgument;
  const int half = p.rot_dim / 2;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const double pos = p.positions[r];
    for (int h = 0; h < p.heads; ++h) {
      float* v = p.x + r * p.x_stride + static_cast<int64_t>(h) * p.head_dim;
      for (int i = 0; i < half; ++i) {
        const double theta = pos * p.inv_freq[i];
        const double c = std::cos(theta) * p.attn_factor;
        const double s = std::sin(theta) * p.attn_factor;
        const int a = p.neox ? i : 2 * i;
        const int b = p.neox ? i + half : 2 * i + 1;
        const double x0 = v[a];
        const double x1 = v[b];
        v[a] = static_cast<float>(x0 * c - x1 * s);
        v[b] = static_cast<float>(x0 * s + x1 * c);
      }
    }
  }
  return StatusCode::kOk;
}

}  // namespace llmos::kernels
