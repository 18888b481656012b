#include "backend/kernel_params.h"

#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/batch.h"

namespace llmos {

kernels::RmsNormParams rms_norm_params(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
  kernels::RmsNormParams p;
  p.x = x.data_as<const float>();
  p.x_stride = row_stride_floats(x);
  p.weight = weight.data_as<const float>();
  p.y = y.data_as<float>();
  p.y_stride = row_stride_floats(y);
  p.rows = x.dim(0);
  p.dim = x.dim(1);
  p.eps = eps;
  return p;
}

kernels::RopeParams rope_params(Tensor& x, int heads, int head_dim, const RopeSpec& rope,
                                std::span<const int32_t> positions) {
  kernels::RopeParams p;
  p.x = x.data_as<float>();
  p.x_stride = row_stride_floats(x);
  p.rows = x.dim(0);
  p.heads = heads;
  p.head_dim = head_dim;
  p.rot_dim = rope.rot_dim;
  p.positions = positions.data();
  p.inv_freq = rope.inv_freq.data();
  p.attn_factor = rope.attn_factor;
  p.neox = rope.neox;
  return p;
}

kernels::WriteKvParams write_kv_params(KvCache& cache, int layer, const Tensor& k, const Tensor& v,
                                       std::span<const int64_t> slots) {
  const KvCacheSpec& spec = cache.spec();
  kernels::WriteKvParams p;
  p.k = k.data_as<const float>();
  p.v = v.data_as<const float>();
  p.kv_stride = row_stride_floats(k);
  LLMOS_ASSERT(p.kv_stride == row_stride_floats(v));
  p.k_pool = cache.k(layer).data();
  p.v_pool = cache.v(layer).data();
  p.kv_dtype = spec.dtype;
  p.num_kv_heads = spec.num_kv_heads;
  p.head_dim = spec.head_dim;
  p.block_size = spec.block_size;
  p.num_blocks = spec.num_blocks;
  p.slots = slots.data();
  p.num_tokens = static_cast<int64_t>(slots.size());
  return p;
}

kernels::PagedAttentionParams paged_attention_params(const Tensor& q, const KvCache& cache,
                                                     int layer, const Batch& batch, int num_heads,
                                                     float scale, Tensor& out) {
  const KvCacheSpec& spec = cache.spec();
  kernels::PagedAttentionParams p;
  p.q = q.data_as<const float>();
  p.q_stride = row_stride_floats(q);
  p.out = out.data_as<float>();
  p.out_stride = row_stride_floats(out);
  p.k_pool = cache.k(layer).data();
  p.v_pool = cache.v(layer).data();
  p.kv_dtype = spec.dtype;
  p.num_heads = num_heads;
  p.num_kv_heads = spec.num_kv_heads;
  p.head_dim = spec.head_dim;
  p.block_size = spec.block_size;
  p.num_seqs = batch.num_seqs();
  p.query_start = batch.query_start.data();
  p.kv_len = batch.kv_len.data();
  p.block_indptr = batch.block_indptr.data();
  p.block_indices = batch.block_indices.data();
  p.scale = scale;
  return p;
}

}  // namespace llmos
