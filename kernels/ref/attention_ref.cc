#include <algorithm>
#include <cmath>
#include <limits>

#include "core/half.h"
#include "kernels/attention.h"

namespace llmos::kernels {
namespace {

float load_kv(const void* pool, DType dtype, int64_t index) {
  switch (dtype) {
    case DType::kF32: return static_cast<const float*>(pool)[index];
    case DType::kF16: return f16_to_f32(static_cast<const uint16_t*>(pool)[index]);
    case DType::kBF16: return bf16_to_f32(static_cast<const uint16_t*>(pool)[index]);
    default: return std::numeric_limits<float>::quiet_NaN();
  }
}

void store_kv(void* pool, DType dtype, int64_t index, float value) {
  switch (dtype) {
    case DType::kF32: static_cast<float*>(pool)[index] = value; break;
    case DType::kF16: static_cast<uint16_t*>(pool)[index] = f32_to_f16(value); break;
    case DType::kBF16: static_cast<uint16_t*>(pool)[index] = f32_to_bf16(value); break;
    default: break;
  }
}

bool is_kv_dtype(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

// Element index of (block, kv head, offset in block, dim 0) in a pool.
int64_t pool_index(int64_t block, int kv_head, int offset, int num_kv_heads, int block_size,
                   int head_dim) {
  return ((block * num_kv_heads + kv_head) * block_size + offset) * static_cast<int64_t>(head_dim);
}

}  // namespace

StatusCode validate_paged_attention(const PagedAttentionParams& p, int64_t num_blocks) {
  if (p.q == nullptr || p.out == nullptr || p.k_pool == nullptr || p.v_pool == nullptr ||
      p.query_start == nullptr || p.kv_len == nullptr || p.block_indptr == nullptr ||
      (p.block_indices == nullptr && p.block_indptr[p.num_seqs] > 0))
    return StatusCode::kInvalidArgument;
  if (!is_kv_dtype(p.kv_dtype) || p.num_heads <= 0 || p.num_kv_heads <= 0 || p.head_dim <= 0 ||
      p.block_size <= 0 || p.num_seqs < 0 || p.num_heads % p.num_kv_heads != 0)
    return StatusCode::kInvalidArgument;
  if (p.query_start[0] != 0 || p.block_indptr[0] != 0) return StatusCode::kInvalidArgument;
  for (int s = 0; s < p.num_seqs; ++s) {
    const int64_t n_new = p.query_start[s + 1] - p.query_start[s];
    const int64_t n_blocks = p.block_indptr[s + 1] - p.block_indptr[s];
    if (n_new < 0 || n_blocks < 0 || p.kv_len[s] < n_new) return StatusCode::kInvalidArgument;
    if (n_blocks * p.block_size < p.kv_len[s]) return StatusCode::kInvalidArgument;
    for (int64_t b = p.block_indptr[s]; b < p.block_indptr[s + 1]; ++b) {
      if (p.block_indices[b] < 0 || p.block_indices[b] >= num_blocks) return StatusCode::kInvalidArgument;
    }
  }
  return StatusCode::kOk;
}

StatusCode paged_attention_ref(const PagedAttentionParams& p, int64_t item_begin, int64_t item_end,
                               double* scratch) {
  if (scratch == nullptr) return StatusCode::kInvalidArgument;
  const int group = p.num_heads / p.num_kv_heads;
  int seq = 0;
  for (int64_t item = item_begin; item < item_end; ++item) {
    const int64_t token = item / p.num_heads;
    const int head = static_cast<int>(item % p.num_heads);
    // Items arrive in token order, so the owning sequence only moves forward.
    while (seq < p.num_seqs && token >= p.query_start[seq + 1]) ++seq;
    if (seq >= p.num_seqs) return StatusCode::kInvalidArgument;
    const int64_t n_new = p.query_start[seq + 1] - p.query_start[seq];
    const int64_t pos = p.kv_len[seq] - n_new + (token - p.query_start[seq]);
    const int64_t n_ctx = pos + 1;
    const int kv_head = head / group;
    const int32_t* blocks = p.block_indices + p.block_indptr[seq];
    const float* q = p.q + token * p.q_stride + static_cast<int64_t>(head) * p.head_dim;

    double max_score = -std::numeric_limits<double>::infinity();
    for (int64_t t = 0; t < n_ctx; ++t) {
      const int64_t base = pool_index(blocks[t / p.block_size], kv_head,
                                      static_cast<int>(t % p.block_size), p.num_kv_heads,
                                      p.block_size, p.head_dim);
      double dot = 0.0;
      for (int d = 0; d < p.head_dim; ++d) dot += static_cast<double>(q[d]) * load_kv(p.k_pool, p.kv_dtype, base + d);
      scratch[t] = dot * p.scale;
      max_score = std::max(max_score, scratch[t]);
    }
    double denom = 0.0;
    for (int64_t t = 0; t < n_ctx; ++t) {
      scratch[t] = std::exp(scratch[t] - max_score);
      denom += scratch[t];
    }
    float* out = p.out + token * p.out_stride + static_cast<int64_t>(head) * p.head_dim;
    for (int d = 0; d < p.head_dim; ++d) {
      double acc = 0.0;
      for (int64_t t = 0; t < n_ctx; ++t) {
        const int64_t base = pool_index(blocks[t / p.block_size], kv_head,
                                        static_cast<int>(t % p.block_size), p.num_kv_heads,
                                        p.block_size, p.head_dim);
        acc += scratch[t] * load_kv(p.v_pool, p.kv_dtype, base + d);
      }
      out[d] = static_cast<float>(acc / denom);
    }
  }
  return StatusCode::kOk;
}

StatusCode write_kv_ref(const WriteKvParams& p) {
  if (p.k == nullptr || p.v == nullptr || p.k_pool == nullptr || p.v_pool == nullptr ||
      p.slots == nullptr || !is_kv_dtype(p.kv_dtype) || p.block_size <= 0)
    return StatusCode::kInvalidArgument;
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const int64_t slot = p.slots[t];
    const int64_t block = slot / p.block_size;
    if (slot < 0 || block >= p.num_blocks) return StatusCode::kInvalidArgument;
    const int offset = static_cast<int>(slot % p.block_size);
    for (int h = 0; h < p.num_kv_heads; ++h) {
      const int64_t dst = pool_index(block, h, offset, p.num_kv_heads, p.block_size, p.head_dim);
      const int64_t src = t * p.kv_stride + static_cast<int64_t>(h) * p.head_dim;
      for (int d = 0; d < p.head_dim; ++d) {
        store_kv(p.k_pool, p.kv_dtype, dst + d, p.k[src + d]);
        store_kv(p.v_pool, p.kv_dtype, dst + d, p.v[src + d]);
      }
    }
  }
  return StatusCode::kOk;
}

}  // namespace llmos::kernels
