// Matrix multiplication against a weight of any dtype: y[m, n] = x[m, k] · W[n, k]^T (+ bias).
// W is stored row-major as n rows of k elements (the GGUF layout: one output feature per row,
// block-quantized along k). Activations x and outputs y are f32.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"

namespace llmos::kernels {

struct MatmulParams {
  const void* weight = nullptr;   // n rows, each weight_row_bytes long
  DType weight_dtype = DType::kF32;
  int64_t weight_row_bytes = 0;
  const float* bias = nullptr;    // [n] or null
  const float* x = nullptr;       // [m, k], row stride x_stride floats
  int64_t x_stride = 0;
  float* y = nullptr;             // [m, n], row stride y_stride floats
  int64_t y_stride = 0;
  int64_t m = 0, n = 0, k = 0;
};

// Computes output columns [n_begin, n_end) for all m rows. `scratch` holds k floats (one
// dequantized weight row). Reference: dequantize a row, dot in double, round once.
StatusCode matmul_ref(const MatmulParams& p, int64_t n_begin, int64_t n_end, float* scratch);

}  // namespace llmos::kernels
