// RoPE fused into the KV cache write: q rotated in place, k rotated on its way into the cache
// (read once, never written back), v copied, in one launch. Same contracts as rope_cuda and
// write_kv_cuda (kernels/rope.h, kernels/attention.h) with device pointers in the params.
//
// For .cu files it also holds the per-element device functions that the unfused kernels and
// the fused one share (the rotation of one pair, the cache slot index, the f32 -> cache
// conversion), so the fused and unfused paths produce the same bytes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/attention.h"
#include "kernels/rope.h"

namespace llmos::kernels::cuda {

// q_rope describes q ([rows, heads * head_dim] rotated in place: x, x_stride, rows, heads) and
// the rotation (head_dim, rot_dim, positions, inv_freq, attn_factor, neox), which k shares with
// kv.num_kv_heads heads. kv describes k, v and the slots as write_kv_cuda takes them;
// kv.num_tokens must equal q_rope.rows (at most 65535) and kv.head_dim q_rope.head_dim.
// cudaErrorInvalidValue for arguments it cannot serve.
cudaError_t rope_write_kv_cuda(const RopeParams& q_rope, const WriteKvParams& kv,
                               cudaStream_t stream);

}  // namespace llmos::kernels::cuda

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace llmos::kernels::cuda::device {

__device__ __forceinline__ float kv_to_f32(float v) { return v; }
__device__ __forceinline__ float kv_to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float kv_to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
// Round to nearest even, as the reference's f32_to_f16 / f32_to_bf16.
__device__ __forceinline__ void kv_from_f32(float v, float* out) { *out = v; }
__device__ __forceinline__ void kv_from_f32(float v, __half* out) { *out = __float2half_rn(v); }
__device__ __forceinline__ void kv_from_f32(float v, __nv_bfloat16* out) {
  *out = __float2bfloat16_rn(v);
}

// Element index of (slot, KV head h, dim d) in a pool [blocks][kv heads][block_size][head_dim].
__device__ __forceinline__ int64_t kv_slot_index(int64_t slot, int h, int d, int num_kv_heads,
                                                 int block_size, int head_dim) {
  const int64_t block = slot / block_size;
  const int offset = static_cast<int>(slot % block_size);
  return ((block * num_kv_heads + h) * block_size + offset) * head_dim + d;
}

// Pair i of the head vector v rotated by position pos: the indices it occupies and the rotated
// values. The angle and its cos/sin are computed in double, as rope_ref does.
struct RopePair {
  int a, b;
  float y0, y1;
};

__device__ __forceinline__ RopePair rope_pair(const float* v, int i, int rot_dim, bool neox,
                                              int32_t pos, const float* inv_freq,
                                              float attn_factor) {
  const int half = rot_dim / 2;
  const double theta = static_cast<double>(pos) * inv_freq[i];
  double s, c;
  sincos(theta, &s, &c);
  c *= attn_factor;
  s *= attn_factor;
  const int a = neox ? i : 2 * i;
  const int b = neox ? i + half : 2 * i + 1;
  const double x0 = v[a], x1 = v[b];
  return {a, b, static_cast<float>(x0 * c - x1 * s), static_cast<float>(x0 * s + x1 * c)};
}

}  // namespace llmos::kernels::cuda::device
#endif
