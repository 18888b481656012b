#include "kernels/cuda/norm_quant_cuda.h"

#include "kernels/cuda/matmul_cuda.h"
#include "kernels/cuda/row_norm.cuh"

namespace llmos::kernels::cuda {
namespace {

constexpr int kThreads = kRowNormThreads;  // the row reduction's block size (row_norm.cuh)
constexpr int kWarps = kThreads / 32;

// One CTA per row. After the norm, warp w takes activation blocks w, w + 8, ...: each lane
// normalizes its values of the block (the expression of rms_norm_cuda), stores them to h and
// quantizes them with its warp. y may alias x: each element is read and written by one thread,
// after every thread has finished the sum.
__global__ void __launch_bounds__(kThreads) rms_norm_quant_q8_kernel(RmsNormParams p, Q8ActBlockCuda* act) {
  const int64_t r = blockIdx.x;
  const float* x = p.x + r * p.x_stride;
  float* y = p.y + r * p.y_stride;
  const float inv_rms = row_inv_rms(x, p.dim, p.eps);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t nb = p.dim / kQ8Block;
  for (int64_t b = warp; b < nb; b += kWarps) {
    const int64_t i = b * kQ8Block + lane;
    const float h = x[i] * inv_rms * p.weight[i];
    y[i] = h;
    q8_quantize_warp(h, lane, act + r * nb + b);
  }
}

__global__ void __launch_bounds__(kThreads) rms_norm_quant_q8k_kernel(RmsNormParams p, Q8KActBlockCuda* act) {
  const int64_t r = blockIdx.x;
  const float* x = p.x + r * p.x_stride;
  float* y = p.y + r * p.y_stride;
  const float inv_rms = row_inv_rms(x, p.dim, p.eps);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t nb = p.dim / kQ8KBlock;
  for (int64_t b = warp; b < nb; b += kWarps) {
    float h[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int64_t i = b * kQ8KBlock + 8 * lane + j;
      h[j] = x[i] * inv_rms * p.weight[i];
      y[i] = h[j];
    }
    q8k_quantize_warp(h, lane, act + r * nb + b);
  }
}

bool serves(const RmsNormParams& p, const void* act, int64_t block) {
  return p.rows >= 1 && p.rows <= kGemvMaxRows && p.dim > 0 && p.dim % block == 0 && p.x != nullptr &&
         p.y != nullptr && p.weight != nullptr && act != nullptr &&
         reinterpret_cast<uintptr_t>(act) % 16 == 0 && (p.rows == 1 || (p.x_stride >= p.dim && p.y_stride >= p.dim));
}

}  // namespace

cudaError_t rms_norm_quant_q8_cuda(const RmsNormParams& p, Q8ActBlockCuda* act, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (!serves(p, act, kQ8Block)) return cudaErrorInvalidValue;
  rms_norm_quant_q8_kernel<<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(p, act);
  return cudaGetLastError();
}

cudaError_t rms_norm_quant_q8k_cuda(const RmsNormParams& p, Q8KActBlockCuda* act, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (!serves(p, act, kQ8KBlock)) return cudaErrorInvalidValue;
  rms_norm_quant_q8k_kernel<<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(p, act);
  return cudaGetLastError();
}

}  // namespace llmos::kernels::cuda
