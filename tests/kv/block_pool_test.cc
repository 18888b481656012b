// Unit tests of the allocator's lower layers: the intrusive LRU free queue, the block pool
// (refcounts, eviction order, prefix map) and the chained prefix hash.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "kv/block_pool.h"
#include "kv/free_block_queue.h"
#include "kv/prefix_hash.h"

namespace llmos {
namespace {

std::vector<int32_t> iota_tokens(int n, int32_t start) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = start + i;
  return t;
}

TEST(FreeBlockQueue, PushPopRemoveKeepOrder) {
  std::vector<KvBlock> blocks(6);
  for (int i = 0; i < 6; ++i) blocks[static_cast<size_t>(i)].id = i;
  FreeBlockQueue q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.front(), nullptr);
  for (auto& b : blocks) q.push_back(&b);
  EXPECT_EQ(q.size(), 6);
  EXPECT_EQ(q.ids(), (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));

  q.remove(&blocks[3]);  // middle
  q.remove(&blocks[5]);  // back
  q.remove(&blocks[0]);  // front
  EXPECT_FALSE(blocks[3].in_free_queue());
  EXPECT_EQ(q.ids(), (std::vector<int32_t>{1, 2, 4}));
  EXPECT_EQ(q.size(), 3);

  q.push_back(&blocks[3]);
  EXPECT_EQ(q.pop_front()->id, 1);
  EXPECT_EQ(q.front()->id, 2);
  EXPECT_EQ(q.ids(), (std::vector<int32_t>{2, 4, 3}));
  EXPECT_EQ(q.pop_front()->id, 2);
  EXPECT_EQ(q.pop_front()->id, 4);
  EXPECT_EQ(q.pop_front()->id, 3);
  EXPECT_TRUE(q.empty());
}

TEST(FreeBlockQueue, MisuseIsAnInternalErrorNotCorruption) {
  std::vector<KvBlock> blocks(2);
  FreeBlockQueue q;
  EXPECT_THROW(q.pop_front(), Error);
  EXPECT_THROW(q.remove(&blocks[0]), Error);
  q.push_back(&blocks[0]);
  EXPECT_THROW(q.push_back(&blocks[0]), Error);
  EXPECT_EQ(q.size(), 1);
}

TEST(BlockPool, RejectsBadConfiguration) {
  EXPECT_THROW(BlockPool(1, 16), Error);    // only the null block
  EXPECT_THROW(BlockPool(8, 0), Error);
  EXPECT_THROW(BlockPool(BlockPool::kMaxBlocks + 1, 16), Error);
  try {
    BlockPool(8, -3);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.message().find("block_size"), std::string::npos) << e.message();
  }
}

TEST(BlockPool, NullBlockIsNeverHandedOut) {
  BlockPool pool(5, 4);
  EXPECT_EQ(pool.num_usable_blocks(), 4);
  EXPECT_EQ(pool.num_free_blocks(), 4);
  std::vector<int32_t> got;
  ASSERT_TRUE(pool.allocate(4, got));
  EXPECT_EQ(got, (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_FALSE(pool.allocate(1, got));  // exhausted: "no", nothing changed
  EXPECT_EQ(got.size(), 4u);
  EXPECT_THROW(pool.release(BlockPool::kNullBlock), Error);
  EXPECT_THROW(pool.touch(5), Error);
  pool.check_consistency();
}

TEST(BlockPool, AllOrNothingAllocation) {
  BlockPool pool(6, 4);
  std::vector<int32_t> got;
  ASSERT_TRUE(pool.allocate(3, got));
  std::vector<int32_t> more;
  EXPECT_FALSE(pool.allocate(3, more));
  EXPECT_TRUE(more.empty());
  EXPECT_EQ(pool.num_free_blocks(), 2);
  EXPECT_THROW(pool.allocate(-1, more), Error);
}

TEST(BlockPool, RefcountsAndRelease) {
  BlockPool pool(4, 4);
  std::vector<int32_t> got;
  ASSERT_TRUE(pool.allocate(1, got));
  const int32_t b = got[0];
  pool.touch(b);
  EXPECT_EQ(pool.ref_count(b), 2);
  pool.release(b);
  EXPECT_FALSE(pool.is_free(b));
  pool.release(b);
  EXPECT_TRUE(pool.is_free(b));
  EXPECT_EQ(pool.ref_count(b), 0);
  EXPECT_THROW(pool.release(b), Error);  // double free is reported
  pool.check_consistency();
}

TEST(BlockPool, CachedBlocksAreEvictedLeastRecentlyUsedFirst) {
  BlockPool pool(5, 2);  // 4 usable blocks
  std::vector<int32_t> got;
  ASSERT_TRUE(pool.allocate(4, got));
  std::vector<uint64_t> hashes;
  for (int i = 0; i < 4; ++i) {
    auto toks = iota_tokens(2, 10 * i);
    hashes.push_back(hash_block_tokens(kRootBlockHash, toks));
    ASSERT_TRUE(pool.cache_block(got[static_cast<size_t>(i)], hashes.back(), kRootBlockHash, toks));
  }
  // Release in the order 3, 1, 4, 2: that is the LRU order of the free queue.
  for (int32_t id : {3, 1, 4, 2}) pool.release(id);
  EXPECT_EQ(pool.num_cached_blocks(), 4);
  EXPECT_EQ(pool.free_queue_ids(), (std::vector<int32_t>{3, 1, 4, 2}));
  // Touching block 1 (a prefix hit) takes it out of the queue; its hash survives.
  pool.touch(1);
  EXPECT_EQ(pool.num_cached_blocks(), 3);
  pool.release(1);  // back to the most recently used end
  EXPECT_EQ(pool.free_queue_ids(), (std::vector<int32_t>{3, 4, 2, 1}));

  std::vector<int32_t> fresh;
  ASSERT_TRUE(pool.allocate(2, fresh));
  EXPECT_EQ(fresh, (std::vector<int32_t>{3, 4}));
  EXPECT_FALSE(pool.block_hash(3).has_value());  // evicted: hash dropped from the map
  EXPECT_FALSE(pool.lookup_hash(hashes[2]).has_value());
  EXPECT_EQ(pool.lookup_hash(hashes[0]), 1);     // still cached
  EXPECT_EQ(pool.num_cached_blocks(), 2);
  EXPECT_EQ(pool.num_hashed_blocks(), 2);
  pool.check_consistency();
}

TEST(BlockPool, LookupVerifiesTokensAndParentSoCollisionsDoNotAlias) {
  BlockPool pool(4, 3);
  std::vector<int32_t> got;
  ASSERT_TRUE(pool.allocate(2, got));
  const std::vector<int32_t> toks{7, 8, 9};
  const uint64_t forced = 42;  // a made-up hash shared by two different keys
  ASSERT_TRUE(pool.cache_block(got[0], forced, kRootBlockHash, toks));
  EXPECT_EQ(pool.find_cached(forced, kRootBlockHash, toks), got[0]);
  const std::vector<int32_t> other{7, 8, 10};
  EXPECT_FALSE(pool.find_cached(forced, kRootBlockHash, other).has_value());
  EXPECT_FALSE(pool.find_cached(forced, kRootBlockHash + 1, toks).has_value());
  // A second block under the same hash is not registered (one block per hash).
  EXPECT_FALSE(pool.cache_block(got[1], forced, kRootBlockHash, other));
  EXPECT_FALSE(pool.block_hash(got[1]).has_value());
  // Only full blocks are cached.
  EXPECT_THROW(pool.cache_block(got[1], 43, kRootBlockHash, std::vector<int32_t>{1, 2}), Error);
  pool.check_consistency();
}

TEST(BlockPool, PrefixCachingDisabledNeverHashes) {
  BlockPool pool(4, 2, /*enable_prefix_caching=*/false);
  std::vector<int32_t> got;
  ASSERT_TRUE(pool.allocate(1, got));
  const std::vector<int32_t> toks{1, 2};
  EXPECT_FALSE(pool.cache_block(got[0], 5, kRootBlockHash, toks));
  EXPECT_FALSE(pool.find_cached(5, kRootBlockHash, toks).has_value());
  pool.release(got[0]);
  EXPECT_EQ(pool.num_cached_blocks(), 0);
}

TEST(PrefixHash, ChainsOverParentTokensAndExtraKeys) {
  const auto a = iota_tokens(8, 100);
  auto b = a;
  b[7] = 999;  // differs only in the second block
  const auto ha = hash_full_blocks(a, 4);
  const auto hb = hash_full_blocks(b, 4);
  ASSERT_EQ(ha.size(), 2u);
  EXPECT_EQ(ha[0], hb[0]);
  EXPECT_NE(ha[1], hb[1]);
  // Chained: the same block after a different prefix hashes differently.
  const std::vector<int32_t> blk(a.begin() + 4, a.end());
  EXPECT_EQ(hash_block_tokens(ha[0], blk), ha[1]);
  EXPECT_NE(hash_block_tokens(kRootBlockHash, blk), ha[1]);
  // Extra keys (e.g. a LoRA id) separate otherwise equal prefixes.
  const uint64_t lora[] = {7};
  EXPECT_NE(hash_full_blocks(a, 4, lora)[0], ha[0]);
  // A trailing partial block is not hashed.
  EXPECT_EQ(hash_full_blocks(std::vector<int32_t>(a.begin(), a.begin() + 7), 4).size(), 1u);
  EXPECT_THROW(hash_full_blocks(a, 0), Error);
}

TEST(PrefixHash, NoCollisionsAmongManyNearbyBlocks) {
  // Single-token changes and small ids must all hash apart (a weak mix would collide here).
  std::vector<uint64_t> seen;
  for (int32_t x = 0; x < 200; ++x)
    for (int32_t y = 0; y < 50; ++y) {
      const std::vector<int32_t> t{x, y, 0, 1};
      seen.push_back(hash_block_tokens(kRootBlockHash, t));
    }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());
}

}  // namespace
}  // namespace llmos
