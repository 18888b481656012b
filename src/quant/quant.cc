// The dtype dispatch of quant.h: argument checks, the plain float types, and the per-format row
// kernels of quant_rows.h.
#include "quant/quant.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "quant/quant_rows.h"

namespace llmos {
namespace {

using DequantizeFn = void (*)(const uint8_t*, float*, int64_t);
using QuantizeFn = void (*)(const float*, uint8_t*, int64_t);

struct BlockKernels {
  DequantizeFn dequantize;
  QuantizeFn quantize;
};

// Kernels for a block-quantized dtype; both null for the others.
BlockKernels block_kernels(DType dtype) {
  switch (dtype) {
    case DType::kQ4_0: return {quant::dequantize_q4_0, quant::quantize_q4_0};
    case DType::kQ4_1: return {quant::dequantize_q4_1, quant::quantize_q4_1};
    case DType::kQ5_0: return {quant::dequantize_q5_0, quant::quantize_q5_0};
    case DType::kQ5_1: return {quant::dequantize_q5_1, quant::quantize_q5_1};
    case DType::kQ8_0: return {quant::dequantize_q8_0, quant::quantize_q8_0};
    case DType::kQ2_K: return {quant::dequantize_q2_k, quant::quantize_q2_k};
    case DType::kQ3_K: return {quant::dequantize_q3_k, quant::quantize_q3_k};
    case DType::kQ4_K: return {quant::dequantize_q4_k, quant::quantize_q4_k};
    case DType::kQ5_K: return {quant::dequantize_q5_k, quant::quantize_q5_k};
    case DType::kQ6_K: return {quant::dequantize_q6_k, quant::quantize_q6_k};
    default: return {nullptr, nullptr};
  }
}

bool is_plain_float(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

// Validates (dtype, pointers, n) for `op` and returns the number of blocks. Unknown enumerators
// and integer types are kUnsupported; everything about the arguments is kInvalidArgument.
int64_t checked_block_count(const char* op, DType dtype, const void* src, const void* dst,
                            int64_t n) {
  const auto id = static_cast<uint32_t>(dtype);
  if (!dtype_from_ggml_id(id).has_value()) {
    throw_error(StatusCode::kUnsupported, op, ": unknown dtype id ", id);
  }
  if (!is_plain_float(dtype) && block_kernels(dtype).dequantize == nullptr) {
    throw_error(StatusCode::kUnsupported, op, "(", dtype_name(dtype),
                "): integer dtypes have no float conversion");
  }
  LLMOS_CHECK_ARG(n >= 0, op, "(", dtype_name(dtype), "): n = ", n, " is negative");
  const int64_t block_size = dtype_block_size(dtype);
  LLMOS_CHECK_ARG(n % block_size == 0, op, "(", dtype_name(dtype), "): n = ", n,
                  " is not a multiple of the block size ", block_size);
  LLMOS_CHECK_ARG(n == 0 || (src != nullptr && dst != nullptr), op, "(", dtype_name(dtype),
                  "): null ", src == nullptr ? "src" : "dst", " with n = ", n);
  return n / block_size;
}

}  // namespace

void dequantize_row(DType dtype, const void* src, float* dst, int64_t n) {
  const int64_t nblocks = checked_block_count("dequantize_row", dtype, src, dst, n);
  if (n == 0) return;
  const auto* bytes = static_cast<const uint8_t*>(src);
  switch (dtype) {
    case DType::kF32:
      std::memmove(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16:
    case DType::kBF16: {
      const bool f16 = dtype == DType::kF16;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);  // rows need not be 2-byte aligned
        dst[i] = f16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      return;
    }
    default:
      block_kernels(dtype).dequantize(bytes, dst, nblocks);
      return;
  }
}

void quantize_row(DType dtype, const float* src, void* dst, int64_t n) {
  const int64_t nblocks = checked_block_count("quantize_row", dtype, src, dst, n);
  if (n == 0) return;
  auto* bytes = static_cast<uint8_t*>(dst);
  switch (dtype) {
    case DType::kF32:
      std::memmove(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16:
    case DType::kBF16: {
      const bool f16 = dtype == DType::kF16;
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
        std::memcpy(bytes + 2 * i, &h, 2);
      }
      return;
    }
    default:
      // Block formats have no encoding for inf/nan, and the scale searches assume finite input:
      // reject it instead of writing a block of garbage.
      for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(src[i])) {
          throw_error(StatusCode::kInvalidArgument, "quantize_row(", dtype_name(dtype), "): src[",
                      i, "] = ", src[i], " is not finite");
        }
      }
      block_kernels(dtype).quantize(src, bytes, nblocks);
      return;
  }
}

bool can_quantize(DType dtype) {
  return is_plain_float(dtype) || block_kernels(dtype).quantize != nullptr;
}

}  // namespace llmos
