// The decode GEMV for Q4_0 / Q8_0 weights on int8 dot products (__dp4a): activation rows are
// quantized on the device into 32-value int8 blocks exactly as kernels::quantize_row_q8_act does
// (same scales, same codes), then each weight block meets each activation block in one exact
// integer dot product and the blocks are combined in f32 as acc = fma(d_w * d_x, isum, acc):
// the q8 math of kernels/matmul_q8.h, with the blocks of a row summed in another order (split
// across lanes, then a tree). The per-block arithmetic lives in q8_block_math.cuh.
// Launchers enqueue on `stream`, never allocate and never throw; they return the launch status,
// or cudaErrorInvalidValue for arguments they cannot serve (the caller then uses gemv_cuda).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/cuda/matmul_cuda.h"
#include "kernels/cuda/q8_block_math.cuh"
#include "kernels/matmul.h"

namespace llmos::kernels::cuda {

// Weight formats gemv_q8_cuda serves: q4_0 and q8_0.
bool gemv_q8_supported(DType dtype);

// Whether gemv_q8_cuda serves p: q4_0 / q8_0 weight (2-byte aligned rows, as GGUF rows are),
// 1 <= m <= kGemvMaxRows, k a positive multiple of 32. Other calls belong to gemv_cuda.
bool gemv_q8_serves(const MatmulParams& p);

// Bytes of the activation blocks of m rows of k values (k / 32 blocks a row).
size_t q8_act_bytes(int64_t m, int64_t k);

// act[r * (k / 32) + b] = block b of row r of x (rows x_stride floats apart), for r < m <=
// kGemvMaxRows; k a multiple of 32; act 16-byte aligned, q8_act_bytes(m, k) long. Device pointers.
cudaError_t quantize_q8_act_cuda(const float* x, int64_t x_stride, int64_t m, int64_t k,
                                 Q8ActBlockCuda* act, cudaStream_t stream);

// y = x · Wᵀ (+ bias) for p.m <= kGemvMaxRows rows whose blocks quantize_q8_act_cuda wrote to
// `act` (16-byte aligned); p.x is not read. Device pointers. cudaErrorInvalidValue unless
// gemv_q8_serves(p).
cudaError_t gemv_q8_cuda(const MatmulParams& p, const Q8ActBlockCuda* act, cudaStream_t stream);

}  // namespace llmos::kernels::cuda
