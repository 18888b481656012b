#include "kernels/cuda/rope_kv_cuda.h"

namespace llmos::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// One grid row per token. Its items, in order: q's rotated pairs (rotated in place), k's rotated
// pairs (rotated into the cache), then one item per K/V element (v always; k when its dimension
// is past rot_dim and so not rotated).
template <typename KV>
__global__ void rope_write_kv_kernel(RopeParams q, WriteKvParams kv) {
  const int half = q.rot_dim / 2;
  const int64_t t = blockIdx.y;
  const int64_t q_pairs = static_cast<int64_t>(q.heads) * half;
  const int64_t k_pairs = static_cast<int64_t>(kv.num_kv_heads) * half;
  const int64_t kv_dim = static_cast<int64_t>(kv.num_kv_heads) * kv.head_dim;
  int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int32_t pos = q.positions[t];
  if (item < q_pairs) {
    const int h = static_cast<int>(item / half), i = static_cast<int>(item % half);
    float* v = q.x + t * q.x_stride + static_cast<int64_t>(h) * q.head_dim;
    const device::RopePair r =
        device::rope_pair(v, i, q.rot_dim, q.neox, pos, q.inv_freq, q.attn_factor);
    v[r.a] = r.y0;
    v[r.b] = r.y1;
    return;
  }
  item -= q_pairs;
  const int64_t slot = kv.slots[t];
  auto* k_pool = static_cast<KV*>(kv.k_pool);
  if (item < k_pairs) {
    const int h = static_cast<int>(item / half), i = static_cast<int>(item % half);
    const float* k = kv.k + t * kv.kv_stride + static_cast<int64_t>(h) * kv.head_dim;
    const device::RopePair r =
        device::rope_pair(k, i, q.rot_dim, q.neox, pos, q.inv_freq, q.attn_factor);
    device::kv_from_f32(r.y0, k_pool + device::kv_slot_index(slot, h, r.a, kv.num_kv_heads,
                                                             kv.block_size, kv.head_dim));
    device::kv_from_f32(r.y1, k_pool + device::kv_slot_index(slot, h, r.b, kv.num_kv_heads,
                                                             kv.block_size, kv.head_dim));
    return;
  }
  item -= k_pairs;
  if (item >= kv_dim) return;
  const int h = static_cast<int>(item / kv.head_dim), d = static_cast<int>(item % kv.head_dim);
  const int64_t dst =
      device::kv_slot_index(slot, h, d, kv.num_kv_heads, kv.block_size, kv.head_dim);
  device::kv_from_f32(kv.v[t * kv.kv_stride + item], static_cast<KV*>(kv.v_pool) + dst);
  if (d >= q.rot_dim) device::kv_from_f32(kv.k[t * kv.kv_stride + item], k_pool + dst);
}

}  // namespace

cudaError_t rope_write_kv_cuda(const RopeParams& q, const WriteKvParams& kv, cudaStream_t stream) {
  if (q.rows == 0 && kv.num_tokens == 0) return cudaSuccess;
  if (q.rows < 0 || q.rows > 65535 || kv.num_tokens != q.rows || q.x == nullptr ||
      q.positions == nullptr || q.inv_freq == nullptr || q.heads <= 0 || q.head_dim <= 0 ||
      q.rot_dim <= 0 || q.rot_dim % 2 != 0 || q.rot_dim > q.head_dim || kv.head_dim != q.head_dim ||
      kv.num_kv_heads <= 0 || kv.k == nullptr || kv.v == nullptr || kv.k_pool == nullptr ||
      kv.v_pool == nullptr || kv.slots == nullptr || kv.block_size <= 0)
    return cudaErrorInvalidValue;
  const int64_t items = static_cast<int64_t>(q.heads + kv.num_kv_heads) * (q.rot_dim / 2) +
                        static_cast<int64_t>(kv.num_kv_heads) * kv.head_dim;
  const dim3 grid(static_cast<unsigned>((items + kThreads - 1) / kThreads),
                  static_cast<unsigned>(q.rows));
  switch (kv.kv_dtype) {
    case DType::kF32: rope_write_kv_kernel<float><<<grid, kThreads, 0, stream>>>(q, kv); break;
    case DType::kF16: rope_write_kv_kernel<__half><<<grid, kThreads, 0, stream>>>(q, kv); break;
    case DType::kBF16:
      rope_write_kv_kernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(q, kv);
      break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace llmos::kernels::cuda
