// The RMSNorm row reduction shared by rms_norm_cuda (elementwise_cuda.cu) and the fused
// norm + quantization kernels (norm_quant_cuda.cu): one code path, so h rounds alike in both.
// Device code only.
#pragma once

#include <cstdint>

namespace llmos::kernels::cuda {

// Threads per row: the reduction's order (and so its rounding) depends on it.
inline constexpr int kRowNormThreads = 256;

// 1 / rms of row x, returned to every thread of a block of kRowNormThreads threads: thread i
// sums elements i, i + 256, ... with fmaf, a xor tree per warp, then warp 0 sums the 8 warp
// partials with the same tree; the last step is in double. Every thread must call it.
__device__ __forceinline__ float row_inv_rms(const float* x, int64_t dim, float eps) {
  constexpr int kWarps = kRowNormThreads / 32;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum = fmaf(x[i], x[i], sum);
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  __shared__ float partial[kWarps];
  __shared__ float inv_rms;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    float s = lane < kWarps ? partial[lane] : 0.0f;
    for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) {
      inv_rms = static_cast<float>(1.0 / sqrt(static_cast<double>(s) / static_cast<double>(dim) + eps));
    }
  }
  __syncthreads();
  return inv_rms;
}

}  // namespace llmos::kernels::cuda
