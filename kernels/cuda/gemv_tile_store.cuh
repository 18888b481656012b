// What the int8 GEMV kernels (gemv_q8_cuda.cu, gemv_q8k_cuda.cu) share: how many warps split
// k for one tile of output columns, and the end of the kernels, where each thread's partial
// sums acc[c][r] for the C weight rows (output columns) and M activation rows of its tile are
// summed over the tile's threads and written to y (+ bias). For .cu files only.
#pragma once

#include <cstdint>

namespace llmos::kernels::cuda {

// log2 of the warps that split k for each tile: doubled while the launch stays within
// target_warps warps, no tile has more than max_warps, and every warp keeps at least
// blocks_per_warp blocks of the row (nb of them).
inline int gemv_warps_per_tile_log2(int64_t tiles, int64_t nb, int64_t blocks_per_warp,
                                    int max_warps, int64_t target_warps) {
  int wpc_log2 = 0;
  while ((1 << wpc_log2) < max_warps && tiles * (2 << wpc_log2) <= target_warps &&
         nb >= blocks_per_warp * (2 << wpc_log2))
    ++wpc_log2;
  return wpc_log2;
}

// A tile is served by 32 << wpc_log2 threads (1, 2, 4 or 8 warps; `t` is the thread's index
// in its tile, `tile_in_block` the tile's index in the block). A butterfly warp reduction
// leaves every lane with the same sum (each step adds the same two operands on both lanes);
// when several warps share the tile, their sums meet in shared memory, in warp order. Every
// thread of the block must call this (it synchronizes the block when wpc_log2 > 0).
template <int C, int M, int kMaxWarps>
__device__ __forceinline__ void gemv_tile_store(float (&acc)[C][M], int wpc_log2, int t,
                                                int tile_in_block, int64_t col0, int64_t n,
                                                const float* bias, float* y, int64_t y_stride) {
#pragma unroll
  for (int c = 0; c < C; ++c) {
#pragma unroll
    for (int r = 0; r < M; ++r) {
      for (int off = 16; off > 0; off /= 2) acc[c][r] += __shfl_xor_sync(0xffffffffu, acc[c][r], off);
    }
  }
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (wpc_log2 > 0) {  // uniform over the block
    __shared__ float part[kMaxWarps][C * M];
    const int warp = static_cast<int>(threadIdx.x / 32);
    if (lane == 0) {
#pragma unroll
      for (int c = 0; c < C; ++c) {
#pragma unroll
        for (int r = 0; r < M; ++r) part[warp][c * M + r] = acc[c][r];
      }
    }
    __syncthreads();
    if (t >= C * M) return;  // one thread per (column, row) of the tile writes it
    const int c = t / M, r = t % M;
    const int64_t col = col0 + c;
    if (col >= n) return;
    const int first = tile_in_block << wpc_log2;
    float v = part[first][t];
    for (int i = 1; i < (1 << wpc_log2); ++i) v += part[first + i][t];
    y[r * y_stride + col] = bias != nullptr ? v + bias[col] : v;
    return;
  }
  if (lane != 0 || col0 >= n) return;
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const int64_t col = col0 + c;
    if (col >= n) break;
#pragma unroll
    for (int r = 0; r < M; ++r) y[r * y_stride + col] = bias != nullptr ? acc[c][r] + bias[col] : acc[c][r];
  }
}

}  // namespace llmos::kernels::cuda
