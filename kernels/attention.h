// Attention over a paged KV cache for a flattened ("varlen") batch.
//
// KV pools, per layer: [num_blocks][num_kv_heads][block_size][head_dim] in kv_dtype (f32, f16
// or bf16) — head-major inside a block so one head's tokens are contiguous. Sequence s owns the
// blocks block_indices[block_indptr[s] .. block_indptr[s+1]) in order; its KV length is
// kv_len[s] (already including the tokens of this step, whose K/V were written first).
// Its queries are rows query_start[s] .. query_start[s+1] of q; the j-th of its n_new queries
// sits at position kv_len[s] - n_new + j and attends causally to KV positions [0, that].
// Grouped-query attention: query head h reads KV head h / (num_heads / num_kv_heads).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"

namespace llmos::kernels {

struct PagedAttentionParams {
  const float* q = nullptr;     // [T, num_heads * head_dim], row stride q_stride floats
  int64_t q_stride = 0;
  float* out = nullptr;         // [T, num_heads * head_dim], row stride out_stride floats
  int64_t out_stride = 0;
  const void* k_pool = nullptr;
  const void* v_pool = nullptr;
  DType kv_dtype = DType::kF32;
  int num_heads = 0, num_kv_heads = 0, head_dim = 0, block_size = 0;
  int num_seqs = 0;
  const int32_t* query_start = nullptr;   // [num_seqs + 1]
  const int32_t* kv_len = nullptr;        // [num_seqs]
  const int32_t* block_indptr = nullptr;  // [num_seqs + 1]
  const int32_t* block_indices = nullptr;
  float scale = 1.0f;           // usually 1 / sqrt(head_dim)
};

// Checks the batch description (indptrs monotone, lengths consistent, enough blocks for each
// kv_len); kInvalidArgument on any inconsistency.
StatusCode validate_paged_attention(const PagedAttentionParams& p, int64_t num_blocks);

// Reference: for each (token, head) in the work range, scores in double, softmax, weighted sum
// of V. Work items are (token, query head) pairs, flattened as token * num_heads + head.
// `scratch` holds at least max(kv_len) doubles.
StatusCode paged_attention_ref(const PagedAttentionParams& p, int64_t item_begin, int64_t item_end,
                               double* scratch);

// Writes the K and V rows of T new tokens into their cache slots: slot = block * block_size +
// offset. k and v are [T, num_kv_heads * head_dim] f32; they are converted to kv_dtype.
struct WriteKvParams {
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t kv_stride = 0;        // floats between rows of k and of v
  void* k_pool = nullptr;
  void* v_pool = nullptr;
  DType kv_dtype = DType::kF32;
  int num_kv_heads = 0, head_dim = 0, block_size = 0;
  int64_t num_blocks = 0;
  const int64_t* slots = nullptr;  // [T]
  int64_t num_tokens = 0;
};

StatusCode write_kv_ref(const WriteKvParams& p);

}  // namespace llmos::kernels
