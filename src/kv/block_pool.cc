#include "kv/block_pool.h"

#include <algorithm>

#include "core/error.h"

namespace llmos {

BlockPool::BlockPool(int64_t num_blocks, int block_size, bool enable_prefix_caching)
    : block_size_(block_size), enable_prefix_caching_(enable_prefix_caching) {
  LLMOS_CHECK_ARG(num_blocks >= 2 && num_blocks <= kMaxBlocks,
                  "BlockPool: num_blocks must be in [2, ", kMaxBlocks,
                  "] (block 0 is the reserved null block), got ", num_blocks);
  LLMOS_CHECK_ARG(block_size > 0 && block_size <= kMaxBlockSize,
                  "BlockPool: block_size must be in [1, ", kMaxBlockSize, "], got ", block_size);
  blocks_.resize(static_cast<size_t>(num_blocks));
  for (size_t i = 0; i < blocks_.size(); ++i) blocks_[i].id = static_cast<int32_t>(i);
  for (size_t i = 1; i < blocks_.size(); ++i) queue_.push_back(&blocks_[i]);
}

const KvBlock& BlockPool::at(int32_t block) const {
  LLMOS_CHECK_ARG(block > kNullBlock && block < num_blocks(), "BlockPool: block id ", block,
                  " out of range [1, ", num_blocks(), ")");
  return blocks_[static_cast<size_t>(block)];
}

KvBlock& BlockPool::at(int32_t block) {
  return const_cast<KvBlock&>(static_cast<const BlockPool*>(this)->at(block));
}

void BlockPool::drop_hash(KvBlock& b) {
  if (!b.has_hash) return;
  auto it = map_.find(b.hash);
  LLMOS_ASSERT(it != map_.end() && it->second == b.id);
  map_.erase(it);
  b.has_hash = false;
  b.hash = 0;
  b.parent_hash = 0;
  b.tokens.clear();  // keeps capacity: the next cache_block of this block does
                     // not allocate
}

bool BlockPool::allocate(int64_t n, std::vector<int32_t>& out) {
  LLMOS_CHECK_ARG(n >= 0, "BlockPool::allocate: n must be >= 0, got ", n);
  if (n > queue_.size()) return false;
  out.reserve(out.size() + static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    KvBlock* b = queue_.pop_front();
    if (b->has_hash) {  // eviction of the least recently used cached block
      --num_cached_;
      drop_hash(*b);
    }
    LLMOS_ASSERT(b->ref_count == 0);
    b->ref_count = 1;
    out.push_back(b->id);
  }
  return true;
}

std::optional<int32_t> BlockPool::find_cached(uint64_t hash, uint64_t parent_hash,
                                              std::span<const int32_t> tokens) const {
  if (!enable_prefix_caching_) return std::nullopt;
  auto it = map_.find(hash);
  if (it == map_.end()) return std::nullopt;
  const KvBlock& b = blocks_[static_cast<size_t>(it->second)];
  // A hash collision must never alias different K/V rows: compare the real key
  // too.
  if (b.parent_hash != parent_hash ||
      !std::equal(b.tokens.begin(), b.tokens.end(), tokens.begin(), tokens.end())) {
    return std::nullopt;
  }
  return b.id;
}

void BlockPool::touch(int32_t block) {
  KvBlock& b = at(block);
  if (b.in_free_queue()) {
    LLMOS_ASSERT(b.ref_count == 0);
    queue_.remove(&b);
    if (b.has_hash) --num_cached_;
  }
  ++b.ref_count;
}

void BlockPool::release(int32_t block) {
  KvBlock& b = at(block);
  LLMOS_CHECK_ARG(b.ref_count > 0, "BlockPool::release: block ", block, " is not in use");
  if (--b.ref_count == 0) {
    // A block with no prefix hash holds nothing reusable: hand it out before any cached one.
    if (b.has_hash) {
      queue_.push_back(&b);
      ++num_cached_;
    } else {
      queue_.push_front(&b);
    }
  }
}

bool BlockPool::cache_block(int32_t block, uint64_t hash, uint64_t parent_hash,
                            std::span<const int32_t> tokens) {
  KvBlock& b = at(block);
  LLMOS_CHECK_ARG(b.ref_count > 0, "BlockPool::cache_block: block ", block, " is not in use");
  LLMOS_CHECK_ARG(static_cast<int64_t>(tokens.size()) == block_size_,
                  "BlockPool::cache_block: only full blocks are cached; got ", tokens.size(),
                  " tokens for block_size ", block_size_);
  LLMOS_CHECK_ARG(!b.has_hash, "BlockPool::cache_block: block ", block, " already has a hash");
  if (!enable_prefix_caching_) return false;
  // A second block with the same content (two sequences computed it
  // concurrently) stays unhashed: the map keeps one block per hash, and the
  // duplicate is freed plainly.
  if (!map_.emplace(hash, block).second) return false;
  b.has_hash = true;
  b.hash = hash;
  b.parent_hash = parent_hash;
  b.tokens.assign(tokens.begin(), tokens.end());
  return true;
}

std::optional<uint64_t> BlockPool::block_hash(int32_t block) const {
  const KvBlock& b = at(block);
  if (!b.has_hash) return std::nullopt;
  return b.hash;
}

std::optional<int32_t> BlockPool::lookup_hash(uint64_t hash) const {
  auto it = map_.find(hash);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

void BlockPool::check_consistency() const {
  const KvBlock& null_block = blocks_[0];
  LLMOS_ASSERT(null_block.ref_count == 0 && !null_block.in_free_queue() && !null_block.has_hash);
  std::vector<int32_t> queued = queue_.ids();
  LLMOS_ASSERT(static_cast<int64_t>(queued.size()) == queue_.size());
  std::vector<char> seen(blocks_.size(), 0);
  for (int32_t id : queued) {
    LLMOS_ASSERT(id > 0 && id < num_blocks() && !seen[static_cast<size_t>(id)]);
    seen[static_cast<size_t>(id)] = 1;
  }
  int64_t cached = 0;
  int64_t hashed = 0;
  for (size_t i = 1; i < blocks_.size(); ++i) {
    const KvBlock& b = blocks_[i];
    LLMOS_ASSERT(b.ref_count >= 0);
    LLMOS_ASSERT((b.ref_count == 0) == (seen[i] != 0));  // free <=> unreferenced
    LLMOS_ASSERT(b.in_free_queue() == (seen[i] != 0));
    if (b.has_hash) {
      ++hashed;
      auto it = map_.find(b.hash);
      LLMOS_ASSERT(it != map_.end() && it->second == b.id);
      LLMOS_ASSERT(static_cast<int64_t>(b.tokens.size()) == block_size_);
      if (b.ref_count == 0) ++cached;
    }
  }
  LLMOS_ASSERT(hashed == static_cast<int64_t>(map_.size()));
  LLMOS_ASSERT(cached == num_cached_);
}

}  // namespace llmos
