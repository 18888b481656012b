// Paged attention for prefill chunks on tensor cores (FlashAttention-2 style, sm_80+), over the
// layouts and conventions of kernels/attention.h, for f16 caches with head_dim 64 or 128.
//
// One CTA per (tile of attention_prefill_plan.h, KV head): 4 warps, 16 query rows each, rows
// being the (token, query head) pairs of the KV head's GQA group. The CTA walks the sequence's
// KV in tiles of kPrefillKvTile tokens gathered through the block table into shared memory as
// f16 (cp.async; V's load overlaps S, the next K's overlaps the softmax and P V), reads MMA
// fragments with ldmatrix, computes S = Q K^T with mma.sync m16n8k16 (f16 in, f32 accumulate),
// masks each row at its own causal limit, keeps the online softmax in f32 (running max and
// sum per row) and accumulates P V with P rounded to f16. q is f32 in memory and is rounded to
// f16 as it is loaded, so results match the f64 reference to about 1e-2, not 1e-5.
// Decode tokens of the same batch are rows like any other (a tile of g rows).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/attention.h"
#include "kernels/cuda/attention_prefill_plan.h"

namespace llmos::kernels::cuda {

// Whether the kernel serves these parameters (host pointers may stand in for device ones:
// only dtype, shapes and alignment are read): an f16 cache, head_dim 64 or 128, whole groups,
// at most 65535 KV heads, q / out rows 8-byte aligned (float2 access) and 16-byte aligned
// pools (16-byte cp.async of a token's row).
bool prefill_attention_serves(const PagedAttentionParams& p);

// Runs the plan (`tiles`: device copy of plan.tiles, `num_tiles` of them, built with this
// kernel's kPrefillTileRows, kPrefillKvTile and group num_heads / num_kv_heads) on `stream`.
// Writes every (token, head) row of p.out the plan covers. Returns cudaErrorInvalidValue for
// parameters it does not serve, cudaErrorNoKernelImageForDevice below sm_80, else the launch
// status.
cudaError_t paged_attention_prefill_cuda(const PagedAttentionParams& p, const PrefillTile* tiles,
                                         int64_t num_tiles, cudaStream_t stream);

}  // namespace llmos::kernels::cuda
