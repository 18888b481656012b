#include "kernels/cuda/attention_prefill_cuda.h"

#include <cuda_fp16.h>
#include <math.h>

#include <cstdint>

namespace llmos::kernels::cuda {
namespace {

constexpr int kWarps = kPrefillTileRows / 16;  // one m16 MMA row block per warp
constexpr int kThreads = kWarps * 32;
constexpr int kBn = kPrefillKvTile;
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kPrefillTileRows % 16 == 0 && kBn % 16 == 0, "MMA tiles are 16 rows by 16 k");

// Two f16 in one register, `lo` in the low half (the element with the smaller index).
__device__ __forceinline__ uint32_t pack_half2(__half lo, __half hi) {
  return static_cast<uint32_t>(__half_as_ushort(lo)) | (static_cast<uint32_t>(__half_as_ushort(hi)) << 16);
}

__device__ __forceinline__ uint32_t pack_float2(float lo, float hi) {
  return pack_half2(__float2half_rn(lo), __float2half_rn(hi));
}

// D = A B + D, A 16x16 row-major f16 (4 regs), B 16x8 f16 (2 regs), D 16x8 f32. Fragment
// layouts (lane = 4 * g + t): A regs (row g, k 2t..2t+1), (row g+8, k 2t..), (row g, k 2t+8..),
// (row g+8, k 2t+8..); B regs (k 2t..2t+1, col g), (k 2t+8..2t+9, col g); D (row g, cols 2t,
// 2t+1), (row g+8, cols 2t, 2t+1).
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 f16 matrices from shared memory: lane l gives the address of row l % 8 of matrix
// l / 8 and receives, in r[i], row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1 of matrix i; with
// .trans, rows 2 (l % 4) and 2 (l % 4) + 1 of column l / 4 (a B fragment from a row-major [k][n]).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __half* row) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __half* row) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem) : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Queues KV tile `tile` of one head into dst ([kBn][D + 8] f16): positions at or past kv_end
// (never visible to any row of the CTA) become zeros, so masked columns never meet NaN bytes.
template <int D>
__device__ __forceinline__ void load_kv_tile(__half* dst, const __half* pool, const int32_t* blocks,
                                             int tile, int kv_end, int kv_head, int num_kv_heads,
                                             int block_size) {
  constexpr int kStride = D + 8;
  constexpr int kChunks = D / 8;  // 16-byte chunks per token row
  for (int c = threadIdx.x; c < kBn * kChunks; c += kThreads) {
    const int r = c / kChunks, cc = c % kChunks;
    const int pos = tile * kBn + r;
    __half* s = dst + r * kStride + cc * 8;
    if (pos < kv_end) {
      const int64_t row =
          (static_cast<int64_t>(blocks[pos / block_size]) * num_kv_heads + kv_head) * block_size + pos % block_size;
      cp_async_16(s, pool + row * D + cc * 8);
    } else {
      *reinterpret_cast<uint4*>(s) = make_uint4(0u, 0u, 0u, 0u);
    }
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads) prefill_attention_kernel(PagedAttentionParams p, const PrefillTile* tiles) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // cp.async and f16 mma.m16n8k16 need sm_80; the launcher refuses older devices
#else
  constexpr int kStride = D + 8;  // +8 halves: the 8 rows an ldmatrix phase reads hit 32 distinct banks
  constexpr int kDk = D / 16;     // k steps of S = Q K^T
  constexpr int kDn = D / 8;      // n tiles of O
  constexpr int kSn = kBn / 8;    // n tiles of S
  __shared__ __align__(16) __half k_s[kBn * kStride];
  __shared__ __align__(16) __half v_s[kBn * kStride];

  const PrefillTile tile = tiles[blockIdx.x];
  const int kv_head = blockIdx.y;
  const int group = p.num_heads / p.num_kv_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int q_first = p.query_start[tile.seq];
  const int past = p.kv_len[tile.seq] - (p.query_start[tile.seq + 1] - q_first);
  const int32_t* blocks = p.block_indices + p.block_indptr[tile.seq];
  // Every position a row of this CTA may see lies below kv_end (the last row's limit + 1).
  const int kv_end = past + (tile.row_end - 1) / group + 1;
  int num_kv_tiles = (kv_end - 1) / kBn + 1;
  if (tile.last_kv_tile + 1 < num_kv_tiles) num_kv_tiles = tile.last_kv_tile + 1;
  const auto* kp = static_cast<const __half*>(p.k_pool);
  const auto* vp = static_cast<const __half*>(p.v_pool);

  // This thread's two rows (g and g + 8 of the warp's 16); rows past the tile are padding: no
  // q, nothing visible, never written.
  const int warp_row0 = tile.row_begin + warp * 16;
  const bool warp_active = warp_row0 < tile.row_end;
  int row[2], limit[2];
  const float* qrow[2];
  for (int i = 0; i < 2; ++i) {
    row[i] = warp_row0 + g + 8 * i;
    const bool valid = row[i] < tile.row_end;
    const int token = row[i] / group, head = kv_head * group + row[i] % group;
    limit[i] = valid ? past + token : -1;
    qrow[i] = valid ? p.q + static_cast<int64_t>(q_first + token) * p.q_stride + static_cast<int64_t>(head) * D
                    : nullptr;
  }

  // Q fragments, rounded to f16 once.
  uint32_t qf[kDk][4];
#pragma unroll
  for (int kd = 0; kd < kDk; ++kd) {
#pragma unroll
    for (int hi = 0; hi < 2; ++hi) {  // k 2t.. then k 2t+8..
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        uint32_t v = 0;
        if (qrow[i] != nullptr) {
          const float2 x = *reinterpret_cast<const float2*>(qrow[i] + kd * 16 + hi * 8 + 2 * t);
          v = pack_float2(x.x, x.y);
        }
        qf[kd][hi * 2 + i] = v;
      }
    }
  }

  float o[kDn][4];
#pragma unroll
  for (int dn = 0; dn < kDn; ++dn) o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};  // running max of scaled scores (log2 units)
  float l[2] = {0.0f, 0.0f};            // this thread's part of the running sum
  const float scale_log2 = p.scale * kLog2e;
  const int first_limit = past + tile.row_begin / group;  // the smallest limit of the CTA

  load_kv_tile<D>(k_s, kp, blocks, 0, kv_end, kv_head, p.num_kv_heads, p.block_size);
  cp_async_commit();
  for (int j = 0; j < num_kv_tiles; ++j) {
    load_kv_tile<D>(v_s, vp, blocks, j, kv_end, kv_head, p.num_kv_heads, p.block_size);
    cp_async_commit();
    cp_async_wait<1>();  // K(j) has landed (V(j) may still be in flight)
    __syncthreads();

    float s[kSn][4];
#pragma unroll
    for (int jn = 0; jn < kSn; ++jn) s[jn][0] = s[jn][1] = s[jn][2] = s[jn][3] = 0.0f;
    if (warp_active) {
      // K is [token][d]: B (k = d, n = token) is column-major, so plain ldmatrix gives B
      // fragments; one x4 holds the two registers of k steps kd and kd + 1 of n tile jn.
      const __half* k_lane = k_s + (lane % 8) * kStride + (lane / 8) * 8;
#pragma unroll
      for (int jn = 0; jn < kSn; ++jn) {
#pragma unroll
        for (int kd = 0; kd < kDk; kd += 2) {
          uint32_t b[4];
          ldmatrix_x4(b, k_lane + jn * 8 * kStride + kd * 16);
          mma_16816(s[jn], qf[kd], b[0], b[1]);
          mma_16816(s[jn], qf[kd + 1], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with K(j): the next one may overwrite it
    if (j + 1 < num_kv_tiles) load_kv_tile<D>(k_s, kp, blocks, j + 1, kv_end, kv_head, p.num_kv_heads, p.block_size);
    cp_async_commit();  // possibly empty: keeps the group count the waits rely on

    uint32_t pf[kBn / 16][4];
    if (warp_active) {
      // Columns past some row's limit exist only when the tile reaches past the CTA's smallest limit.
      const bool masked = (j + 1) * kBn - 1 > first_limit;
      float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int jn = 0; jn < kSn; ++jn) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = e / 2;
          const int pos = j * kBn + jn * 8 + 2 * t + (e & 1);
          float x = s[jn][e] * scale_log2;
          if (masked && pos > limit[i]) x = -INFINITY;
          s[jn][e] = x;
          tile_max[i] = fmaxf(tile_max[i], x);
        }
      }
      float corr[2], base[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        // The four lanes of a quad hold one row's columns.
        tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xffffffffu, tile_max[i], 1));
        tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xffffffffu, tile_max[i], 2));
        const float new_m = fmaxf(m[i], tile_max[i]);
        // A row that has seen nothing yet (padding) keeps m = -inf; exp2 of -inf - 0 is 0, not NaN.
        base[i] = new_m == -INFINITY ? 0.0f : new_m;
        corr[i] = exp2f(m[i] - base[i]);
        m[i] = new_m;
        l[i] *= corr[i];
      }
#pragma unroll
      for (int jn = 0; jn < kSn; ++jn) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float pr = exp2f(s[jn][e] - base[e / 2]);
          s[jn][e] = pr;
          l[e / 2] += pr;
        }
      }
#pragma unroll
      for (int dn = 0; dn < kDn; ++dn) {
        o[dn][0] *= corr[0];
        o[dn][1] *= corr[0];
        o[dn][2] *= corr[1];
        o[dn][3] *= corr[1];
      }
      // The S accumulators of n tiles 2ks and 2ks+1 are exactly the A fragment of P's k step ks.
#pragma unroll
      for (int ks = 0; ks < kBn / 16; ++ks) {
        pf[ks][0] = pack_float2(s[2 * ks][0], s[2 * ks][1]);
        pf[ks][1] = pack_float2(s[2 * ks][2], s[2 * ks][3]);
        pf[ks][2] = pack_float2(s[2 * ks + 1][0], s[2 * ks + 1][1]);
        pf[ks][3] = pack_float2(s[2 * ks + 1][2], s[2 * ks + 1][3]);
      }
    }
    cp_async_wait<1>();  // V(j) has landed (K(j+1) may still be in flight)
    __syncthreads();
    if (warp_active) {
      // V is [token][d]: B (k = token, n = d) is row-major, so ldmatrix.trans gives B
      // fragments; one x4 holds tokens 0-7 and 8-15 of k step ks for n tiles dn and dn + 1.
      const __half* v_lane = v_s + ((lane / 8) % 2 * 8 + lane % 8) * kStride + (lane / 16) * 8;
#pragma unroll
      for (int ks = 0; ks < kBn / 16; ++ks) {
#pragma unroll
        for (int dn = 0; dn < kDn; dn += 2) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, v_lane + ks * 16 * kStride + dn * 8);
          mma_16816(o[dn], pf[ks], b[0], b[1]);
          mma_16816(o[dn + 1], pf[ks], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with V(j)
  }
  cp_async_wait<0>();

  if (!warp_active) return;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (limit[i] < 0) continue;  // padding row
    const int token = row[i] / group, head = kv_head * group + row[i] % group;
    float* out = p.out + static_cast<int64_t>(q_first + token) * p.out_stride + static_cast<int64_t>(head) * D + 2 * t;
    const float inv = 1.0f / l[i];  // > 0: position 0 is visible to every row
#pragma unroll
    for (int dn = 0; dn < kDn; ++dn) {
      *reinterpret_cast<float2*>(out + dn * 8) = make_float2(o[dn][2 * i] * inv, o[dn][2 * i + 1] * inv);
    }
  }
#endif
}

bool aligned(const void* ptr, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

}  // namespace

bool prefill_attention_serves(const PagedAttentionParams& p) {
  return p.kv_dtype == DType::kF16 && (p.head_dim == 64 || p.head_dim == 128) && p.num_kv_heads > 0 &&
         p.num_kv_heads <= 65535 && p.num_heads > 0 && p.num_heads % p.num_kv_heads == 0 && p.block_size > 0 &&
         p.q != nullptr && p.out != nullptr && aligned(p.q, 8) && aligned(p.out, 8) && p.q_stride % 2 == 0 &&
         p.out_stride % 2 == 0 && p.k_pool != nullptr && p.v_pool != nullptr && aligned(p.k_pool, 16) &&
         aligned(p.v_pool, 16);
}

cudaError_t paged_attention_prefill_cuda(const PagedAttentionParams& p, const PrefillTile* tiles,
                                         int64_t num_tiles, cudaStream_t stream) {
  if (num_tiles == 0) return cudaSuccess;
  if (num_tiles < 0 || num_tiles > 0x7fffffff || tiles == nullptr || !prefill_attention_serves(p))
    return cudaErrorInvalidValue;
  int dev = 0, major = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  if (err != cudaSuccess) return err;
  if (major < 8) return cudaErrorNoKernelImageForDevice;
  const dim3 grid(static_cast<unsigned>(num_tiles), static_cast<unsigned>(p.num_kv_heads));
  if (p.head_dim == 64) {
    prefill_attention_kernel<64><<<grid, kThreads, 0, stream>>>(p, tiles);
  } else {
    prefill_attention_kernel<128><<<grid, kThreads, 0, stream>>>(p, tiles);
  }
  return cudaGetLastError();
}

}  // namespace llmos::kernels::cuda
