#include "kernels/cuda/gemv_q8_cuda.h"

#include "kernels/cuda/gemv_tile_store.cuh"

namespace llmos::kernels::cuda {
namespace {

// ---- activation quantization -------------------------------------------------------------------

// One warp per 32-value block (q8_quantize_warp, q8_block_math.cuh), bit-identical to
// quantize_row_q8_act's blocks.
constexpr int kQuantThreads = 256;

__global__ void quantize_q8_act_kernel(const float* x, int64_t x_stride, int64_t nb, int64_t total,
                                       Q8ActBlockCuda* out) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * (kQuantThreads / 32) + threadIdx.x / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (g >= total) return;  // whole warps leave together
  const int64_t r = g / nb, b = g % nb;
  q8_quantize_warp(x[r * x_stride + b * kQ8Block + lane], lane, out + g);
}

// ---- GEMV --------------------------------------------------------------------------------------
//
// Work split. A tile of kCols adjacent weight rows (output columns) is served by a group of
// 32 * wpc threads (wpc = 1, 2, 4 or 8 warps); thread t of the group takes blocks t, t + 32 * wpc,
// ... of all kCols rows, so consecutive lanes read consecutive blocks (a warp reads 32 * 18 or
// 32 * 34 contiguous bytes of each row per step). Each weight block's codes are loaded once and
// meet the m activation blocks in registers; each activation block is loaded once per kCols
// weight blocks. Activations are re-read from L1/L2 by every tile, so sharing them across 4
// columns cuts that traffic 4x; at m = 8 it is still 384 B per 72 B (Q4_0) / 136 B (Q8_0) of
// weights, so there L1 bandwidth rather than DRAM may be the limit (to be measured).
//
// Bytes in flight. By Little's law an H200 (~4.8 TB/s, ~0.7 us DRAM latency) needs ~3.4 MB of
// loads outstanding, ~26 KB per SM over 132 SMs. A thread issues the loads of its kCols weight
// blocks before using any (72 B for Q4_0, 136 B for Q8_0), so a warp has 2.3 / 4.4 KB in flight
// and an SM needs about 12 (Q4_0) / 6 (Q8_0) busy warps: ~1600 warps on the device. Columns
// alone give n / 4 warps: 8000 at n = 32000, plenty; 256 at n = 1024, far too few. So the
// launcher splits k over wpc warps per tile (partials summed through shared memory) until
// tiles * wpc reaches kTargetWarps, as long as every thread keeps at least one block (k = 1024
// has only 32 blocks a row: such a matrix is ~0.6 MB, a latency-bound launch either way).
constexpr int kCols = 4;
constexpr int kThreads = 256;
constexpr int kMaxWarpsPerTile = kThreads / 32;
constexpr int64_t kTargetWarps = 132 * 16;

struct GemvQ8Args {
  const uint8_t* weight;
  int64_t row_bytes;
  const Q8ActBlockCuda* act;  // [m][nb]
  const float* bias;
  float* y;
  int64_t y_stride;
  int64_t n, nb;
};

// One activation block: three 16-byte loads (Q8ActBlockCuda is 48 bytes, 16-byte aligned).
__device__ __forceinline__ void load_act(const Q8ActBlockCuda* blk, int32_t x[kQ8Words], float* d,
                                         int32_t* sum) {
  const int4* p = reinterpret_cast<const int4*>(blk);
  const int4 a = __ldg(p), b = __ldg(p + 1), c = __ldg(p + 2);
  x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w;
  x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
  *d = __int_as_float(c.x);
  *sum = c.y;
}

template <DType DT, int M>
__global__ void __launch_bounds__(kThreads) gemv_q8_kernel(GemvQ8Args a, int wpc_log2) {
  const int group_threads = 32 << wpc_log2;
  const int tile_in_block = static_cast<int>(threadIdx.x) >> (5 + wpc_log2);
  const int t = static_cast<int>(threadIdx.x) & (group_threads - 1);
  const int64_t col0 =
      (static_cast<int64_t>(blockIdx.x) * (kThreads >> (5 + wpc_log2)) + tile_in_block) * kCols;

  float acc[kCols][M];
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
#pragma unroll
    for (int r = 0; r < M; ++r) acc[c][r] = 0.0f;
  }
  if (col0 < a.n) {  // no early return: the split-k reduction below synchronizes the block
    const uint8_t* rows[kCols];
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      // Columns past n (ragged tail) recompute column col0 and are never written.
      const int64_t col = col0 + c < a.n ? col0 + c : col0;
      rows[c] = a.weight + col * a.row_bytes;
    }
    for (int64_t b = t; b < a.nb; b += group_threads) {
      int32_t w[kCols][kQ8Words];
      float dw[kCols];
#pragma unroll
      for (int c = 0; c < kCols; ++c) dw[c] = load_weight_block<DT>(rows[c], b, w[c]);
#pragma unroll
      for (int r = 0; r < M; ++r) {
        int32_t x[kQ8Words];
        float dx;
        int32_t sum;
        load_act(a.act + r * a.nb + b, x, &dx, &sum);
#pragma unroll
        for (int c = 0; c < kCols; ++c) {
          acc[c][r] = accumulate_block(acc[c][r], dw[c], dx, block_isum<DT>(w[c], x, sum));
        }
      }
    }
  }
  gemv_tile_store<kCols, M, kMaxWarpsPerTile>(acc, wpc_log2, t, tile_in_block, col0, a.n, a.bias, a.y,
                                              a.y_stride);
}

template <DType DT>
void launch_gemv(const GemvQ8Args& a, int64_t m, int wpc_log2, unsigned blocks,
                 cudaStream_t stream) {
  switch (m) {
    case 1: gemv_q8_kernel<DT, 1><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    case 2: gemv_q8_kernel<DT, 2><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    case 3: gemv_q8_kernel<DT, 3><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    case 4: gemv_q8_kernel<DT, 4><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    case 5: gemv_q8_kernel<DT, 5><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    case 6: gemv_q8_kernel<DT, 6><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    case 7: gemv_q8_kernel<DT, 7><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    default: gemv_q8_kernel<DT, 8><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool gemv_q8_supported(DType dtype) { return dtype == DType::kQ4_0 || dtype == DType::kQ8_0; }

size_t q8_act_bytes(int64_t m, int64_t k) {
  return m > 0 && k > 0
             ? static_cast<size_t>(m) * static_cast<size_t>(k / kQ8Block) * sizeof(Q8ActBlockCuda)
             : 0;
}

bool gemv_q8_serves(const MatmulParams& p) {
  // load_code_words needs 2-byte aligned blocks: an even base and an even row length.
  return gemv_q8_supported(p.weight_dtype) && p.m >= 1 && p.m <= kGemvMaxRows && p.k > 0 &&
         p.k % kQ8Block == 0 && p.weight != nullptr &&
         reinterpret_cast<uintptr_t>(p.weight) % 2 == 0 && p.weight_row_bytes % 2 == 0 &&
         p.weight_row_bytes >= dtype_row_bytes(p.weight_dtype, p.k);
}

cudaError_t quantize_q8_act_cuda(const float* x, int64_t x_stride, int64_t m, int64_t k,
                                 Q8ActBlockCuda* act, cudaStream_t stream) {
  if (m == 0 || k == 0) return cudaSuccess;
  if (m < 0 || m > kGemvMaxRows || k < 0 || k % kQ8Block != 0 || x == nullptr || act == nullptr ||
      !aligned16(act) || (m > 1 && x_stride < k))
    return cudaErrorInvalidValue;
  const int64_t nb = k / kQ8Block, total = m * nb;
  const int64_t blocks = (total + kQuantThreads / 32 - 1) / (kQuantThreads / 32);
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  quantize_q8_act_kernel<<<static_cast<unsigned>(blocks), kQuantThreads, 0, stream>>>(
      x, x_stride, nb, total, act);
  return cudaGetLastError();
}

cudaError_t gemv_q8_cuda(const MatmulParams& p, const Q8ActBlockCuda* act, cudaStream_t stream) {
  if (p.m == 0 || p.n == 0) return cudaSuccess;
  if (!gemv_q8_serves(p) || p.n < 0 || act == nullptr || !aligned16(act) || p.y == nullptr ||
      (p.m > 1 && p.y_stride < p.n))
    return cudaErrorInvalidValue;
  const int64_t nb = p.k / kQ8Block;
  const int64_t tiles = (p.n + kCols - 1) / kCols;
  // Every thread takes whole 32-value blocks: a warp needs 32 blocks of the row.
  const int wpc_log2 = gemv_warps_per_tile_log2(tiles, nb, 32, kMaxWarpsPerTile, kTargetWarps);
  const int64_t tiles_per_block = kThreads >> (5 + wpc_log2);
  const int64_t blocks = (tiles + tiles_per_block - 1) / tiles_per_block;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  GemvQ8Args a;
  a.weight = static_cast<const uint8_t*>(p.weight);
  a.row_bytes = p.weight_row_bytes;
  a.act = act;
  a.bias = p.bias;
  a.y = p.y;
  a.y_stride = p.y_stride;
  a.n = p.n;
  a.nb = nb;
  if (p.weight_dtype == DType::kQ4_0) {
    launch_gemv<DType::kQ4_0>(a, p.m, wpc_log2, static_cast<unsigned>(blocks), stream);
  } else {
    launch_gemv<DType::kQ8_0>(a, p.m, wpc_log2, static_cast<unsigned>(blocks), stream);
  }
  return cudaGetLastError();
}

}  // namespace llmos::kernels::cuda
