// KvBlock: the allocator's metadata for one paged KV block (the K/V rows
// themselves live in KvCache). The free-list links are stored inside the block
// ("intrusive") so the free queue can unlink any block in O(1) without a
// separate node allocation or a search.
#pragma once

#include <cstdint>
#include <vector>

namespace llmos {

struct KvBlock {
  int32_t id = -1;
  // Number of sequence block tables that reference this block. 0 means the
  // block sits in the free queue (possibly still "cached": holding a prefix
  // hash and valid K/V rows).
  int32_t ref_count = 0;
  // Prefix-cache identity, only for full blocks whose K/V rows are computed.
  bool has_hash = false;
  uint64_t hash = 0;
  uint64_t parent_hash = 0;     // hash of the previous block in the chain (verified on lookup)
  std::vector<int32_t> tokens;  // the block's token ids (verified on lookup); empty if !has_hash
  // Free-queue links; both null when the block is not in the queue.
  KvBlock* prev_free = nullptr;
  KvBlock* next_free = nullptr;

  bool in_free_queue() const { return prev_free != nullptr; }
};

}  // namespace llmos
