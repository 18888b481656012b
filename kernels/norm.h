// RMSNorm: y = x / sqrt(mean(x^2) + eps) * weight, per row.
#pragma once

#include <cstdint>

#include "core/error.h"

namespace llmos::kernels {

struct RmsNormParams {
  const float* x = nullptr;   // [rows, dim], row stride x_stride
  int64_t x_stride = 0;
  const float* weight = nullptr;  // [dim]
  float* y = nullptr;         // [rows, dim], row stride y_stride (may alias x)
  int64_t y_stride = 0;
  int64_t rows = 0, dim = 0;
  float eps = 1e-5f;
};

StatusCode rms_norm_ref(const RmsNormParams& p, int64_t row_begin, int64_t row_end);

}  // namespace llmos::kernels
