#include "kernels/cuda/gemv_q8k_cuda.h"

#include "kernels/cuda/gemv_tile_store.cuh"

namespace llmos::kernels::cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;

// ---- activation quantization -------------------------------------------------------------------

constexpr int kQuantThreads = 256;

// One warp per 256-value block (q8k_quantize_warp, q8k_block_math.cuh).
__global__ void quantize_q8k_act_kernel(const float* x, int64_t x_stride, int64_t nb, int64_t total,
                                        Q8KActBlockCuda* out) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * (kQuantThreads / 32) + threadIdx.x / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (g >= total) return;  // whole warps leave together
  const int64_t r = g / nb, b = g % nb;
  const float* src = x + r * x_stride + b * kQ8KBlock + 8 * lane;
  float v[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = src[i];
  q8k_quantize_warp(v, lane, out + g);
}

// ---- GEMV --------------------------------------------------------------------------------------
//
// Work split. A tile of C adjacent weight rows (output columns; C = 4 for Q4_K, 2 for the
// heavier Q5_K / Q6_K parts) is served by a group of 32 * wpc threads (wpc = 1, 2, 4 or 8
// warps). Four consecutive threads (a quad) share one 256-value block, thread p taking part p
// (64 values: q8k_block_math.cuh), so a warp covers 8 consecutive blocks of each of its C rows
// per step: 8 * 144 (Q4_K) / 176 (Q5_K) / 210 (Q6_K) contiguous bytes. The quad sums its
// integer S and M shares with two shuffles each (exact), then its first thread applies the f32
// steps of the block. Each weight part is loaded once and meets the m activation parts in
// registers; each activation part (64 B of codes, 4 bsums, d) is loaded once per C weight parts.
//
// Bytes in flight. By Little's law an H200 (~4.8 TB/s, ~0.7 us DRAM latency) needs ~3.4 MB of
// loads outstanding, ~26 KB per SM over 132 SMs. A thread issues the loads of its C weight parts
// before using any: Q4_K 4 x 48 B (32 B codes, 12 B scales, 4 B d/dmin) = 192 B, Q5_K 2 x 80 B
// = 160 B, Q6_K 2 x 70 B = 140 B, so a warp has 6.1 / 5.1 / 4.5 KB in flight and an SM needs
// about 5 / 6 / 6 busy warps: ~700-800 warps on the device. Columns alone give n / C warps
// (1024 at n = 4096 for Q4_K, 2048 for Q6_K); narrower matrices split k over wpc warps per tile
// (partials summed through shared memory) until tiles * wpc reaches kTargetWarps, as long as
// every quad keeps at least one block per step (k = 4096 has only 16 blocks a row: wpc <= 2).
constexpr int kThreads = 256;
constexpr int kMaxWarpsPerTile = kThreads / 32;
constexpr int64_t kTargetWarps = 132 * 8;

template <DType DT>
__host__ __device__ constexpr int cols_per_tile() {
  return DT == DType::kQ4_K ? 4 : 2;
}

struct GemvQ8KArgs {
  const uint8_t* weight;
  int64_t row_bytes;
  const Q8KActBlockCuda* act;  // [m][nb]
  const float* bias;
  float* y;
  int64_t y_stride;
  int64_t n, nb;
};

template <DType DT, int M>
__global__ void __launch_bounds__(kThreads) gemv_q8k_kernel(GemvQ8KArgs a, int wpc_log2) {
  constexpr int C = cols_per_tile<DT>();
  constexpr int kBytes = kquant_block_bytes(DT);
  const int group_threads = 32 << wpc_log2;
  const int tile_in_block = static_cast<int>(threadIdx.x) >> (5 + wpc_log2);
  const int t = static_cast<int>(threadIdx.x) & (group_threads - 1);
  const int p = t % kKParts;
  const int64_t col0 =
      (static_cast<int64_t>(blockIdx.x) * (kThreads >> (5 + wpc_log2)) + tile_in_block) * C;
  const int blocks_per_step = group_threads / kKParts;

  float acc[C][M];
#pragma unroll
  for (int c = 0; c < C; ++c) {
#pragma unroll
    for (int r = 0; r < M; ++r) acc[c][r] = 0.0f;
  }
  if (col0 < a.n) {  // uniform over the group; no early return: split-k synchronizes the block
    const uint8_t* rows[C];
#pragma unroll
    for (int c = 0; c < C; ++c) {
      // Columns past n (ragged tail) recompute column col0 and are never written.
      const int64_t col = col0 + c < a.n ? col0 + c : col0;
      rows[c] = a.weight + col * a.row_bytes;
    }
    // The step loop is uniform over the warp (the quad shuffles need every lane); a quad past
    // the last block recomputes block 0 and drops the result.
    for (int64_t b0 = 0; b0 < a.nb; b0 += blocks_per_step) {
      const int64_t bq = b0 + t / kKParts;
      const bool valid = bq < a.nb;
      const int64_t b = valid ? bq : 0;
      KWeightPart w[C];
#pragma unroll
      for (int c = 0; c < C; ++c) load_weight_part<DT>(rows[c] + b * kBytes, p, &w[c]);
#pragma unroll
      for (int r = 0; r < M; ++r) {
        Q8KActPart x;
        load_act_part<DT>(a.act + r * a.nb + b, p, &x);
#pragma unroll
        for (int c = 0; c < C; ++c) {
          KPartSums s = kquant_part_sums<DT>(w[c], x);
          s.s += __shfl_xor_sync(kFullMask, s.s, 1);
          s.s += __shfl_xor_sync(kFullMask, s.s, 2);
          if constexpr (DT != DType::kQ6_K) {
            s.m += __shfl_xor_sync(kFullMask, s.m, 1);
            s.m += __shfl_xor_sync(kFullMask, s.m, 2);
          }
          if (valid && p == 0) acc[c][r] = accumulate_kblock<DT>(acc[c][r], w[c].d, w[c].dmin, x.d, s.s, s.m);
        }
      }
    }
  }
  gemv_tile_store<C, M, kMaxWarpsPerTile>(acc, wpc_log2, t, tile_in_block, col0, a.n, a.bias, a.y,
                                              a.y_stride);
}

template <DType DT>
void launch_gemv(const GemvQ8KArgs& a, int64_t m, int wpc_log2, unsigned blocks, cudaStream_t stream) {
  switch (m) {
    case 1: gemv_q8k_kernel<DT, 1><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    case 2: gemv_q8k_kernel<DT, 2><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    case 3: gemv_q8k_kernel<DT, 3><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    case 4: gemv_q8k_kernel<DT, 4><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    case 5: gemv_q8k_kernel<DT, 5><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    case 6: gemv_q8k_kernel<DT, 6><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    case 7: gemv_q8k_kernel<DT, 7><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
    default: gemv_q8k_kernel<DT, 8><<<blocks, kThreads, 0, stream>>>(a, wpc_log2); break;
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool gemv_q8k_supported(DType dtype) {
  return dtype == DType::kQ4_K || dtype == DType::kQ5_K || dtype == DType::kQ6_K;
}

size_t q8k_act_bytes(int64_t m, int64_t k) {
  return m > 0 && k > 0
             ? static_cast<size_t>(m) * static_cast<size_t>(k / kQ8KBlock) * sizeof(Q8KActBlockCuda)
             : 0;
}

bool gemv_q8k_serves(const MatmulParams& p) {
  // load_code_words needs 2-byte aligned blocks: an even row length (all three block sizes are
  // even). It reads a block's codes from the 4-byte word at or below them, which for Q6_K's ql
  // (block offset 0) is 2 bytes before a block that sits 2 bytes off a word: bytes of the
  // previous block or row, and never before the tensor once its base is 4-byte aligned.
  return gemv_q8k_supported(p.weight_dtype) && p.m >= 1 && p.m <= kGemvMaxRows && p.k > 0 &&
         p.k % kQ8KBlock == 0 && p.weight != nullptr &&
         reinterpret_cast<uintptr_t>(p.weight) % 4 == 0 && p.weight_row_bytes % 2 == 0 &&
         p.weight_row_bytes >= dtype_row_bytes(p.weight_dtype, p.k);
}

cudaError_t quantize_q8k_act_cuda(const float* x, int64_t x_stride, int64_t m, int64_t k,
                                  Q8KActBlockCuda* act, cudaStream_t stream) {
  if (m == 0 || k == 0) return cudaSuccess;
  if (m < 0 || m > kGemvMaxRows || k < 0 || k % kQ8KBlock != 0 || x == nullptr || act == nullptr ||
      !aligned16(act) || (m > 1 && x_stride < k))
    return cudaErrorInvalidValue;
  const int64_t nb = k / kQ8KBlock, total = m * nb;
  const int64_t blocks = (total + kQuantThreads / 32 - 1) / (kQuantThreads / 32);
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  quantize_q8k_act_kernel<<<static_cast<unsigned>(blocks), kQuantThreads, 0, stream>>>(x, x_stride, nb,
                                                                                       total, act);
  return cudaGetLastError();
}

cudaError_t gemv_q8k_cuda(const MatmulParams& p, const Q8KActBlockCuda* act, cudaStream_t stream) {
  if (p.m == 0 || p.n == 0) return cudaSuccess;
  if (!gemv_q8k_serves(p) || p.n < 0 || act == nullptr || !aligned16(act) || p.y == nullptr ||
      (p.m > 1 && p.y_stride < p.n))
    return cudaErrorInvalidValue;
  const int64_t nb = p.k / kQ8KBlock;
  const int64_t cols = p.weight_dtype == DType::kQ4_K   ? cols_per_tile<DType::kQ4_K>()
                       : p.weight_dtype == DType::kQ5_K ? cols_per_tile<DType::kQ5_K>()
                                                        : cols_per_tile<DType::kQ6_K>();
  const int64_t tiles = (p.n + cols - 1) / cols;
  // Four threads share a 256-value block: a warp needs 8 blocks of the row.
  const int wpc_log2 = gemv_warps_per_tile_log2(tiles, nb, 8, kMaxWarpsPerTile, kTargetWarps);
  const int64_t tiles_per_block = kThreads >> (5 + wpc_log2);
  const int64_t blocks = (tiles + tiles_per_block - 1) / tiles_per_block;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  GemvQ8KArgs a;
  a.weight = static_cast<const uint8_t*>(p.weight);
  a.row_bytes = p.weight_row_bytes;
  a.act = act;
  a.bias = p.bias;
  a.y = p.y;
  a.y_stride = p.y_stride;
  a.n = p.n;
  a.nb = nb;
  const auto grid = static_cast<unsigned>(blocks);
  switch (p.weight_dtype) {
    case DType::kQ4_K: launch_gemv<DType::kQ4_K>(a, p.m, wpc_log2, grid, stream); break;
    case DType::kQ5_K: launch_gemv<DType::kQ5_K>(a, p.m, wpc_log2, grid, stream); break;
    default: launch_gemv<DType::kQ6_K>(a, p.m, wpc_log2, grid, stream); break;
  }
  return cudaGetLastError();
}

}  // namespace llmos::kernels::cuda
