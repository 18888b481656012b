// The decode GEMV for K-quant weights (Q4_K, Q5_K, Q6_K) on int8 dot products (__dp4a):
// activation rows are quantized on the device into q8_K blocks of 256 exactly as
// kernels::quantize_row_q8k_ref does (same d, codes and bsums), each weight block meets each
// activation block in the exact integer S (and M) of kernels/matmul_q8k.h, and the blocks are
// combined in f32 with that header's steps: the K-quant math of the CPU, with the blocks of a
// row summed in another order (split across lanes, then a tree). The per-block arithmetic lives
// in q8k_block_math.cuh. Launchers enqueue on `stream`, never allocate and never throw; they
// return the launch status, or cudaErrorInvalidValue for arguments they cannot serve (the
// caller then uses gemv_cuda).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/cuda/matmul_cuda.h"
#include "kernels/cuda/q8k_block_math.cuh"
#include "kernels/matmul.h"

namespace llmos::kernels::cuda {

// Weight formats gemv_q8k_cuda serves: q4_K, q5_K and q6_K.
bool gemv_q8k_supported(DType dtype);

// Whether gemv_q8k_cuda serves p: a K-quant weight at a 4-byte aligned base (device allocations
// are) with 2-byte aligned rows (as GGUF rows are), 1 <= m <= kGemvMaxRows, k a positive
// multiple of 256. Other calls belong to gemv_cuda.
bool gemv_q8k_serves(const MatmulParams& p);

// Bytes of the q8_K blocks of m rows of k values (k / 256 blocks a row).
size_t q8k_act_bytes(int64_t m, int64_t k);

// act[r * (k / 256) + b] = block b of row r of x (rows x_stride floats apart), for r < m <=
// kGemvMaxRows; k a multiple of 256; act 16-byte aligned, q8k_act_bytes(m, k) long. Device
// pointers.
cudaError_t quantize_q8k_act_cuda(const float* x, int64_t x_stride, int64_t m, int64_t k,
                                  Q8KActBlockCuda* act, cudaStream_t stream);

// y = x · Wᵀ (+ bias) for p.m <= kGemvMaxRows rows whose blocks quantize_q8k_act_cuda wrote to
// `act` (16-byte aligned); p.x is not read. Device pointers. cudaErrorInvalidValue unless
// gemv_q8k_serves(p).
cudaError_t gemv_q8k_cuda(const MatmulParams& p, const Q8KActBlockCuda* act, cudaStream_t stream);

}  // namespace llmos::kernels::cuda
