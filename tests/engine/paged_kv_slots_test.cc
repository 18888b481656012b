// PagedKvSlots over a real KvCacheManager and a real (small, f32) KvCache: a seeded random
// sequence of the operations the scheduler and engine perform — admission with prefix reuse,
// growth, fork + copy-on-write, preemption by free or swap, swap-in, finishing with a kept
// context, restoring a kept context — checked against a shadow model of every live
// sequence's K/V bytes. (kv_cache_manager_test.cc simulates the allocator alone, with token
// ids as "content"; here the bytes really move through KvCache, host swap space and the kept
// snapshots, and the swap budget accounting is checked.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "engine/paged_kv_slots.h"
#include "kv/host_kv.h"
#include "kv/kv_cache.h"
#include "kv/kv_cache_manager.h"

namespace llmos {
namespace {

constexpr int kLayers = 2;
constexpr int kHeads = 2;
constexpr int kHeadDim = 2;
constexpr int kBlockSize = 4;
constexpr int64_t kNumBlocks = 33;  // 32 usable
constexpr int kElemsPerToken = kLayers * 2 * kHeads * kHeadDim;

KvCacheSpec test_spec() {
  KvCacheSpec s;
  s.num_layers = kLayers;
  s.num_kv_heads = kHeads;
  s.head_dim = kHeadDim;
  s.block_size = kBlockSize;
  s.num_blocks = kNumBlocks;
  s.dtype = DType::kF32;
  return s;
}

uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
  h *= 0xBF58476D1CE4E5B9ULL;
  return h ^ (h >> 31);
}

// The value element `e` of a token's K/V must hold. Like a real model's K/V, it depends on the
// whole token prefix (through `prefix_hash`), so a wrong prefix hit, a missed copy-on-write or
// a block restored to the wrong place all show up. Integers below 2^24 are exact in f32.
float tag(uint64_t prefix_hash, int e) {
  const uint64_t h = prefix_hash ^ (static_cast<uint64_t>(e + 1) * 0x9E3779B97F4A7C15ULL);
  return static_cast<float>((h >> 40) & 0xFFFFFF);
}

// Element e = ((layer * 2 + kv) * heads + head) * head_dim + d of token slot `off` in `block`.
float* cache_elem(KvCache& cache, int32_t block, int off, int e) {
  const int d = e % kHeadDim;
  const int head = (e / kHeadDim) % kHeads;
  const int kv = (e / (kHeadDim * kHeads)) % 2;
  const int layer = e / (kHeadDim * kHeads * 2);
  Tensor& t = kv == 0 ? cache.k(layer) : cache.v(layer);
  auto* base = static_cast<float*>(t.data());
  return base + ((static_cast<int64_t>(block) * kHeads + head) * kBlockSize + off) * kHeadDim + d;
}

// The same element in host blocks (HostKv: per block, every layer's K then V).
float host_elem(const HostKv& kv, int64_t pos, int e) {
  const int d = e % kHeadDim;
  const int head = (e / kHeadDim) % kHeads;
  const int which = e / (kHeadDim * kHeads);  // layer * 2 + kv
  const int64_t block = pos / kBlockSize;
  const int64_t off = pos % kBlockSize;
  const int64_t floats_per_block = kv.block_bytes / static_cast<int64_t>(sizeof(float));
  const int64_t idx =
      block * floats_per_block +
      ((static_cast<int64_t>(which) * kHeads + head) * kBlockSize + off) * kHeadDim + d;
  float v;
  std::memcpy(&v, kv.data.data() + idx * static_cast<int64_t>(sizeof(float)), sizeof v);
  return v;
}

struct ShadowSeq {
  std::vector<int32_t> tokens;
  std::vector<uint64_t> prefix_hash;  // [p]: hash of tokens[0..p]
  bool swapped = false;
  bool counted = false;    // host copy counted against the swap budget
  bool restored = false;   // installed from a kept context (a snapshot from outside)
  bool untrusted = false;  // restored, or forked from such: its blocks must stay out of the
                           // shared prefix cache
  int64_t host_bytes = 0;

  void push(int32_t t) {
    const uint64_t prev = prefix_hash.empty() ? 0x51ED270B27F1C3A9ULL : prefix_hash.back();
    tokens.push_back(t);
    prefix_hash.push_back(mix(prev, static_cast<uint64_t>(static_cast<uint32_t>(t))));
  }
};

struct Counters {
  int64_t admitted = 0, prefix_hit_tokens = 0, admit_refused = 0, appends = 0, cow = 0, forks = 0,
          swap_outs = 0, swap_out_refused = 0, swap_ins = 0, swap_in_refused = 0, kept = 0,
          restored = 0, preempted = 0, evictions = 0;
};

class SlotsSimulator {
 public:
  SlotsSimulator(uint32_t seed, int64_t swap_budget_blocks)
      : backend_(create_backend({Device::cpu(), 1})),
        cache_(test_spec(), *backend_),
        manager_({.num_blocks = kNumBlocks,
                  .block_size = kBlockSize,
                  .enable_prefix_caching = true,
                  .watermark = 0.0}),
        slots_(manager_, cache_, swap_budget_blocks * cache_.block_bytes()),
        rng_(seed) {
    // Three "system prompts" of different lengths (1, 2 and 3 full blocks + a bit).
    for (int p = 0; p < 3; ++p) {
      std::vector<int32_t> sys;
      for (int i = 0; i < 5 + 4 * p; ++i) sys.push_back(100 * (p + 1) + i);
      system_prompts_.push_back(sys);
    }
    // Garbage everywhere first, so nothing passes by reading zeroed memory.
    for (int32_t b = 0; b < kNumBlocks; ++b)
      for (int off = 0; off < kBlockSize; ++off)
        for (int e = 0; e < kElemsPerToken; ++e) *cache_elem(cache_, b, off, e) = -1.0f;
  }

  void step() {
    const int op = pick(0, 99);
    if (seqs_.empty() || op < 22) {
      admit();
    } else if (op < 47) {
      append();
    } else if (op < 54) {
      fork();
    } else if (op < 60) {
      free_one();
    } else if (op < 72) {
      finish_one();
    } else if (op < 84) {
      swap_out_one();
    } else if (op < 97) {
      swap_in_one();
    } else {
      misuse();
    }
    check();
  }

  // Frees every sequence: the cache and the swap space must end empty.
  void free_all() {
    while (!seqs_.empty()) {
      const uint64_t id = seqs_.begin()->first;
      if (pick(0, 1) == 0) {
        slots_.free(id);
      } else {
        slots_.free_finished(id);  // nothing kept: keep_on_finish was not asked
        EXPECT_FALSE(slots_.take_kept(id).has_value());
      }
      seqs_.erase(id);
      check();
      if (::testing::Test::HasFatalFailure()) return;
    }
    const KvCacheStats st = manager_.stats();
    EXPECT_EQ(st.used_blocks, 0);
    EXPECT_EQ(st.used_blocks + st.cached_blocks + st.free_blocks, st.total_blocks);
    EXPECT_EQ(slots_.swap_used_bytes(), 0);
    EXPECT_EQ(slots_.num_swapped(), 0);
    EXPECT_EQ(manager_.num_sequences(), 0);
  }

  const Counters& counters() const { return n_; }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  int64_t blocks_for(int64_t tokens) const { return (tokens + kBlockSize - 1) / kBlockSize; }

  uint64_t random_seq(bool want_swapped, bool any = false) {
    std::vector<uint64_t> ids;
    for (const auto& [id, s] : seqs_)
      if (any || s.swapped == want_swapped) ids.push_back(id);
    if (ids.empty()) return 0;
    return ids[static_cast<size_t>(pick(0, static_cast<int>(ids.size()) - 1))];
  }

  // The runner's part of a step: block copies first, then the new tokens' K/V, then commit.
  void compute(uint64_t id, size_t from) {
    slots_.apply_block_copies();
    const ShadowSeq& s = seqs_.at(id);
    const std::vector<int32_t>& table = manager_.block_table(static_cast<SeqId>(id));
    for (size_t p = from; p < s.tokens.size(); ++p) {
      const int32_t block = table[p / kBlockSize];
      for (int e = 0; e < kElemsPerToken; ++e)
        *cache_elem(cache_, block, static_cast<int>(p % kBlockSize), e) = tag(s.prefix_hash[p], e);
    }
    // The runner registers full blocks with the prefix cache only for sequences whose K/V
    // it computed itself.
    EXPECT_EQ(slots_.may_cache(id), !s.restored) << "seq " << id;
    if (!s.untrusted) manager_.commit_full_blocks(static_cast<SeqId>(id), s.tokens);
  }

  // Every token before `upto` of a live sequence reads back what was written for it.
  void verify_cache(uint64_t id, size_t upto) {
    const ShadowSeq& s = seqs_.at(id);
    const std::vector<int32_t>& table = manager_.block_table(static_cast<SeqId>(id));
    for (size_t p = 0; p < upto; ++p) {
      const int32_t block = table[p / kBlockSize];
      for (int e = 0; e < kElemsPerToken; ++e) {
        const float got = *cache_elem(cache_, block, static_cast<int>(p % kBlockSize), e);
        ASSERT_EQ(got, tag(s.prefix_hash[p], e))
            << "seq " << id << " token " << p << " element " << e << " block " << block;
      }
    }
  }

  void verify_host(const HostKv& kv, const ShadowSeq& s) {
    ASSERT_EQ(kv.num_tokens, static_cast<int64_t>(s.tokens.size()));
    ASSERT_EQ(kv.block_bytes, cache_.block_bytes());
    ASSERT_EQ(static_cast<int64_t>(kv.data.size()), blocks_for(kv.num_tokens) * kv.block_bytes);
    for (int64_t p = 0; p < kv.num_tokens; ++p)
      for (int e = 0; e < kElemsPerToken; ++e)
        ASSERT_EQ(host_elem(kv, p, e), tag(s.prefix_hash[static_cast<size_t>(p)], e))
            << "host token " << p << " element " << e;
  }

  void admit() {
    ShadowSeq s;
    const int sys = pick(0, 3);
    if (sys < 3)
      for (int32_t t : system_prompts_[static_cast<size_t>(sys)]) s.push(t);
    const int extra = pick(1, 8);
    for (int i = 0; i < extra; ++i) s.push(pick(0, 3));
    const uint64_t id = next_id_++;
    const auto n = static_cast<int32_t>(s.tokens.size());

    const int64_t free_blocks = manager_.num_free_blocks();
    EXPECT_EQ(slots_.can_admit(n), free_blocks >= blocks_for(n));
    // As the scheduler does: all but the last prompt token may come from the cache.
    const int32_t cached = slots_.cached_prefix_tokens(
        id, std::span<const int32_t>(s.tokens).first(static_cast<size_t>(n - 1)));
    ASSERT_GE(cached, 0);
    ASSERT_LT(cached, n);
    ASSERT_EQ(cached % kBlockSize, 0);
    if (n == 1) {
      ASSERT_EQ(cached, 0);
    }
    seqs_[id] = s;
    if (cached > 0) {
      // The attached blocks must already hold exactly this prompt's K/V.
      verify_cache(id, static_cast<size_t>(cached));
      if (::testing::Test::HasFatalFailure()) return;
    }
    const int64_t cached_before = manager_.stats().cached_blocks;
    const int64_t need = blocks_for(n) - cached / kBlockSize;
    const int64_t free_before = manager_.num_free_blocks();
    const bool ok = slots_.allocate_slots(id, n - cached);
    ASSERT_EQ(ok, need <= free_before) << need << " blocks needed, " << free_before << " free";
    if (!ok) {
      slots_.free(id);  // the scheduler gives up the hit blocks too
      seqs_.erase(id);
      ++n_.admit_refused;
      return;
    }
    if (manager_.stats().cached_blocks < cached_before) ++n_.evictions;
    ++n_.admitted;
    n_.prefix_hit_tokens += cached;
    compute(id, static_cast<size_t>(cached));
  }

  void append() {
    if (const uint64_t sw = random_seq(true); sw != 0 && pick(0, 4) == 0) {
      // A swapped-out sequence cannot grow until it is swapped in.
      const int64_t swap_before = slots_.swap_used_bytes();
      EXPECT_FALSE(slots_.allocate_slots(sw, 1));
      EXPECT_FALSE(manager_.has_sequence(static_cast<SeqId>(sw)));
      EXPECT_EQ(slots_.swap_used_bytes(), swap_before);
      return;
    }
    const uint64_t id = random_seq(false);
    if (id == 0) return;
    ShadowSeq& s = seqs_.at(id);
    const int k = pick(1, 5);
    const auto sid = static_cast<SeqId>(id);
    const std::vector<int32_t> table = manager_.block_table(sid);
    const int64_t len = static_cast<int64_t>(s.tokens.size());
    const bool cow = len % kBlockSize != 0 && manager_.pool().ref_count(table.back()) > 1;
    const int64_t need = blocks_for(len + k) - static_cast<int64_t>(table.size()) + (cow ? 1 : 0);
    const int64_t cached_before = manager_.stats().cached_blocks;
    const int64_t free_before = manager_.num_free_blocks();
    const bool ok = slots_.allocate_slots(id, k);
    ASSERT_EQ(ok, need <= free_before) << need << " blocks needed, " << free_before << " free";
    if (!ok) {
      ASSERT_EQ(manager_.block_table(sid), table) << "a refused allocation changed the table";
      // Preempt: by swap when the budget allows, else by recompute (free).
      ++n_.preempted;
      if (pick(0, 1) == 0 && try_swap_out(id)) return;
      slots_.free(id);
      seqs_.erase(id);
      return;
    }
    if (manager_.stats().cached_blocks < cached_before) ++n_.evictions;
    if (cow) ++n_.cow;
    ++n_.appends;
    const size_t from = s.tokens.size();
    for (int i = 0; i < k; ++i) s.push(pick(0, 3));
    compute(id, from);
  }

  void fork() {
    const uint64_t parent = random_seq(false);
    if (parent == 0) return;
    const uint64_t child = next_id_++;
    manager_.fork(static_cast<SeqId>(parent), static_cast<SeqId>(child));
    seqs_[child] = seqs_.at(parent);
    seqs_[child].restored = false;  // a new id to the slots; still untrusted K/V
    ++n_.forks;
  }

  void free_one() {
    const uint64_t id = random_seq(false, /*any=*/true);
    slots_.free(id);
    seqs_.erase(id);
  }

  // A request ends; maybe with keep_context, whose kept K/V must be this sequence's, and which
  // may then come back as a restored snapshot (install_host_kv, not counted against swap).
  void finish_one() {
    const uint64_t id = random_seq(false, /*any=*/true);
    const ShadowSeq s = seqs_.at(id);
    const bool keep = pick(0, 1) == 0;
    if (keep) slots_.keep_on_finish(id);
    slots_.free_finished(id);
    seqs_.erase(id);
    EXPECT_FALSE(manager_.has_sequence(static_cast<SeqId>(id)));
    // The engine forgets a request once it is gone; a kept copy not taken by then is dropped.
    const bool forget_first = keep && pick(0, 4) == 0;
    if (forget_first) slots_.forget(id);
    std::optional<HostKv> kept = slots_.take_kept(id);
    ASSERT_EQ(kept.has_value(), keep && !forget_first);
    slots_.forget(id);
    EXPECT_TRUE(slots_.may_cache(id));
    EXPECT_FALSE(slots_.take_kept(id).has_value()) << "handed over twice";
    if (!kept) return;
    ++n_.kept;
    verify_host(*kept, s);
    if (::testing::Test::HasFatalFailure() || pick(0, 2) == 0) return;
    const uint64_t restored = next_id_++;
    const int64_t bytes = static_cast<int64_t>(kept->data.size());
    slots_.install_host_kv(restored, std::move(*kept));
    ShadowSeq r = s;
    r.swapped = true;
    r.counted = false;
    r.host_bytes = bytes;
    r.restored = true;
    r.untrusted = true;
    seqs_[restored] = r;
    ++n_.restored;
  }

  bool try_swap_out(uint64_t id) {
    ShadowSeq& s = seqs_.at(id);
    const int64_t bytes = blocks_for(static_cast<int64_t>(s.tokens.size())) * cache_.block_bytes();
    const bool expect =
        !s.swapped && slots_.swap_used_bytes() + bytes <= slots_.swap_budget_bytes();
    const bool ok = slots_.swap_out(id);
    EXPECT_EQ(ok, expect) << "swap_out of seq " << id;
    if (!ok) {
      ++n_.swap_out_refused;
      return false;
    }
    s.swapped = true;
    s.counted = true;
    s.host_bytes = bytes;
    ++n_.swap_outs;
    return true;
  }

  void swap_out_one() {
    const uint64_t id = random_seq(false, /*any=*/true);
    if (seqs_.at(id).swapped) {
      EXPECT_FALSE(slots_.swap_out(id)) << "swapped out twice";
      return;
    }
    try_swap_out(id);
  }

  void swap_in_one() {
    const uint64_t id = random_seq(true);
    if (id == 0) {
      if (const uint64_t live = random_seq(false); live != 0) {
        EXPECT_FALSE(slots_.swap_in(live)) << "swap_in of a resident sequence";
      }
      return;
    }
    ShadowSeq& s = seqs_.at(id);
    const bool expect =
        blocks_for(static_cast<int64_t>(s.tokens.size())) <= manager_.num_free_blocks();
    const bool ok = slots_.swap_in(id);
    ASSERT_EQ(ok, expect) << "swap_in of seq " << id;
    if (!ok) {
      ++n_.swap_in_refused;
      EXPECT_FALSE(manager_.has_sequence(static_cast<SeqId>(id)));
      return;
    }
    s.swapped = false;
    s.counted = false;
    s.host_bytes = 0;
    ++n_.swap_ins;
  }

  // Calls that must be refused without changing anything.
  void misuse() {
    const uint64_t unknown = next_id_ + 1000;
    EXPECT_FALSE(slots_.swap_out(unknown));
    EXPECT_FALSE(slots_.swap_in(unknown));
    EXPECT_NO_THROW(slots_.free(unknown));
    EXPECT_FALSE(slots_.take_kept(unknown).has_value());
    EXPECT_EQ(slots_.cached_prefix_tokens(unknown, {}), 0);
    EXPECT_FALSE(manager_.has_sequence(static_cast<SeqId>(unknown)));
    if (const uint64_t id = random_seq(false, /*any=*/true); id != 0) {
      HostKv kv;
      kv.num_tokens = 1;
      kv.block_bytes = cache_.block_bytes();
      kv.data.resize(static_cast<size_t>(kv.block_bytes));
      EXPECT_THROW(slots_.install_host_kv(id, kv), Error) << "install over a live sequence";
    }
    HostKv wrong;
    wrong.num_tokens = 1;
    wrong.block_bytes = cache_.block_bytes() / 2;
    wrong.data.resize(static_cast<size_t>(wrong.block_bytes));
    EXPECT_THROW(slots_.install_host_kv(unknown, wrong), Error) << "wrong block size";
    EXPECT_EQ(slots_.num_swapped(), std::count_if(seqs_.begin(), seqs_.end(),
                                                  [](const auto& e) { return e.second.swapped; }));
  }

  void check() {
    const BlockPool& pool = manager_.pool();
    ASSERT_NO_THROW(pool.check_consistency());
    const KvCacheStats st = manager_.stats();
    ASSERT_EQ(st.used_blocks + st.cached_blocks + st.free_blocks, st.total_blocks);

    std::vector<int32_t> refs(static_cast<size_t>(pool.num_blocks()), 0);
    // block -> (seq, index in its table) of the first table holding it
    std::map<int32_t, std::pair<uint64_t, size_t>> owner;
    int64_t live = 0, swapped = 0, swap_bytes = 0;
    for (const auto& [id, s] : seqs_) {
      const auto sid = static_cast<SeqId>(id);
      if (s.swapped) {
        ++swapped;
        if (s.counted) swap_bytes += s.host_bytes;
        ASSERT_FALSE(manager_.has_sequence(sid)) << "swapped seq " << id << " still has blocks";
        continue;
      }
      ++live;
      ASSERT_TRUE(manager_.has_sequence(sid)) << "seq " << id;
      const std::vector<int32_t>& table = manager_.block_table(sid);
      const int64_t len = static_cast<int64_t>(s.tokens.size());
      ASSERT_EQ(manager_.num_tokens(sid), len);
      ASSERT_EQ(static_cast<int64_t>(table.size()), blocks_for(len));
      for (size_t i = 0; i < table.size(); ++i) {
        const int32_t b = table[i];
        ASSERT_GT(b, BlockPool::kNullBlock);
        ASSERT_LT(b, pool.num_blocks());
        if (s.untrusted) {
          ASSERT_FALSE(pool.block_hash(b).has_value())
              << "restored K/V in block " << b << " joined the prefix cache";
        }
        ++refs[static_cast<size_t>(b)];
        auto [it, first] = owner.emplace(b, std::make_pair(id, i));
        if (first) continue;
        // Shared block: only a fork or a prefix hit may share, so both sequences hold the
        // same history up to the end of this block, at the same position.
        const auto& [other, other_i] = it->second;
        const ShadowSeq& o = seqs_.at(other);
        ASSERT_EQ(i, other_i) << "block " << b << " at different positions in seqs " << id
                              << " and " << other;
        const size_t end = std::min(s.tokens.size(), (i + 1) * kBlockSize);
        const size_t oend = std::min(o.tokens.size(), (i + 1) * kBlockSize);
        ASSERT_EQ(end, oend) << "block " << b << " shared by seqs " << id << " and " << other
                             << " with different fill";
        ASSERT_TRUE(std::equal(s.tokens.begin(), s.tokens.begin() + static_cast<long>(end),
                               o.tokens.begin()))
            << "block " << b << " shared by seqs " << id << " and " << other
            << " with different histories";
      }
      verify_cache(id, s.tokens.size());
      if (::testing::Test::HasFatalFailure()) return;
    }
    for (int32_t b = 1; b < pool.num_blocks(); ++b)
      ASSERT_EQ(pool.ref_count(b), refs[static_cast<size_t>(b)]) << "block " << b;
    ASSERT_EQ(manager_.num_sequences(), live);
    ASSERT_EQ(slots_.num_swapped(), swapped);
    ASSERT_EQ(slots_.swap_used_bytes(), swap_bytes);
    ASSERT_LE(slots_.swap_used_bytes(), slots_.swap_budget_bytes());
  }

  std::unique_ptr<Backend> backend_;
  KvCache cache_;
  KvCacheManager manager_;
  PagedKvSlots slots_;
  std::mt19937 rng_;
  std::vector<std::vector<int32_t>> system_prompts_;
  std::map<uint64_t, ShadowSeq> seqs_;
  uint64_t next_id_ = 1;
  Counters n_;
};

class PagedKvSlotsProperty : public ::testing::TestWithParam<uint32_t> {};

TEST_P(PagedKvSlotsProperty, RandomOperationsKeepEveryTokensKv) {
  SlotsSimulator sim(GetParam(), /*swap_budget_blocks=*/6);
  for (int i = 0; i < 2500; ++i) {
    sim.step();
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "stopped after operation " << i;
      return;
    }
  }
  sim.free_all();
  const Counters& n = sim.counters();
  // The workload must exercise every path it claims to test.
  EXPECT_GT(n.admitted, 50);
  EXPECT_GT(n.prefix_hit_tokens, 0);
  EXPECT_GT(n.admit_refused, 0);
  EXPECT_GT(n.cow, 0);
  EXPECT_GT(n.forks, 0);
  EXPECT_GT(n.swap_outs, 10);
  EXPECT_GT(n.swap_out_refused, 0);
  EXPECT_GT(n.swap_ins, 10);
  EXPECT_GT(n.swap_in_refused, 0);
  EXPECT_GT(n.kept, 10);
  EXPECT_GT(n.restored, 0);
  EXPECT_GT(n.preempted, 0);
  EXPECT_GT(n.evictions, 0);
}

INSTANTIATE_TEST_SUITE_P(Seeds, PagedKvSlotsProperty, ::testing::Values(1u, 2u, 3u, 4u, 5u, 6u));

// ---- targeted cases ------------------------------------------------------------------------

class PagedKvSlotsTest : public ::testing::Test {
 protected:
  PagedKvSlotsTest()
      : backend_(create_backend({Device::cpu(), 1})),
        cache_(test_spec(), *backend_),
        manager_({.num_blocks = kNumBlocks, .block_size = kBlockSize, .watermark = 0.0}) {}

  void fill(PagedKvSlots& slots, uint64_t id, int n, float base) {
    ASSERT_TRUE(slots.allocate_slots(id, n));
    const auto& table = manager_.block_table(static_cast<SeqId>(id));
    for (int p = 0; p < n; ++p)
      for (int e = 0; e < kElemsPerToken; ++e)
        *cache_elem(cache_, table[static_cast<size_t>(p / kBlockSize)], p % kBlockSize, e) =
            base + static_cast<float>(p * kElemsPerToken + e);
  }

  std::unique_ptr<Backend> backend_;
  KvCache cache_;
  KvCacheManager manager_;
};

TEST_F(PagedKvSlotsTest, ConstructionChecksItsArguments) {
  EXPECT_THROW(PagedKvSlots(manager_, cache_, -1), Error);
  KvCacheManager other({.num_blocks = kNumBlocks, .block_size = 8});
  try {
    PagedKvSlots bad(other, cache_, 0);
    ADD_FAILURE() << "block size mismatch accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("block size"), std::string::npos) << e.what();
  }
}

TEST_F(PagedKvSlotsTest, SwapRespectsTheBudgetExactly) {
  const int64_t bb = cache_.block_bytes();
  PagedKvSlots slots(manager_, cache_, 3 * bb);
  fill(slots, 1, 9, 1000.0f);  // 3 blocks: fits the budget exactly
  fill(slots, 2, 1, 5000.0f);  // 1 block
  EXPECT_TRUE(slots.swap_out(1));
  EXPECT_EQ(slots.swap_used_bytes(), 3 * bb);
  EXPECT_FALSE(slots.swap_out(2)) << "over budget";
  EXPECT_TRUE(manager_.has_sequence(2)) << "a refused swap_out must change nothing";
  EXPECT_EQ(slots.num_swapped(), 1);
  // No room to swap back in while the pool is full: refused, the host copy stays.
  ASSERT_TRUE(slots.allocate_slots(3, (kNumBlocks - 1 - 1) * kBlockSize));
  EXPECT_FALSE(slots.swap_in(1));
  EXPECT_EQ(slots.swap_used_bytes(), 3 * bb);
  EXPECT_FALSE(manager_.has_sequence(1));
  slots.free(3);
  ASSERT_TRUE(slots.swap_in(1));
  EXPECT_EQ(slots.swap_used_bytes(), 0);
  const auto& table = manager_.block_table(1);
  for (int p = 0; p < 9; ++p)
    for (int e = 0; e < kElemsPerToken; ++e)
      ASSERT_EQ(*cache_elem(cache_, table[static_cast<size_t>(p / kBlockSize)], p % kBlockSize, e),
                1000.0f + static_cast<float>(p * kElemsPerToken + e));
  slots.free(1);
  slots.free(2);
  EXPECT_EQ(manager_.stats().used_blocks, 0);
}

TEST_F(PagedKvSlotsTest, RestoredContextIsNotCountedButItsSwapOutIs) {
  const int64_t bb = cache_.block_bytes();
  PagedKvSlots slots(manager_, cache_, bb);  // room for one block only
  fill(slots, 1, 6, 7.0f);
  slots.keep_on_finish(1);
  slots.free_finished(1);
  std::optional<HostKv> kv = slots.take_kept(1);
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->num_tokens, 6);
  slots.install_host_kv(2, std::move(*kv));  // 2 blocks, above the budget: fine, not counted
  EXPECT_EQ(slots.swap_used_bytes(), 0);
  EXPECT_FALSE(slots.may_cache(2)) << "restored K/V must not join the shared prefix cache";
  EXPECT_TRUE(slots.may_cache(1));
  EXPECT_EQ(slots.num_swapped(), 1);
  EXPECT_FALSE(slots.allocate_slots(2, 1)) << "must be swapped in first";
  ASSERT_TRUE(slots.swap_in(2));
  EXPECT_EQ(manager_.num_tokens(2), 6);
  EXPECT_FALSE(slots.swap_out(2)) << "its 2 blocks exceed the 1-block budget";
  slots.free(2);
  EXPECT_EQ(slots.num_swapped(), 0);
  EXPECT_EQ(manager_.stats().used_blocks, 0);
  slots.forget(2);
  EXPECT_TRUE(slots.may_cache(2));
}

// Regression: free_finished() used to move the K/V out of a swapped sequence's host entry before
// releasing it, so the entry's swap bytes were never subtracted (a keep_context request
// cancelled while swapped out leaked its swap space for good).
TEST_F(PagedKvSlotsTest, KeptContextOfASwappedSequenceReleasesItsSwapSpace) {
  const int64_t bb = cache_.block_bytes();
  PagedKvSlots slots(manager_, cache_, 4 * bb);
  fill(slots, 1, 5, 3.0f);
  slots.keep_on_finish(1);
  ASSERT_TRUE(slots.swap_out(1));
  EXPECT_EQ(slots.swap_used_bytes(), 2 * bb);
  slots.free_finished(1);  // e.g. cancelled while swapped out
  std::optional<HostKv> kv = slots.take_kept(1);
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->num_tokens, 5);
  EXPECT_EQ(slots.num_swapped(), 0);
  EXPECT_EQ(slots.swap_used_bytes(), 0) << "swap space leaked";
}

}  // namespace
}  // namespace llmos
