// KV block transfers on the device (copy-on-write, swap, snapshots): one async copy per layer
// and per K/V pool, in the host layout of KvCache::read_block.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"
#include "kv/kv_cache.h"

namespace llmos {
namespace {

size_t layer_block_bytes(const KvCacheSpec& spec) {
  return static_cast<size_t>(int64_t{spec.num_kv_heads} * spec.block_size * spec.head_dim *
                             dtype_block_bytes(spec.dtype));
}

void check_block(const KvCache& cache, int32_t block, const char* what) {
  LLMOS_CHECK_ARG(block >= 0 && block < cache.spec().num_blocks, what, ": block ", block, " outside [0, ",
                  cache.spec().num_blocks, ")");
}

}  // namespace

void CudaBackend::copy_kv_block(KvCache& cache, int32_t src, int32_t dst) {
  check_block(cache, src, "copy_kv_block");
  check_block(cache, dst, "copy_kv_block");
  check_on_device(cache.k(0), "copy_kv_block", "KV cache");
  if (src == dst) return;
  activate();
  const size_t n = layer_block_bytes(cache.spec());
  for (int l = 0; l < cache.spec().num_layers; ++l) {
    for (Tensor* t : {&cache.k(l), &cache.v(l)}) {
      auto* base = static_cast<std::byte*>(t->data());
      LLMOS_CUDA_CHECK(cudaMemcpyAsync(base + static_cast<size_t>(dst) * n, base + static_cast<size_t>(src) * n, n,
                                       cudaMemcpyDeviceToDevice, stream_));
    }
  }
}

void CudaBackend::read_kv_block(const KvCache& cache, int32_t block, std::span<std::byte> host) {
  check_block(cache, block, "read_kv_block");
  check_on_device(cache.k(0), "read_kv_block", "KV cache");
  LLMOS_CHECK_ARG(static_cast<int64_t>(host.size()) == cache.block_bytes(), "read_kv_block: buffer of ",
                  host.size(), " bytes, a block is ", cache.block_bytes());
  activate();
  const size_t n = layer_block_bytes(cache.spec());
  std::byte* out = host.data();
  for (int l = 0; l < cache.spec().num_layers; ++l) {
    for (const Tensor* t : {&cache.k(l), &cache.v(l)}) {
      const auto* base = static_cast<const std::byte*>(t->data());
      LLMOS_CUDA_CHECK(cudaMemcpyAsync(out, base + static_cast<size_t>(block) * n, n, cudaMemcpyDeviceToHost, stream_));
      out += n;
    }
  }
  LLMOS_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::write_kv_block(KvCache& cache, int32_t block, std::span<const std::byte> host) {
  check_block(cache, block, "write_kv_block");
  check_on_device(cache.k(0), "write_kv_block", "KV cache");
  LLMOS_CHECK_ARG(static_cast<int64_t>(host.size()) == cache.block_bytes(), "write_kv_block: buffer of ",
                  host.size(), " bytes, a block is ", cache.block_bytes());
  activate();
  const size_t n = layer_block_bytes(cache.spec());
  const std::byte* in = host.data();
  for (int l = 0; l < cache.spec().num_layers; ++l) {
    for (Tensor* t : {&cache.k(l), &cache.v(l)}) {
      auto* base = static_cast<std::byte*>(t->data());
      LLMOS_CUDA_CHECK(cudaMemcpyAsync(base + static_cast<size_t>(block) * n, in, n, cudaMemcpyHostToDevice, stream_));
      in += n;
    }
  }
  // The caller's buffer may be reused as soon as this returns.
  LLMOS_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace llmos
