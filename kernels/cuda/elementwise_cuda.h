// CUDA kernels for the row-wise ops: RMSNorm, RoPE, SwiGLU, residual add, row gather. Same
// contracts as kernels/norm.h, rope.h and activation.h with device pointers in the params.
// Launchers never allocate or throw; they return the launch status (cudaErrorInvalidValue for
// arguments they cannot serve: more than 65535 rows, null pointers).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/norm.h"
#include "kernels/rope.h"

namespace llmos::kernels::cuda {

// Rows per launch these kernels accept (one grid row each).
inline constexpr int64_t kMaxRows = 65535;

// One block per row; the sum of squares is accumulated in float by a tree reduction.
cudaError_t rms_norm_cuda(const RmsNormParams& p, cudaStream_t stream);

// One thread per rotated pair; the angle and its cos/sin are computed in double, as the
// reference does. p.positions and p.inv_freq are device arrays.
cudaError_t rope_cuda(const RopeParams& p, cudaStream_t stream);

// out = silu(gate) * up over [rows, cols] (out may alias gate or up).
cudaError_t swiglu_cuda(const float* gate, int64_t gate_stride, const float* up, int64_t up_stride,
                        float* out, int64_t out_stride, int64_t rows, int64_t cols,
                        cudaStream_t stream);

// y += x over [rows, cols].
cudaError_t add_cuda(float* y, int64_t y_stride, const float* x, int64_t x_stride, int64_t rows,
                     int64_t cols, cudaStream_t stream);

// dst[i] = src[rows[i]] for i < n (rows is a device array).
cudaError_t gather_rows_cuda(const float* src, int64_t src_stride, const int32_t* rows, int64_t n,
                             int64_t cols, float* dst, int64_t dst_stride, cudaStream_t stream);

}  // namespace llmos::kernels::cuda
