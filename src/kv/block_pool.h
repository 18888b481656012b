// BlockPool: owns the metadata of every paged KV block (refcount, prefix hash,
// free-list links), the LRU free queue and the prefix map hash -> block id.
//
// Block 0 is reserved as the null block: it is never handed out, never freed
// and never cached, so a runner can point padding entries of a block table at
// it. Usable blocks are 1 .. num_blocks-1. Every usable block is in exactly one
// state:
//   used   ref_count > 0, referenced by at least one sequence's block table
//   cached ref_count == 0, in the free queue, still holding a prefix hash
//   (reusable on a hit) free   ref_count == 0, in the free queue, no hash
// Allocation pops the LRU front of the free queue; a cached block taken this
// way is evicted (its hash leaves the prefix map).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "kv/free_block_queue.h"
#include "kv/kv_block.h"

namespace llmos {

class BlockPool {
 public:
  static constexpr int32_t kNullBlock = 0;
  // Bounds that keep bad configuration from turning into huge metadata
  // allocations.
  static constexpr int64_t kMaxBlocks = int64_t{1} << 24;
  static constexpr int kMaxBlockSize = 1 << 16;

  BlockPool(int64_t num_blocks, int block_size, bool enable_prefix_caching = true);
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  int64_t num_blocks() const { return static_cast<int64_t>(blocks_.size()); }  // incl. null
  int64_t num_usable_blocks() const { return num_blocks() - 1; }
  int block_size() const { return block_size_; }
  bool prefix_caching_enabled() const { return enable_prefix_caching_; }

  // Allocatable blocks: free plus cached (cached ones are evicted when taken).
  int64_t num_free_blocks() const { return queue_.size(); }
  int64_t num_cached_blocks() const { return num_cached_; }
  int64_t num_used_blocks() const { return num_usable_blocks() - queue_.size(); }

  // Appends `n` fresh blocks (ref_count 1, no hash) to `out`, LRU first.
  // Returns false and changes nothing when fewer than `n` blocks are free.
  bool allocate(int64_t n, std::vector<int32_t>& out);

  // The cached or used block registered under `hash` whose parent hash and
  // tokens also match, or nullopt.
  std::optional<int32_t> find_cached(uint64_t hash, uint64_t parent_hash,
                                     std::span<const int32_t> tokens) const;

  // One more reference to a block; takes a cached block out of the free queue.
  void touch(int32_t block);
  // One reference less; at zero the block goes to the back of the free queue
  // (cached if it has a hash, else plain free).
  void release(int32_t block);

  // Registers a used, full block under `hash`. Returns false (and leaves the
  // block unhashed) when another block already holds that hash, or when prefix
  // caching is off.
  bool cache_block(int32_t block, uint64_t hash, uint64_t parent_hash,
                   std::span<const int32_t> tokens);

  int32_t ref_count(int32_t block) const { return at(block).ref_count; }
  bool is_free(int32_t block) const { return at(block).in_free_queue(); }
  std::optional<uint64_t> block_hash(int32_t block) const;
  std::optional<int32_t> lookup_hash(uint64_t hash) const;  // the map entry, unverified
  int64_t num_hashed_blocks() const { return static_cast<int64_t>(map_.size()); }
  std::vector<int32_t> free_queue_ids() const { return queue_.ids(); }  // LRU front first

  // Walks every structure and throws kInternal on the first inconsistency
  // (tests, debugging).
  void check_consistency() const;

 private:
  const KvBlock& at(int32_t block) const;
  KvBlock& at(int32_t block);
  void drop_hash(KvBlock& b);

  int block_size_;
  bool enable_prefix_caching_;
  std::vector<KvBlock> blocks_;  // fixed size: the queue links point into it
  FreeBlockQueue queue_;
  std::unordered_map<uint64_t, int32_t> map_;
  int64_t num_cached_ = 0;
};

}  // namespace llmos
