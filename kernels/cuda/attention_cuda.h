// CUDA kernels over the paged KV cache: write_kv and paged attention, with the layouts and
// conventions of kernels/attention.h (device pointers in the params, including the batch
// arrays). Launchers never allocate or throw; they return the launch status, or
// cudaErrorInvalidValue for shapes they do not serve (see the limits below).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/attention.h"

namespace llmos::kernels::cuda {

// Limits of paged_attention_cuda: head_dim up to 256, up to 32 query heads per KV head,
// up to 65535 query tokens per launch.
inline constexpr int kAttentionMaxHeadDim = 256;
inline constexpr int kAttentionMaxGroup = 32;
inline constexpr int64_t kAttentionMaxTokens = 65535;

cudaError_t write_kv_cuda(const WriteKvParams& p, cudaStream_t stream);

// One block per (query token, KV head): the block's warps share each 32-token tile of K and V
// (loaded once into shared memory as f32) across the group of query heads reading that KV
// head, with an online softmax in f32. `token_seq[t]` is the sequence of query token t
// (device array, num_tokens long). Prefill chunks use the same kernel: each query token stops
// at its own causal position.
cudaError_t paged_attention_cuda(const PagedAttentionParams& p, const int32_t* token_seq,
                                 int64_t num_tokens, cudaStream_t stream);

}  // namespace llmos::kernels::cuda
