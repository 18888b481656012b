// The kernels' raw-pointer parameter structs filled from backend operands, once for every
// backend (the CPU and CUDA backends read the same tensors, cache and batch the same way; the
// CUDA backend then swaps host pointers for uploaded ones).
#pragma once

#include <cstdint>
#include <span>

#include "backend/backend.h"
#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/norm.h"
#include "kernels/rope.h"

namespace llmos {

class KvCache;
struct Batch;

// Floats between rows of a 2-D f32 tensor (a single row: its length).
inline int64_t row_stride_floats(const Tensor& t) {
  return t.dim(0) > 1 ? t.stride_bytes(0) / 4 : t.dim(1);
}

// y = rms_norm(x) * weight.
kernels::RmsNormParams rms_norm_params(const Tensor& x, const Tensor& weight, float eps, Tensor& y);

// Rotary embedding of x in place (positions and frequencies as host pointers).
kernels::RopeParams rope_params(Tensor& x, int heads, int head_dim, const RopeSpec& rope,
                                std::span<const int32_t> positions);

// K and V rows written to `slots` of `layer` (pointers as given: host spans).
kernels::WriteKvParams write_kv_params(KvCache& cache, int layer, const Tensor& k, const Tensor& v,
                                       std::span<const int64_t> slots);

// Attention of q over `layer` of the cache for `batch` (batch arrays as host pointers).
kernels::PagedAttentionParams paged_attention_params(const Tensor& q, const KvCache& cache,
                                                     int layer, const Batch& batch, int num_heads,
                                                     float scale, Tensor& out);

}  // namespace llmos
