#include "kernels/cpu/rope_cpu.h"

namespace llmos::kernels::cpu {

StatusCode rope_rows_cpu(const RopeParams& p, const double* cos_sin, int64_t row_begin,
                         int64_t row_end) {
  if (p.x == nullptr || cos_sin == nullptr || p.rot_dim <= 0 || p.rot_dim % 2 != 0 ||
      p.rot_dim > p.head_dim || row_begin < 0 || row_end > p.rows) {
    return StatusCode::kInvalidArgument;
  }
  const int half = p.rot_dim / 2;
  // Pair i is (a, b) = (i, i + half) for neox, (2i, 2i + 1) otherwise.
  const int a_step = p.neox ? 1 : 2, b_offset = p.neox ? half : 1;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const double* cs = cos_sin + r * p.rot_dim;
    for (int h = 0; h < p.heads; ++h) {
      float* v = p.x + r * p.x_stride + static_cast<int64_t>(h) * p.head_dim;
      for (int i = 0; i < half; ++i) {
        const int a = i * a_step, b = a + b_offset;
        const double c = cs[2 * i], s = cs[2 * i + 1];
        const double x0 = v[a], x1 = v[b];
        v[a] = static_cast<float>(x0 * c - x1 * s);
        v[b] = static_cast<float>(x0 * s + x1 * c);
      }
    }
  }
  return StatusCode::kOk;
}

}  // namespace llmos::kernels::cpu
