#include "kernels/matmul.h"

#include "quant/quant.h"

namespace llmos::kernels {

StatusCode matmul_ref(const MatmulParams& p, int64_t n_begin, int64_t n_end, float* scratch) {
  if (p.weight == nullptr || p.x == nullptr || p.y == nullptr || scratch == nullptr)
    return StatusCode::kInvalidArgument;
  if (n_begin < 0 || n_end > p.n || n_begin > n_end || p.k <= 0 || p.m < 0)
    return StatusCode::kInvalidArgument;
  // Rule out everything dequantize_row would throw for, so this kernel never throws.
  const bool plain = p.weight_dtype == DType::kF32 || p.weight_dtype == DType::kF16 ||
                     p.weight_dtype == DType::kBF16;
  if (!plain && !(dtype_from_ggml_id(static_cast<uint32_t>(p.weight_dtype)) &&
                  dtype_is_quantized(p.weight_dtype)))
    return StatusCode::kUnsupported;
  if (p.k % dtype_block_size(p.weight_dtype) != 0 || p.weight_row_bytes < dtype_row_bytes(p.weight_dtype, p.k))
    return StatusCode::kInvalidArgument;
  const auto* w = static_cast<const uint8_t*>(p.weight);
  for (int64_t j = n_begin; j < n_end; ++j) {
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
