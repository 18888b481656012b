#include "kv/kv_cache.h"

#include <cstring>

#include "backend/backend.h"
#include "core/error.h"

namespace llmos {

int64_t KvCacheSpec::block_bytes() const {
  return 2LL * num_layers * num_kv_heads * block_size * head_dim * dtype_block_bytes(dtype);
}

void KvCacheSpec::validate() const {
  LLMOS_CHECK_ARG(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16,
                  "KV cache: dtype must be f32, f16 or bf16, got type id ",
                  static_cast<uint32_t>(dtype));
  LLMOS_CHECK_ARG(num_layers > 0, "KV cache: num_layers must be positive, got ", num_layers);
  LLMOS_CHECK_ARG(num_kv_heads > 0, "KV cache: num_kv_heads must be positive, got ", num_kv_heads);
  LLMOS_CHECK_ARG(head_dim > 0, "KV cache: head_dim must be positive, got ", head_dim);
  LLMOS_CHECK_ARG(block_size > 0 && block_size <= 1024,
                  "KV cache: block_size must be in [1, 1024], got ", block_size);
  LLMOS_CHECK_ARG(num_blocks > 0, "KV cache: num_blocks must be positive, got ", num_blocks);
  // Bytes per block and in all must be representable (hostile snapshot headers, huge configs).
  int64_t bytes = 2 * dtype_block_bytes(dtype);
  bool overflow = false;
  for (int64_t f : {int64_t{num_layers}, int64_t{num_kv_heads}, int64_t{block_size},
                    int64_t{head_dim}}) {
    overflow = overflow || __builtin_mul_overflow(bytes, f, &bytes);
  }
  int64_t total = 0;
  overflow = overflow || __builtin_mul_overflow(bytes, num_blocks, &total);
  LLMOS_CHECK_ARG(!overflow && total <= (int64_t{1} << 50),
                  "KV cache: layout of ", num_layers, " layers x ", num_kv_heads, " heads x ",
                  block_size, " tokens x ", head_dim, " dims x ", num_blocks,
                  " blocks is too large");
}

KvCache::KvCache(const KvCacheSpec& spec, Backend& backend)
    : spec_(spec), backend_(&backend), on_device_(!backend.device().is_cpu()) {
  spec_.validate();
  const std::vector<int64_t> shape{spec.num_blocks, spec.num_kv_heads, spec.block_size,
                                   spec.head_dim};
  // Not zeroed: attention only reads slots the step wrote first, and untouched
  // pages of a large host allocation cost no physical memory until tokens reach
  // them.
  for (int l = 0; l < spec.num_layers; ++l) {
    k_.push_back(backend.alloc(shape, spec.dtype));
    v_.push_back(backend.alloc(shape, spec.dtype));
  }
}

void KvCache::check_block(int32_t block, const char* what) const {
  LLMOS_CHECK_ARG(block >= 0 && block < spec_.num_blocks, "KvCache::", what, ": block ", block,
                  " outside [0, ", spec_.num_blocks, ")");
}

int64_t KvCache::layer_block_bytes() const {
  return int64_t{spec_.num_kv_heads} * spec_.block_size * spec_.head_dim *
         dtype_block_bytes(spec_.dtype);
}

void KvCache::copy_block(int32_t src, int32_t dst) {
  check_block(src, "copy_block");
  check_block(dst, "copy_block");
  if (src == dst) return;
  if (on_device_) return backend_->copy_kv_block(*this, src, dst);
  const size_t n = static_cast<size_t>(layer_block_bytes());
  for (int l = 0; l < spec_.num_layers; ++l) {
    for (Tensor* t : {&k_[l], &v_[l]}) {
      auto* base = static_cast<std::byte*>(t->data());
      std::memcpy(base + static_cast<size_t>(dst) * n, base + static_cast<size_t>(src) * n, n);
    }
  }
}

void KvCache::read_block(int32_t block, std::span<std::byte> host) const {
  check_block(block, "read_block");
  LLMOS_CHECK_ARG(static_cast<int64_t>(host.size()) == block_bytes(),
                  "KvCache::read_block: buffer of ", host.size(), " bytes, a block is ",
                  block_bytes());
  if (on_device_) return backend_->read_kv_block(*this, block, host);
  const size_t n = static_cast<size_t>(layer_block_bytes());
  std::byte* out = host.data();
  for (int l = 0; l < spec_.num_layers; ++l) {
    for (const Tensor* t : {&k_[l], &v_[l]}) {
      const auto* base = static_cast<const std::byte*>(t->data());
      std::memcpy(out, base + static_cast<size_t>(block) * n, n);
      out += n;
    }
  }
}

void KvCache::write_block(int32_t block, std::span<const std::byte> host) {
  check_block(block, "write_block");
  LLMOS_CHECK_ARG(static_cast<int64_t>(host.size()) == block_bytes(),
                  "KvCache::write_block: buffer of ", host.size(), " bytes, a block is ",
                  block_bytes());
  if (on_device_) return backend_->write_kv_block(*this, block, host);
  const size_t n = static_cast<size_t>(layer_block_bytes());
  const std::byte* in = host.data();
  for (int l = 0; l < spec_.num_layers; ++l) {
    for (Tensor* t : {&k_[l], &v_[l]}) {
      auto* base = static_cast<std::byte*>(t->data());
      std::memcpy(base + static_cast<size_t>(block) * n, in, n);
      in += n;
    }
  }
}

}  // namespace llmos
