// KV cache storage: per layer, K and V pools of shape [num_blocks, kv_heads,
// block_size, head_dim] (head-major inside a block, see kernels/attention.h). A
// block id is valid across all layers. Which sequence owns which block is
// decided by a block allocator above this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace llmos {

class Backend;

struct KvCacheSpec {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 16;
  int64_t num_blocks = 0;
  DType dtype = DType::kF16;  // f32, f16 or bf16

  // Bytes of one block across all layers, K and V.
  int64_t block_bytes() const;
  void validate() const;  // kInvalidArgument naming the bad field
};

class KvCache {
 public:
  // Allocates the pools on the backend's device.
  KvCache(const KvCacheSpec& spec, Backend& backend);

  const KvCacheSpec& spec() const { return spec_; }
  Tensor& k(int layer) { return k_[layer]; }
  Tensor& v(int layer) { return v_[layer]; }
  const Tensor& k(int layer) const { return k_[layer]; }
  const Tensor& v(int layer) const { return v_[layer]; }

  // Block transfers for copy-on-write, swap and snapshots. A block's bytes,
  // every layer's K then V, are block_bytes() long in host memory. A host
  // cache copies them itself; a device cache asks its backend (which must
  // outlive the cache).
  int64_t block_bytes() const { return spec_.block_bytes(); }
  void copy_block(int32_t src, int32_t dst);
  void read_block(int32_t block, std::span<std::byte> host) const;
  void write_block(int32_t block, std::span<const std::byte> host);

 private:
  void check_block(int32_t block, const char* what) const;
  int64_t layer_block_bytes() const;  // one layer's K (or V) rows of one block

  KvCacheSpec spec_;
  Backend* backend_ = nullptr;
  bool on_device_ = false;
  std::vector<Tensor> k_;
  std::vector<Tensor> v_;
};

}  // namespace llmos
