#include "kernels/cuda/matmul_cuda.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/dequant.cuh"

namespace llmos::kernels::cuda {
namespace {

constexpr int kThreads = 256;

template <DType DT, typename Out>
__global__ void dequantize_rows_kernel(const uint8_t* table, int64_t row_bytes, const int32_t* rows,
                                       int64_t cols, Out* out, int64_t out_stride) {
  const int64_t i = blockIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const int64_t src_row = rows != nullptr ? rows[i] : i;
  const float v = dq_elem<DT>(table + src_row * row_bytes, c);
  if constexpr (sizeof(Out) == 4) {
    out[i * out_stride + c] = v;
  } else if constexpr (std::is_same_v<Out, __half>) {
    out[i * out_stride + c] = __float2half_rn(v);
  } else {
    out[i * out_stride + c] = __float2bfloat16_rn(v);
  }
}

// One warp per output column n; lane l takes 32-element chunks l, l + 32, ... of the weight row
// (one quantization block, or a sub-block of a K-format super-block) and all m activation rows.
template <DType DT>
__global__ void gemv_kernel(MatmulParams p) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + warp;
  if (n >= p.n) return;
  const auto* row = static_cast<const uint8_t*>(p.weight) + n * p.weight_row_bytes;
  float acc[kGemvMaxRows];
  for (int r = 0; r < kGemvMaxRows; ++r) acc[r] = 0.0f;
  const int64_t chunks = (p.k + 31) / 32;
  for (int64_t c = lane; c < chunks; c += 32) {
    const int64_t j0 = c * 32;
    const int len = p.k - j0 < 32 ? static_cast<int>(p.k - j0) : 32;
    for (int e = 0; e < len; ++e) {
      const float w = dq_elem<DT>(row, j0 + e);
      for (int r = 0; r < kGemvMaxRows; ++r) {
        if (r < p.m) acc[r] = fmaf(w, p.x[r * p.x_stride + j0 + e], acc[r]);
      }
    }
  }
  for (int r = 0; r < kGemvMaxRows; ++r) {
    if (r >= p.m) break;
    float v = acc[r];
    for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (lane == 0) p.y[r * p.y_stride + n] = v + (p.bias != nullptr ? p.bias[n] : 0.0f);
  }
}

struct DequantLaunch {
  const void* table;
  int64_t row_bytes;
  const int32_t* rows;
  int64_t n_rows, cols;
  DType out_dtype;
  void* out;
  int64_t out_stride;
  cudaStream_t stream;
  template <DType DT>
  void run() {
    const dim3 grid(static_cast<unsigned>((cols + kThreads - 1) / kThreads), static_cast<unsigned>(n_rows));
    const auto* t = static_cast<const uint8_t*>(table);
    if (out_dtype == DType::kF32) {
      dequantize_rows_kernel<DT, float><<<grid, kThreads, 0, stream>>>(t, row_bytes, rows, cols,
                                                                       static_cast<float*>(out), out_stride);
    } else if (out_dtype == DType::kF16) {
      dequantize_rows_kernel<DT, __half><<<grid, kThreads, 0, stream>>>(t, row_bytes, rows, cols,
                                                                        static_cast<__half*>(out), out_stride);
    } else {
      dequantize_rows_kernel<DT, __nv_bfloat16><<<grid, kThreads, 0, stream>>>(
          t, row_bytes, rows, cols, static_cast<__nv_bfloat16*>(out), out_stride);
    }
  }
};

struct GemvLaunch {
  const MatmulParams* p;
  cudaStream_t stream;
  template <DType DT>
  void run() {
    constexpr int kWarps = 4;
    const unsigned blocks = static_cast<unsigned>((p->n + kWarps - 1) / kWarps);
    gemv_kernel<DT><<<blocks, kWarps * 32, 0, stream>>>(*p);
  }
};

struct Noop {
  template <DType DT>
  void run() {}
};

template <typename T>
__global__ void convert_kernel(const float* x, int64_t x_stride, int64_t cols, T* dst) {
  const int64_t r = blockIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const float v = x[r * x_stride + c];
  if constexpr (std::is_same_v<T, __half>) {
    dst[r * cols + c] = __float2half_rn(v);
  } else {
    dst[r * cols + c] = __float2bfloat16_rn(v);
  }
}

__global__ void add_bias_kernel(float* y, int64_t y_stride, const float* bias, int64_t cols) {
  const int64_t r = blockIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c < cols) y[r * y_stride + c] += bias[c];
}

constexpr int64_t kMaxGridRows = 65535;
bool grid_fits(int64_t rows) { return rows > 0 && rows <= kMaxGridRows; }

}  // namespace

bool weight_dtype_supported(DType dtype) {
  Noop noop;
  return dispatch_weight_dtype(dtype, noop);
}

cudaError_t dequantize_rows_cuda(DType dtype, const void* table, int64_t row_bytes,
                                 const int32_t* rows, int64_t n_rows, int64_t cols,
                                 DType out_dtype, void* out, int64_t out_stride,
                                 cudaStream_t stream) {
  if (n_rows == 0 || cols == 0) return cudaSuccess;
  if (n_rows < 0 || table == nullptr || out == nullptr ||
      (out_dtype != DType::kF32 && out_dtype != DType::kF16 && out_dtype != DType::kBF16))
    return cudaErrorInvalidValue;
  const int64_t out_elem = out_dtype == DType::kF32 ? 4 : 2;
  // grid.y holds at most 65535 rows: larger tables go in slices.
  for (int64_t start = 0; start < n_rows; start += kMaxGridRows) {
    const int64_t count = n_rows - start < kMaxGridRows ? n_rows - start : kMaxGridRows;
    const void* t = rows != nullptr ? table : static_cast<const uint8_t*>(table) + start * row_bytes;
    void* o = static_cast<uint8_t*>(out) + start * out_stride * out_elem;
    DequantLaunch launch{t, row_bytes, rows != nullptr ? rows + start : nullptr, count, cols,
                         out_dtype, o, out_stride, stream};
    if (!dispatch_weight_dtype(dtype, launch)) return cudaErrorInvalidValue;
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

cudaError_t gemv_cuda(const MatmulParams& p, cudaStream_t stream) {
  if (p.m == 0 || p.n == 0) return cudaSuccess;
  if (p.m > kGemvMaxRows || p.weight == nullptr || p.x == nullptr || p.y == nullptr ||
      (p.n + 3) / 4 > 0x7fffffff)
    return cudaErrorInvalidValue;
  GemvLaunch launch{&p, stream};
  if (!dispatch_weight_dtype(p.weight_dtype, launch)) return cudaErrorInvalidValue;
  return cudaGetLastError();
}

cudaError_t convert_f32_cuda(const float* x, int64_t x_stride, int64_t rows, int64_t cols,
                             DType to, void* dst, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  if (!grid_fits(rows)) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>((cols + kThreads - 1) / kThreads), static_cast<unsigned>(rows));
  if (to == DType::kF16) {
    convert_kernel<__half><<<grid, kThreads, 0, stream>>>(x, x_stride, cols, static_cast<__half*>(dst));
  } else if (to == DType::kBF16) {
    convert_kernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(x, x_stride, cols,
                                                                 static_cast<__nv_bfloat16*>(dst));
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t add_bias_cuda(float* y, int64_t y_stride, const float* bias, int64_t rows,
                          int64_t cols, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  if (!grid_fits(rows)) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>((cols + kThreads - 1) / kThreads), static_cast<unsigned>(rows));
  add_bias_kernel<<<grid, kThreads, 0, stream>>>(y, y_stride, bias, cols);
  return cudaGetLastError();
}

}  // namespace llmos::kernels::cuda
