// KvCacheManager: prefix hits and misses, LRU eviction under pressure, copy-on-write forks,
// admission, and a seeded random property test that checks the allocator's invariants and a
// simulated KV content after every operation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "core/error.h"
#include "kv/kv_cache_manager.h"

namespace llmos {
namespace {

std::vector<int32_t> tokens_from(int32_t start, int n) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = start + i;
  return t;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Admits a prompt the way a scheduler would: reuse the cached prefix, allocate the rest,
// "compute" it, and commit its full blocks. Returns the number of cached tokens.
int64_t run_prompt(KvCacheManager& m, SeqId seq, const std::vector<int32_t>& prompt) {
  const int64_t cached = m.find_cached_prefix(seq, prompt);
  EXPECT_TRUE(m.allocate_slots(seq, static_cast<int64_t>(prompt.size()) - cached));
  m.commit_full_blocks(seq, prompt);
  return cached;
}

TEST(KvCacheManager, SharedSystemPromptIsReused) {
  KvCacheManager m({.num_blocks = 33, .block_size = 4});
  const auto system = tokens_from(1000, 12);  // 3 full blocks
  const auto a = concat(system, tokens_from(1, 5));
  const auto b = concat(system, tokens_from(50, 7));

  EXPECT_EQ(run_prompt(m, 1, a), 0);  // cold cache: miss
  EXPECT_EQ(run_prompt(m, 2, b), 12);
  const auto& ta = m.block_table(1);
  const auto& tb = m.block_table(2);
  ASSERT_GE(tb.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ta[i], tb[i]);
    EXPECT_EQ(m.pool().ref_count(ta[i]), 2);
  }
  EXPECT_NE(ta[3], tb[3]);
  EXPECT_EQ(m.num_tokens(2), static_cast<int64_t>(b.size()));

  const KvCacheStats st = m.stats();
  EXPECT_EQ(st.prefix_queries, 2);
  EXPECT_EQ(st.prefix_query_tokens, static_cast<int64_t>(a.size() + b.size()));
  EXPECT_EQ(st.prefix_hit_tokens, 12);
  EXPECT_DOUBLE_EQ(st.prefix_hit_rate(), 12.0 / static_cast<double>(a.size() + b.size()));
}

TEST(KvCacheManager, MissWhenFirstBlockDiffersAndPartialChainOnDivergence) {
  KvCacheManager m({.num_blocks = 33, .block_size = 4});
  const auto p = tokens_from(0, 16);
  run_prompt(m, 1, p);
  m.free(1);  // its 4 full blocks are now cached
  EXPECT_EQ(m.stats().cached_blocks, 4);

  auto q = p;
  q[0] = 77;  // different first block: the whole chain misses
  EXPECT_EQ(m.find_cached_prefix(2, q), 0);
  auto r = p;
  r[9] = 77;  // diverges inside block 2: blocks 0 and 1 hit
  EXPECT_EQ(m.find_cached_prefix(3, r), 8);
  EXPECT_EQ(m.stats().cached_blocks, 2);  // two were touched out of the queue
  // Never the whole prompt, even when every block is cached: one token must be computed.
  EXPECT_EQ(m.find_cached_prefix(4, p), 12);
  EXPECT_EQ(m.find_cached_prefix(5, tokens_from(0, 4)), 0);
  EXPECT_EQ(m.find_cached_prefix(6, tokens_from(0, 5)), 4);
  EXPECT_THROW(m.find_cached_prefix(6, p), Error);  // already has blocks
}

TEST(KvCacheManager, EvictionUnderPressureIsLeastRecentlyUsed) {
  KvCacheManager m({.num_blocks = 7, .block_size = 2});  // 6 usable blocks
  const auto a = tokens_from(100, 4);  // 2 full blocks each
  const auto b = tokens_from(200, 4);
  const auto c = tokens_from(300, 4);
  run_prompt(m, 1, a);
  run_prompt(m, 2, b);
  run_prompt(m, 3, c);
  m.free(2);  // b's blocks are released first: least recently used
  m.free(1);
  m.free(3);
  EXPECT_EQ(m.stats().cached_blocks, 6);
  // Touch a's prefix again (hit) and release: a becomes most recent.
  EXPECT_EQ(m.find_cached_prefix(4, concat(a, {1})), 4);
  m.free(4);
  // Need 2 fresh blocks: b's (the LRU ones) go.
  ASSERT_TRUE(m.allocate_slots(5, 4));
  EXPECT_EQ(m.stats().cached_blocks, 4);
  EXPECT_EQ(m.find_cached_prefix(6, concat(b, {1})), 0);
  EXPECT_EQ(m.find_cached_prefix(7, concat(c, {1})), 4);
  EXPECT_EQ(m.find_cached_prefix(8, concat(a, {1})), 4);
}

TEST(KvCacheManager, AllocateSlotsIsAllOrNothing) {
  KvCacheManager m({.num_blocks = 5, .block_size = 4});  // 4 usable = 16 tokens
  ASSERT_TRUE(m.allocate_slots(1, 10));                  // 3 blocks
  const auto before = m.block_table(1);
  EXPECT_FALSE(m.allocate_slots(1, 7));                  // needs 2 more, 1 free
  EXPECT_EQ(m.block_table(1), before);
  EXPECT_EQ(m.num_tokens(1), 10);
  EXPECT_FALSE(m.allocate_slots(2, 5));                  // new sequence: not created on "no"
  EXPECT_FALSE(m.has_sequence(2));
  EXPECT_FALSE(m.allocate_slots(3, INT64_MAX));          // absurd request: a plain "no"
  ASSERT_TRUE(m.allocate_slots(1, 6));                   // fills exactly the 4 blocks
  EXPECT_EQ(m.num_free_blocks(), 0);
  EXPECT_THROW(m.allocate_slots(1, -1), Error);
  EXPECT_THROW(m.free(99), Error);
  m.free(1);
  EXPECT_EQ(m.stats().used_blocks, 0);
}

TEST(KvCacheManager, ForkSharesThenCopiesOnWriteOfPartialBlock) {
  KvCacheManager m({.num_blocks = 17, .block_size = 4});
  const auto prompt = tokens_from(10, 6);  // 1 full + 1 partial block
  run_prompt(m, 1, prompt);
  EXPECT_TRUE(m.take_block_copies().empty());
  m.fork(1, 2);
  EXPECT_EQ(m.block_table(1), m.block_table(2));
  for (int32_t b : m.block_table(1)) EXPECT_EQ(m.pool().ref_count(b), 2);
  const int32_t shared_partial = m.block_table(1)[1];
  const int64_t used_before = m.stats().used_blocks;

  // The child appends first: it gets a private copy of the partial block.
  ASSERT_TRUE(m.allocate_slots(2, 1));
  const auto copies = m.take_block_copies();
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].src, shared_partial);
  EXPECT_EQ(copies[0].dst, m.block_table(2)[1]);
  EXPECT_NE(m.block_table(2)[1], shared_partial);
  EXPECT_EQ(m.block_table(2)[0], m.block_table(1)[0]);  // full block still shared
  EXPECT_EQ(m.pool().ref_count(shared_partial), 1);
  EXPECT_EQ(m.stats().used_blocks, used_before + 1);
  EXPECT_TRUE(m.take_block_copies().empty());  // drained

  // The parent now owns the partial block alone: it appends in place, no copy.
  ASSERT_TRUE(m.allocate_slots(1, 1));
  EXPECT_TRUE(m.take_block_copies().empty());
  EXPECT_EQ(m.block_table(1)[1], shared_partial);

  // Divergent continuations fill their own blocks; commits hash them apart.
  const auto pa = concat(prompt, {1, 2});
  const auto pb = concat(prompt, {3, 4});
  ASSERT_TRUE(m.allocate_slots(1, 1));
  ASSERT_TRUE(m.allocate_slots(2, 1));
  m.commit_full_blocks(1, pa);
  m.commit_full_blocks(2, pb);
  EXPECT_TRUE(m.pool().block_hash(m.block_table(1)[1]).has_value());
  EXPECT_TRUE(m.pool().block_hash(m.block_table(2)[1]).has_value());
  EXPECT_NE(*m.pool().block_hash(m.block_table(1)[1]), *m.pool().block_hash(m.block_table(2)[1]));
  m.free(1);
  m.free(2);
  EXPECT_EQ(m.find_cached_prefix(3, concat(pb, {9})), 8);
  EXPECT_THROW(m.fork(3, 3), Error);
  EXPECT_THROW(m.fork(42, 43), Error);
}

TEST(KvCacheManager, ForkOfFullBlocksNeedsNoCopy) {
  KvCacheManager m({.num_blocks = 9, .block_size = 4});
  ASSERT_TRUE(m.allocate_slots(1, 8));
  m.fork(1, 2);
  ASSERT_TRUE(m.allocate_slots(2, 1));
  EXPECT_TRUE(m.take_block_copies().empty());
  EXPECT_EQ(m.block_table(2).size(), 3u);
}

TEST(KvCacheManager, CowFailsCleanlyWhenPoolIsFull) {
  KvCacheManager m({.num_blocks = 3, .block_size = 4});  // 2 usable
  ASSERT_TRUE(m.allocate_slots(1, 6));                   // both blocks
  m.fork(1, 2);
  EXPECT_FALSE(m.allocate_slots(2, 1));                  // the copy needs a block
  EXPECT_TRUE(m.take_block_copies().empty());
  EXPECT_EQ(m.block_table(1), m.block_table(2));
  m.free(1);                                             // preempt the parent
  ASSERT_TRUE(m.allocate_slots(2, 1));                   // sole owner now: in place
  EXPECT_TRUE(m.take_block_copies().empty());
}

TEST(KvCacheManager, WatermarkGatesAdmission) {
  KvCacheManager m({.num_blocks = 101, .block_size = 4, .watermark = 0.1});  // 10 kept free
  EXPECT_TRUE(m.can_admit(90 * 4));
  EXPECT_FALSE(m.can_admit(90 * 4 + 1));
  ASSERT_TRUE(m.allocate_slots(1, 80 * 4));
  EXPECT_TRUE(m.can_admit(10 * 4));
  EXPECT_FALSE(m.can_admit(10 * 4 + 1));
  EXPECT_FALSE(m.can_admit(INT64_MAX));
  EXPECT_THROW(m.can_admit(-1), Error);
  EXPECT_THROW(KvCacheManager({.num_blocks = 10, .block_size = 4, .watermark = 1.5}), Error);
}

TEST(KvCacheManager, PrefixCachingDisabled) {
  KvCacheManager m({.num_blocks = 17, .block_size = 4, .enable_prefix_caching = false});
  const auto p = tokens_from(0, 9);
  EXPECT_EQ(run_prompt(m, 1, p), 0);
  m.free(1);
  EXPECT_EQ(run_prompt(m, 2, p), 0);
  EXPECT_EQ(m.stats().cached_blocks, 0);
  EXPECT_EQ(m.stats().prefix_queries, 0);
}

// ---- property test ---------------------------------------------------------------------

struct SimSeq {
  std::vector<int32_t> tokens;  // tokens whose K/V are "computed" (== slots reserved)
};

class Simulator {
 public:
  Simulator(int64_t num_blocks, int block_size, uint32_t seed)
      : m_({.num_blocks = num_blocks, .block_size = block_size}),
        bs_(block_size),
        content_(static_cast<size_t>(num_blocks * block_size), -1),
        rng_(seed) {}

  void step() {
    const int op = pick(0, 99);
    if (seqs_.empty() || op < 30) {
      admit();
    } else if (op < 70) {
      append();
    } else if (op < 82) {
      fork();
    } else {
      free_one();
    }
    check();
  }

  void free_all() {
    while (!seqs_.empty()) {
      m_.free(seqs_.begin()->first);
      seqs_.erase(seqs_.begin());
      check();
    }
    EXPECT_EQ(m_.stats().used_blocks, 0);
    EXPECT_EQ(m_.num_sequences(), 0);
  }

  int64_t hits() const { return m_.stats().prefix_hit_tokens; }
  int64_t preemptions() const { return preemptions_; }
  int64_t copies() const { return copies_; }
  int64_t evictions_seen() const { return evictions_; }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  SeqId random_seq() {
    auto it = seqs_.begin();
    std::advance(it, pick(0, static_cast<int>(seqs_.size()) - 1));
    return it->first;
  }

  // The runner's side: apply CoW copies, then write the new tokens into their slots.
  void compute(SeqId id, size_t from) {
    for (const BlockCopy& c : m_.take_block_copies()) {
      ++copies_;
      std::copy_n(content_.begin() + c.src * bs_, bs_, content_.begin() + c.dst * bs_);
    }
    const auto& table = m_.block_table(id);
    const auto& toks = seqs_[id].tokens;
    for (size_t p = from; p < toks.size(); ++p) {
      const int32_t block = table[p / static_cast<size_t>(bs_)];
      content_[static_cast<size_t>(block) * static_cast<size_t>(bs_) + p % static_cast<size_t>(bs_)] = toks[p];
    }
    m_.commit_full_blocks(id, toks);
  }

  void admit() {
    // Prompts share a few "system prompts" so prefix hits happen; vocabulary is tiny so
    // different sequences also produce equal blocks by chance.
    std::vector<int32_t> prompt;
    const int sys = pick(0, 3);
    for (int i = 0; i < sys * 3; ++i) prompt.push_back(1000 * sys + i);
    const int extra = pick(1, 10);
    for (int i = 0; i < extra; ++i) prompt.push_back(pick(0, 3));
    const SeqId id = next_id_++;
    const int64_t cached = m_.find_cached_prefix(id, prompt);
    ASSERT_EQ(cached % bs_, 0);
    ASSERT_LT(cached, static_cast<int64_t>(prompt.size()));
    const int64_t before_free = m_.num_free_blocks();
    if (!m_.allocate_slots(id, static_cast<int64_t>(prompt.size()) - cached)) {
      ASSERT_EQ(m_.num_free_blocks(), before_free);  // nothing changed on "no"
      m_.free(id);
      ++preemptions_;
      return;
    }
    seqs_[id].tokens = prompt;
    // The cached part must already hold exactly the prompt's tokens.
    verify_content(id, static_cast<size_t>(cached));
    compute(id, static_cast<size_t>(cached));
  }

  void append() {
    const SeqId id = random_seq();
    const int k = pick(1, 6);
    const auto table_before = m_.block_table(id);
    const int64_t cached_before = m_.stats().cached_blocks;
    if (!m_.allocate_slots(id, k)) {
      EXPECT_EQ(m_.block_table(id), table_before);
      EXPECT_TRUE(m_.take_block_copies().empty());
      m_.free(id);  // preempt by recompute
      seqs_.erase(id);
      ++preemptions_;
      return;
    }
    if (m_.stats().cached_blocks < cached_before) ++evictions_;
    auto& toks = seqs_[id].tokens;
    const size_t from = toks.size();
    for (int i = 0; i < k; ++i) toks.push_back(pick(0, 3));
    compute(id, from);
  }

  void fork() {
    const SeqId parent = random_seq();
    const SeqId child = next_id_++;
    m_.fork(parent, child);
    seqs_[child] = seqs_[parent];
  }

  void free_one() {
    const SeqId id = random_seq();
    m_.free(id);
    seqs_.erase(id);
  }

  // Every token of the sequence before `upto` must read back from its slot.
  void verify_content(SeqId id, size_t upto) {
    const auto& table = m_.block_table(id);
    const auto& toks = seqs_[id].tokens;
    for (size_t p = 0; p < upto; ++p) {
      const int32_t block = table[p / static_cast<size_t>(bs_)];
      ASSERT_EQ(content_[static_cast<size_t>(block) * static_cast<size_t>(bs_) + p % static_cast<size_t>(bs_)],
                toks[p])
          << "seq " << id << " position " << p << " block " << block;
    }
  }

  void check() {
    const BlockPool& pool = m_.pool();
    ASSERT_NO_THROW(pool.check_consistency());
    std::vector<int32_t> refs(static_cast<size_t>(pool.num_blocks()), 0);
    ASSERT_EQ(m_.num_sequences(), static_cast<int64_t>(seqs_.size()));
    for (const auto& [id, s] : seqs_) {
      const auto& table = m_.block_table(id);
      ASSERT_EQ(m_.num_tokens(id), static_cast<int64_t>(s.tokens.size()));
      ASSERT_EQ(static_cast<int64_t>(table.size()),
                (static_cast<int64_t>(s.tokens.size()) + bs_ - 1) / bs_);
      for (int32_t b : table) {
        ASSERT_GT(b, BlockPool::kNullBlock);
        ASSERT_LT(b, pool.num_blocks());
        ++refs[static_cast<size_t>(b)];
      }
      verify_content(id, s.tokens.size());
    }
    int64_t used = 0, cached = 0, free_plain = 0, hashed = 0;
    for (int32_t b = 1; b < pool.num_blocks(); ++b) {
      ASSERT_EQ(pool.ref_count(b), refs[static_cast<size_t>(b)]) << "block " << b;
      ASSERT_NE(pool.is_free(b), refs[static_cast<size_t>(b)] > 0) << "block " << b;
      const auto h = pool.block_hash(b);
      if (h) {
        ++hashed;
        ASSERT_EQ(pool.lookup_hash(*h), b);  // in the map, pointing back at this block
      }
      if (refs[static_cast<size_t>(b)] > 0) ++used;
      else if (h) ++cached;
      else ++free_plain;
    }
    ASSERT_EQ(hashed, pool.num_hashed_blocks());  // so each hash maps exactly one block
    const KvCacheStats st = m_.stats();
    ASSERT_EQ(st.used_blocks, used);
    ASSERT_EQ(st.cached_blocks, cached);
    ASSERT_EQ(st.free_blocks, free_plain);
    ASSERT_EQ(st.used_blocks + st.cached_blocks + st.free_blocks, st.total_blocks);
  }

  KvCacheManager m_;
  int bs_;
  std::vector<int32_t> content_;  // simulated KV: the token id held by each slot
  std::mt19937 rng_;
  std::map<SeqId, SimSeq> seqs_;
  SeqId next_id_ = 1;
  int64_t preemptions_ = 0;
  int64_t copies_ = 0;
  int64_t evictions_ = 0;
};

TEST(KvCacheManagerProperty, RandomOperationsKeepInvariants) {
  int64_t hits = 0, preemptions = 0, copies = 0, evictions = 0;
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Simulator sim(/*num_blocks=*/20, /*block_size=*/3, seed);
    for (int i = 0; i < 1500 && !::testing::Test::HasFatalFailure(); ++i) sim.step();
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    sim.free_all();
    hits += sim.hits();
    preemptions += sim.preemptions();
    copies += sim.copies();
    evictions += sim.evictions_seen();
  }
  // The workload must actually exercise every path it claims to test.
  EXPECT_GT(hits, 0);
  EXPECT_GT(preemptions, 0);
  EXPECT_GT(copies, 0);
  EXPECT_GT(evictions, 0);
}

}  // namespace
}  // namespace llmos
