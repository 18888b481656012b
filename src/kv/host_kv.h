// The K/V rows of one sequence held in host memory: what a swapped-out sequence
// leaves behind and what a context snapshot carries. `data` holds
// ceil(num_tokens / block_size) blocks, each KvCache::block_bytes() long (every
// layer's K then V, as KvCache::read_block writes them); slots past num_tokens
// in the last block are unspecified.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kv/kv_cache.h"

namespace llmos {

class KvCacheManager;

struct HostKv {
  int64_t num_tokens = 0;
  int64_t block_bytes = 0;
  std::vector<std::byte> data;

  int64_t num_blocks() const {
    return block_bytes == 0 ? 0 : static_cast<int64_t>(data.size()) / block_bytes;
  }
};

// Copies the blocks of `table` that cover `num_tokens` tokens out of the cache.
HostKv read_host_kv(const KvCache& cache, const std::vector<int32_t>& table, int64_t num_tokens);
// Writes host blocks into the (already allocated) blocks of `table`, in order.
void write_host_kv(KvCache& cache, const std::vector<int32_t>& table, const HostKv& kv);

}  // namespace llmos
