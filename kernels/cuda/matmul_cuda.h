// CUDA kernels of the matmul family: weight-row dequantization (embedding lookup and the
// dequantize-then-GEMM prefill path), a GEMV for few activation rows, and the small conversions
// around cuBLAS. Launchers enqueue on `stream`, never allocate and never throw; they return the
// launch status (cudaGetLastError), or cudaErrorInvalidValue for arguments they cannot serve.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"
#include "kernels/matmul.h"

namespace llmos::kernels::cuda {

// Weight formats the CUDA kernels decode: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_K,
// q5_K, q6_K.
bool weight_dtype_supported(DType dtype);

// out[i, :] = dequantized row (rows ? rows[i] : i) of `table`, for i < n_rows. out_dtype is f32,
// f16 or bf16; out rows are out_stride elements apart. `rows` is a device array.
cudaError_t dequantize_rows_cuda(DType dtype, const void* table, int64_t row_bytes,
                                 const int32_t* rows, int64_t n_rows, int64_t cols,
                                 DType out_dtype, void* out, int64_t out_stride,
                                 cudaStream_t stream);

// Rows of activations that gemv_cuda serves in one pass (decode batches).
inline constexpr int64_t kGemvMaxRows = 8;

// y = x · Wᵀ (+ bias) for p.m <= kGemvMaxRows, any supported weight dtype, f32 accumulation.
// All pointers in p are device pointers.
cudaError_t gemv_cuda(const MatmulParams& p, cudaStream_t stream);

// dst[r, c] = (to) x[r, c]; to is f16 or bf16; dst is contiguous [rows, cols].
cudaError_t convert_f32_cuda(const float* x, int64_t x_stride, int64_t rows, int64_t cols,
                             DType to, void* dst, cudaStream_t stream);

// y[r, c] += bias[c].
cudaError_t add_bias_cuda(float* y, int64_t y_stride, const float* bias, int64_t rows,
                          int64_t cols, cudaStream_t stream);

}  // namespace llmos::kernels::cuda
