#include "kernels/cuda/elementwise_cuda.h"
#include "kernels/cuda/rope_kv_cuda.h"
#include "kernels/cuda/row_norm.cuh"

namespace llmos::kernels::cuda {
namespace {

constexpr int kThreads = 256;

bool rows_ok(int64_t rows) { return rows >= 0 && rows <= kMaxRows; }

dim3 row_grid(int64_t rows, int64_t cols) {
  return dim3(static_cast<unsigned>((cols + kThreads - 1) / kThreads), static_cast<unsigned>(rows));
}

__global__ void rms_norm_kernel(RmsNormParams p) {
  const int64_t r = blockIdx.x;
  const float* x = p.x + r * p.x_stride;
  float* y = p.y + r * p.y_stride;
  const float inv_rms = row_inv_rms(x, p.dim, p.eps);
  // y may alias x: every thread has finished reading its elements for the sum above.
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) y[i] = x[i] * inv_rms * p.weight[i];
}

__global__ void rope_kernel(RopeParams p) {
  const int half = p.rot_dim / 2;
  const int64_t r = blockIdx.y;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= static_cast<int64_t>(p.heads) * half) return;
  const int h = static_cast<int>(item / half), i = static_cast<int>(item % half);
  float* v = p.x + r * p.x_stride + static_cast<int64_t>(h) * p.head_dim;
  // The same device function as the fused rope_write_kv kernel: both paths round alike.
  const device::RopePair pr =
      device::rope_pair(v, i, p.rot_dim, p.neox, p.positions[r], p.inv_freq, p.attn_factor);
  v[pr.a] = pr.y0;
  v[pr.b] = pr.y1;
}

__global__ void swiglu_kernel(const float* gate, int64_t gs, const float* up, int64_t us, float* out,
                              int64_t os, int64_t cols) {
  const int64_t r = blockIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const float g = gate[r * gs + c];
  out[r * os + c] = g / (1.0f + expf(-g)) * up[r * us + c];
}

__global__ void add_kernel(float* y, int64_t ys, const float* x, int64_t xs, int64_t cols) {
  const int64_t r = blockIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c < cols) y[r * ys + c] += x[r * xs + c];
}

__global__ void gather_kernel(const float* src, int64_t ss, const int32_t* rows, int64_t cols,
                              float* dst, int64_t ds) {
  const int64_t i = blockIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c < cols) dst[i * ds + c] = src[static_cast<int64_t>(rows[i]) * ss + c];
}

}  // namespace

cudaError_t rms_norm_cuda(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (!rows_ok(p.rows) || p.x == nullptr || p.y == nullptr || p.weight == nullptr || p.dim <= 0)
    return cudaErrorInvalidValue;
  rms_norm_kernel<<<static_cast<unsigned>(p.rows), kRowNormThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t rope_cuda(const RopeParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (!rows_ok(p.rows) || p.x == nullptr || p.positions == nullptr || p.inv_freq == nullptr ||
      p.rot_dim <= 0 || p.rot_dim % 2 != 0 || p.rot_dim > p.head_dim || p.heads <= 0)
    return cudaErrorInvalidValue;
  rope_kernel<<<row_grid(p.rows, static_cast<int64_t>(p.heads) * (p.rot_dim / 2)), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t swiglu_cuda(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride,
                        float* out, int64_t out_stride, int64_t rows, int64_t cols,
                        cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  if (!rows_ok(rows) || gate == nullptr || up == nullptr || out == nullptr) return cudaErrorInvalidValue;
  swiglu_kernel<<<row_grid(rows, cols), kThreads, 0, stream>>>(gate, gate_stride, up, up_stride, out,
                                                               out_stride, cols);
  return cudaGetLastError();
}

cudaError_t add_cuda(float* y, int64_t y_stride, const float* x, int64_t x_stride, int64_t rows,
                     int64_t cols, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  if (!rows_ok(rows) || y == nullptr || x == nullptr) return cudaErrorInvalidValue;
  add_kernel<<<row_grid(rows, cols), kThreads, 0, stream>>>(y, y_stride, x, x_stride, cols);
  return cudaGetLastError();
}

cudaError_t gather_rows_cuda(const float* src, int64_t src_stride, const int32_t* rows, int64_t n,
                             int64_t cols, float* dst, int64_t dst_stride, cudaStream_t stream) {
  if (n == 0 || cols == 0) return cudaSuccess;
  if (!rows_ok(n) || src == nullptr || rows == nullptr || dst == nullptr) return cudaErrorInvalidValue;
  gather_kernel<<<row_grid(n, cols), kThreads, 0, stream>>>(src, src_stride, rows, cols, dst, dst_stride);
  return cudaGetLastError();
}

}  // namespace llmos::kernels::cuda
