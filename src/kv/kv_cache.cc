#include "kv/kv_cache.h"

#include "backend/backend.h"
#include "core/error.h"

namespace llmos {

int64_t KvCacheSpec::block_bytes() const {
  return 2LL * num_layers * num_kv_heads * block_size * head_dim * dtype_block_bytes(dtype);
}

void KvCacheSpec::validate() const {
  LLMOS_CHECK_ARG(num_layers > 0, "KV cache: num_layers must be positive, got ", num_layers);
  LLMOS_CHECK_ARG(num_kv_heads > 0, "KV cache: num_kv_heads must be positive, got ", num_kv_heads);
  LLMOS_CHECK_ARG(head_dim > 0, "KV cache: head_dim must be positive, got ", head_dim);
  LLMOS_CHECK_ARG(block_size > 0 && block_size <= 1024, "KV cache: block_size must be in [1, 1024], got ",
                  block_size);
  LLMOS_CHECK_ARG(num_blocks > 0, "KV cache: num_blocks must be positive, got ", num_blocks);
  LLMOS_CHECK_ARG(dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16,
                  "KV cache: dtype must be f32, f16 or bf16, got ", dtype_name(dtype));
}

KvCache::KvCache(const KvCacheSpec& spec, Backend& backend) : spec_(spec) {
  spec_.validate();
  const std::vector<int64_t> shape{spec.num_blocks, spec.num_kv_heads, spec.block_size, spec.head_dim};
  // Not zeroed: attention only reads slots the step wrote first, and untouched pages of a large
  // host allocation cost no physical memory until tokens reach them.
  for (int l = 0; l < spec.num_layers; ++l) {
    k_.push_back(backend.alloc(shape, spec.dtype));
    v_.push_back(backend.alloc(shape, spec.dtype));
  }
}

}  // namespace llmos
