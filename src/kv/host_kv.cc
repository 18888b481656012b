#include "kv/host_kv.h"

#include <span>

#include "core/error.h"

namespace llmos {

HostKv read_host_kv(const KvCache& cache, const std::vector<int32_t>& table, int64_t num_tokens) {
  const int64_t bs = cache.spec().block_size;
  const int64_t blocks = (num_tokens + bs - 1) / bs;
  LLMOS_CHECK_ARG(num_tokens >= 0 && blocks <= static_cast<int64_t>(table.size()),
                  "read_host_kv: ", num_tokens, " tokens need ", blocks,
                  " blocks, the block table has ", table.size());
  HostKv kv;
  kv.num_tokens = num_tokens;
  kv.block_bytes = cache.block_bytes();
  kv.data.resize(static_cast<size_t>(blocks * kv.block_bytes));
  for (int64_t i = 0; i < blocks; ++i) {
    cache.read_block(table[static_cast<size_t>(i)],
                     std::span<std::byte>(kv.data).subspan(static_cast<size_t>(i * kv.block_bytes),
                                                           static_cast<size_t>(kv.block_bytes)));
  }
  return kv;
}

void write_host_kv(KvCache& cache, const std::vector<int32_t>& table, const HostKv& kv) {
  LLMOS_CHECK_ARG(kv.block_bytes == cache.block_bytes(), "write_host_kv: host blocks of ",
                  kv.block_bytes, " bytes, the cache's blocks are ", cache.block_bytes());
  const int64_t blocks = kv.num_blocks();
  LLMOS_CHECK_ARG(blocks <= static_cast<int64_t>(table.size()), "write_host_kv: ", blocks,
                  " host blocks, the block table has ", table.size());
  for (int64_t i = 0; i < blocks; ++i) {
    cache.write_block(table[static_cast<size_t>(i)], std::span<const std::byte>(kv.data).subspan(
                                                         static_cast<size_t>(i * kv.block_bytes),
                                                         static_cast<size_t>(kv.block_bytes)));
  }
}

}  // namespace llmos
