// CUDA kernels over the paged KV cache: write_kv and paged attention, with the layouts and
// conventions of kernels/attention.h (device pointers in the params, including the batch
// arrays). Launchers never allocate or throw; they return the launch status, or
// cudaErrorInvalidValue for shapes they do not serve (see the limits below).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/attention.h"
#include "kernels/cuda/attention_split.cuh"

namespace llmos::kernels::cuda {

// Limits of paged_attention_cuda: head_dim up to 256, up to 32 query heads per KV head,
// up to 65535 query tokens per launch.
inline constexpr int kAttentionMaxHeadDim = 256;
inline constexpr int kAttentionMaxGroup = 32;
inline constexpr int64_t kAttentionMaxTokens = 65535;
// Limit of paged_attention_split_cuda's partitions (one grid row each); its merge also takes at
// most 65535 query heads.
inline constexpr int kAttentionMaxPartitions = 65535;

cudaError_t write_kv_cuda(const WriteKvParams& p, cudaStream_t stream);

// Unsplit: one block per (query token, KV head): the block's warps share each 32-token tile of K and V
// (loaded once into shared memory as f32) across the group of query heads reading that KV
// head, with an online softmax in f32. `token_seq[t]` is the sequence of query token t
// (device array, num_tokens long). Prefill chunks use the same kernel: each query token stops
// at its own causal position.
cudaError_t paged_attention_cuda(const PagedAttentionParams& p, const int32_t* token_seq,
                                 int64_t num_tokens, cudaStream_t stream);

// Split-K ("FlashDecoding") variant for launches with few (token, KV head) pairs and long
// contexts, planned by plan_split_attention (plan.split() must hold): one block per (query
// token, KV head, partition) runs the same per-tile code over its slice of the causal range
// and leaves its partial softmax states in `workspace` (device memory, at least
// plan.workspace_bytes, layout in attention_split.cuh); a second kernel folds them in
// partition order into p.out. Both are queued on `stream`.
cudaError_t paged_attention_split_cuda(const PagedAttentionParams& p, const int32_t* token_seq,
                                       int64_t num_tokens, const SplitPlan& plan, void* workspace,
                                       cudaStream_t stream);

}  // namespace llmos::kernels::cuda
