#include "kernels/cuda/norm_quant_cuda.h"

#include "kernels/cuda/matmul_cuda.h"

namespace llmos::kernels::cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
// Must equal rms_norm_cuda's block size (elementwise_cuda.cu): the sum of squares below repeats
// its reduction step for step (thread i sums elements i, i + 256, ... with fmaf; a xor tree per
// warp; warp 0 sums the 8 warp partials with the same tree), so inv_rms and h round alike.
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// 1 / rms of row x, as rms_norm_cuda computes it; every thread gets it.
__device__ float row_inv_rms(const float* x, int64_t dim, float eps) {
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum = fmaf(x[i], x[i], sum);
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(kFullMask, sum, off);
  __shared__ float partial[kWarps];
  __shared__ float inv_rms;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    float s = lane < kWarps ? partial[lane] : 0.0f;
    for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(kFullMask, s, off);
    if (lane == 0) {
      inv_rms = static_cast<float>(1.0 / sqrt(static_cast<double>(s) / static_cast<double>(dim) + eps));
    }
  }
  __syncthreads();
  return inv_rms;
}

// The q8 block of 32 values, lane t holding value t: quantize_q8_act_cuda's per-warp steps
// (gemv_q8_cuda.cu) from the same q8_block_math.cuh functions.
__device__ void q8_quantize_warp(float v, int lane, Q8ActBlockCuda* o) {
  float amax = amax_step(0.0f, v);
  for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(kFullMask, amax, off));
  const float d = act_scale(amax);
  const int q = act_code(v, act_inv_scale(d));
  uint32_t word = (static_cast<uint32_t>(q) & 0xFFu) << (8 * (lane % 4));
  word |= __shfl_xor_sync(kFullMask, word, 1);
  word |= __shfl_xor_sync(kFullMask, word, 2);
  int sum = q;
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(kFullMask, sum, off);
  if (lane % 4 == 0) o->qs[lane / 4] = static_cast<int32_t>(word);
  if (lane == 0) {
    o->d = d;
    o->sum = sum;
    o->pad[0] = 0;
    o->pad[1] = 0;
  }
}

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
