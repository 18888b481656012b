#include "kernels/cuda/attention_cuda.h"

#include "kernels/cuda/rope_kv_cuda.h"

namespace llmos::kernels::cuda {
namespace {

using device::kv_from_f32;
using device::kv_to_f32;

constexpr int kTile = kAttentionTile;  // KV tokens per shared-memory tile (one per lane for scores)
constexpr int kMaxWarps = 8;
constexpr int kMaxHeadsPerWarp = kAttentionMaxGroup / kMaxWarps;
constexpr int kMaxDimsPerLane = kAttentionMaxHeadDim / 32;

template <typename KV>
__global__ void write_kv_kernel(WriteKvParams p) {
  const int64_t t = blockIdx.y;
  const int64_t kv_dim = static_cast<int64_t>(p.num_kv_heads) * p.head_dim;
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= kv_dim) return;
  const int h = static_cast<int>(e / p.head_dim), d = static_cast<int>(e % p.head_dim);
  const int64_t dst = device::kv_slot_index(p.slots[t], h, d, p.num_kv_heads, p.block_size, p.head_dim);
  kv_from_f32(p.k[t * p.kv_stride + e], static_cast<KV*>(p.k_pool) + dst);
  kv_from_f32(p.v[t * p.kv_stride + e], static_cast<KV*>(p.v_pool) + dst);
}

// Where a split launch leaves its partial states (see attention_split.cuh); num_partitions 0
// for the unsplit kernel, which writes p.out directly.
struct SplitOut {
  float* acc = nullptr;  // [tokens][heads][partitions][head_dim]
  float* m = nullptr;    // [tokens][heads][partitions]
  float* l = nullptr;
  int num_partitions = 0;
  int64_t partition_tokens = 0;
};

// One block per (query token, KV head[, partition]): the online softmax of the group's query
// heads over the KV range [t_begin, t_end) of the token's causal range, one warp per head (a
// warp takes heads warp, warp + warps, ...). The unsplit kernel's range is the whole causal
// range; a partition's is its slice of it.
template <typename KV>
__global__ void paged_attention_kernel(PagedAttentionParams p, const int32_t* token_seq, SplitOut split) {
  extern __shared__ float smem[];
  const int hd = p.head_dim;
  const int group = p.num_heads / p.num_kv_heads;
  const int warps = blockDim.x / 32;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t token = blockIdx.x;
  const int kv_head = blockIdx.y;
  const int part = blockIdx.z;
  float* q_s = smem;                        // [group][hd]
  float* k_s = q_s + group * hd;            // [kTile][hd + 1] (padded: lanes read rows)
  float* v_s = k_s + kTile * (hd + 1);      // [kTile][hd]

  const int seq = token_seq[token];
  const int64_t n_new = p.query_start[seq + 1] - p.query_start[seq];
  const int64_t n_ctx = p.kv_len[seq] - n_new + (token - p.query_start[seq]) + 1;
  const int32_t* blocks = p.block_indices + p.block_indptr[seq];
  int64_t t_begin = 0, t_end = n_ctx;
  if (split.num_partitions > 0) {
    t_begin = part * split.partition_tokens;
    if (t_end > t_begin + split.partition_tokens) t_end = t_begin + split.partition_tokens;
    if (t_begin >= n_ctx) {  // past this token's causal limit: the empty state (the whole block returns)
      for (int hh = threadIdx.x; hh < group; hh += blockDim.x) {
        const int64_t item = (token * p.num_heads + kv_head * group + hh) * split.num_partitions + part;
        split.m[item] = -INFINITY;
        split.l[item] = 0.0f;
      }
      return;
    }
  }

  for (int i = threadIdx.x; i < group * hd; i += blockDim.x) {
    q_s[i] = p.q[token * p.q_stride + static_cast<int64_t>(kv_head * group) * hd + i];
  }
  float m[kMaxHeadsPerWarp], l[kMaxHeadsPerWarp], acc[kMaxHeadsPerWarp][kMaxDimsPerLane];
#pragma unroll
  for (int a = 0; a < kMaxHeadsPerWarp; ++a) {
    m[a] = -INFINITY;
    l[a] = 0.0f;
    for (int j = 0; j < kMaxDimsPerLane; ++j) acc[a][j] = 0.0f;
  }
  const auto* kp = static_cast<const KV*>(p.k_pool);
  const auto* vp = static_cast<const KV*>(p.v_pool);
  for (int64_t t0 = t_begin; t0 < t_end; t0 += kTile) {
    const int count = t_end - t0 < kTile ? static_cast<int>(t_end - t0) : kTile;
    __syncthreads();  // the previous tile is consumed (and q_s is written, on the first pass)
    for (int i = threadIdx.x; i < count * hd; i += blockDim.x) {
      const int r = i / hd, d = i % hd;
      const int64_t t = t0 + r;
      const int64_t base =
          ((static_cast<int64_t>(blocks[t / p.block_size]) * p.num_kv_heads + kv_head) * p.block_size +
           t % p.block_size) * hd;
      k_s[r * (hd + 1) + d] = kv_to_f32(kp[base + d]);
      v_s[r * hd + d] = kv_to_f32(vp[base + d]);
    }
    __syncthreads();
    // Fully unrolled with a guard (not a break) so m, l and acc stay in registers.
#pragma unroll
    for (int a = 0; a < kMaxHeadsPerWarp; ++a) {
      const int hh = warp + a * warps;  // head within the group (warp-uniform)
      if (hh >= group) continue;
      float s = -INFINITY;
      if (lane < count) {
        const float* qv = q_s + hh * hd;
        const float* kv = k_s + lane * (hd + 1);
        float dot = 0.0f;
        for (int d = 0; d < hd; ++d) dot = fmaf(qv[d], kv[d], dot);
        s = dot * p.scale;
      }
      float tile_max = s;
      for (int off = 16; off > 0; off /= 2) tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, off));
      const float new_m = fmaxf(m[a], tile_max);
      const float corr = expf(m[a] - new_m);
      const float pr = lane < count ? expf(s - new_m) : 0.0f;
      float psum = pr;
      for (int off = 16; off > 0; off /= 2) psum += __shfl_xor_sync(0xffffffffu, psum, off);
      l[a] = l[a] * corr + psum;
      m[a] = new_m;
#pragma unroll
      for (int j = 0; j < kMaxDimsPerLane; ++j) acc[a][j] *= corr;
      for (int r = 0; r < count; ++r) {
        const float pj = __shfl_sync(0xffffffffu, pr, r);
        const float* vr = v_s + r * hd;
#pragma unroll
        for (int j = 0; j < kMaxDimsPerLane; ++j) {
          const int d = lane + 32 * j;
          if (d < hd) acc[a][j] = fmaf(pj, vr[d], acc[a][j]);
        }
      }
    }
  }
#pragma unroll
  for (int a = 0; a < kMaxHeadsPerWarp; ++a) {
    const int hh = warp + a * warps;
    if (hh >= group) continue;
    const int head = kv_head * group + hh;
    if (split.num_partitions > 0) {
      const int64_t item = (token * p.num_heads + head) * split.num_partitions + part;
      if (lane == 0) {
        split.m[item] = m[a];
        split.l[item] = l[a];
      }
      float* out = split.acc + item * hd;
#pragma unroll
      for (int j = 0; j < kMaxDimsPerLane; ++j) {
        const int d = lane + 32 * j;
        if (d < hd) out[d] = acc[a][j];
      }
      continue;
    }
    float* out = p.out + token * p.out_stride + static_cast<int64_t>(head) * hd;
    const float inv = 1.0f / l[a];
#pragma unroll
    for (int j = 0; j < kMaxDimsPerLane; ++j) {
      const int d = lane + 32 * j;
      if (d < hd) out[d] = acc[a][j] * inv;
    }
  }
}

// One block per (query token, query head), one thread per dimension: the partitions' states
// folded in partition order (empty ones skipped), out = acc / l.
__global__ void split_merge_kernel(PagedAttentionParams p, SplitOut split) {
  const int64_t token = blockIdx.x;
  const int head = blockIdx.y;
  const int d = threadIdx.x;
  if (d >= p.head_dim) return;
  const int64_t first = (token * p.num_heads + head) * split.num_partitions;
  float m = -INFINITY, l = 0.0f, acc = 0.0f;
  for (int part = 0; part < split.num_partitions; ++part) {
    const int64_t item = first + part;
    softmax_fold_into(m, l, &acc, split.m[item], split.l[item], split.acc + item * p.head_dim + d, 1);
  }
  p.out[token * p.out_stride + static_cast<int64_t>(head) * p.head_dim + d] = acc / l;
}

size_t attention_smem_bytes(const PagedAttentionParams& p) {
  const int group = p.num_heads / p.num_kv_heads;
  return sizeof(float) * (static_cast<size_t>(group) * p.head_dim + static_cast<size_t>(kTile) * (p.head_dim + 1) +
                          static_cast<size_t>(kTile) * p.head_dim);
}

template <typename KV>
cudaError_t launch_attention(const PagedAttentionParams& p, const int32_t* token_seq, int64_t num_tokens,
                             const SplitOut& split, cudaStream_t stream) {
  const int group = p.num_heads / p.num_kv_heads;
  const int warps = group < kMaxWarps ? group : kMaxWarps;
  const size_t smem = attention_smem_bytes(p);
  if (smem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(paged_attention_kernel<KV>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const unsigned parts = split.num_partitions > 0 ? static_cast<unsigned>(split.num_partitions) : 1u;
  const dim3 grid(static_cast<unsigned>(num_tokens), static_cast<unsigned>(p.num_kv_heads), parts);
  paged_attention_kernel<KV><<<grid, warps * 32, smem, stream>>>(p, token_seq, split);
  return cudaGetLastError();
}

cudaError_t dispatch_attention(const PagedAttentionParams& p, const int32_t* token_seq, int64_t num_tokens,
                               const SplitOut& split, cudaStream_t stream) {
  switch (p.kv_dtype) {
    case DType::kF32: return launch_attention<float>(p, token_seq, num_tokens, split, stream);
    case DType::kF16: return launch_attention<__half>(p, token_seq, num_tokens, split, stream);
    case DType::kBF16: return launch_attention<__nv_bfloat16>(p, token_seq, num_tokens, split, stream);
    default: return cudaErrorInvalidValue;
  }
}

bool attention_shape_ok(const PagedAttentionParams& p, const int32_t* token_seq, int64_t num_tokens) {
  return num_tokens > 0 && num_tokens <= kAttentionMaxTokens && token_seq != nullptr && p.num_kv_heads > 0 &&
         p.num_heads % p.num_kv_heads == 0 && p.num_heads / p.num_kv_heads <= kAttentionMaxGroup &&
         p.num_kv_heads <= 65535 && p.head_dim > 0 && p.head_dim <= kAttentionMaxHeadDim && p.block_size > 0;
}

}  // namespace

cudaError_t write_kv_cuda(const WriteKvParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  if (p.num_tokens < 0 || p.num_tokens > 65535 || p.k == nullptr || p.v == nullptr ||
      p.k_pool == nullptr || p.v_pool == nullptr || p.slots == nullptr || p.block_size <= 0)
    return cudaErrorInvalidValue;
  const int64_t kv_dim = static_cast<int64_t>(p.num_kv_heads) * p.head_dim;
  const dim3 grid(static_cast<unsigned>((kv_dim + 255) / 256), static_cast<unsigned>(p.num_tokens));
  switch (p.kv_dtype) {
    case DType::kF32: write_kv_kernel<float><<<grid, 256, 0, stream>>>(p); break;
    case DType::kF16: write_kv_kernel<__half><<<grid, 256, 0, stream>>>(p); break;
    case DType::kBF16: write_kv_kernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(p); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t paged_attention_cuda(const PagedAttentionParams& p, const int32_t* token_seq,
                                 int64_t num_tokens, cudaStream_t stream) {
  if (num_tokens == 0) return cudaSuccess;
  if (!attention_shape_ok(p, token_seq, num_tokens)) return cudaErrorInvalidValue;
  return dispatch_attention(p, token_seq, num_tokens, SplitOut{}, stream);
}

cudaError_t paged_attention_split_cuda(const PagedAttentionParams& p, const int32_t* token_seq,
                                       int64_t num_tokens, const SplitPlan& plan, void* workspace,
                                       cudaStream_t stream) {
  if (num_tokens == 0) return cudaSuccess;
  if (!attention_shape_ok(p, token_seq, num_tokens) || workspace == nullptr || plan.num_partitions < 2 ||
      plan.num_partitions > kAttentionMaxPartitions || p.num_heads > 65535 || plan.partition_tokens <= 0 ||
      plan.partition_tokens % kAttentionTile != 0 ||
      plan.workspace_bytes < split_workspace_bytes(num_tokens, p.num_heads, p.head_dim, plan.num_partitions))
    return cudaErrorInvalidValue;
  SplitOut split;
  split.num_partitions = plan.num_partitions;
  split.partition_tokens = plan.partition_tokens;
  split.acc = static_cast<float*>(workspace);
  const int64_t states = num_tokens * p.num_heads * plan.num_partitions;
  split.m = split.acc + states * p.head_dim;
  split.l = split.m + states;
  const cudaError_t err = dispatch_attention(p, token_seq, num_tokens, split, stream);
  if (err != cudaSuccess) return err;
  const unsigned threads = static_cast<unsigned>((p.head_dim + 31) / 32 * 32);
  split_merge_kernel<<<dim3(static_cast<unsigned>(num_tokens), static_cast<unsigned>(p.num_heads)), threads, 0,
                       stream>>>(p, split);
  return cudaGetLastError();
}

}  // namespace llmos::kernels::cuda
