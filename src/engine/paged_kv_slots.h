// PagedKvSlots: the scheduler's view (KvSlots) of the real paged KV cache. It
// joins the block allocator (KvCacheManager: block tables, refcounts, prefix
// cache) with the K/V storage (KvCache) and a host-memory swap space, so that
// preemption by swap and context snapshots move real K/V rows. Runs on the
// engine's step thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <unordered_set>

#include "kv/host_kv.h"
#include "kv/kv_cache.h"
#include "kv/kv_cache_manager.h"
#include "sched/kv_slots.h"

namespace llmos {

class PagedKvSlots final : public KvSlots {
 public:
  // swap_budget_bytes bounds the host memory that swapped-out sequences may
  // hold.
  PagedKvSlots(KvCacheManager& manager, KvCache& cache, int64_t swap_budget_bytes);

  bool allocate_slots(uint64_t seq, int32_t num_new_tokens) override;
  int32_t cached_prefix_tokens(uint64_t seq, std::span<const int32_t> tokens) override;
  void free(uint64_t seq) override;
  void free_finished(uint64_t seq) override;
  bool can_admit(int32_t num_tokens) const override;
  int32_t block_size() const override { return manager_.block_size(); }
  bool swap_out(uint64_t seq) override;
  bool swap_in(uint64_t seq) override;

  // Hands over host K/V for a request added with Scheduler::add_swapped_request
  // (a restored snapshot). It is not counted against the swap budget: the
  // caller already holds it.
  void install_host_kv(uint64_t seq, HostKv kv);
  // Asks free_finished() to keep a copy of the sequence's K/V; take_kept()
  // hands it over.
  void keep_on_finish(uint64_t seq) { keep_.insert(seq); }
  std::optional<HostKv> take_kept(uint64_t seq);

  // Whether the sequence's blocks may join the shared prefix cache: not those restored from a
  // snapshot, whose K/V came from outside and must not be served to other clients' prompts.
  bool may_cache(uint64_t seq) const { return !untrusted_.contains(seq); }
  // Drops every per-request mark once the request is gone (keep, kept copy, untrusted).
  void forget(uint64_t seq);

  // Performs the copy-on-write block copies the manager asked for (before a
  // step's writes).
  void apply_block_copies();

  int64_t swap_used_bytes() const { return swap_used_; }
  int64_t swap_budget_bytes() const { return swap_budget_; }
  int64_t num_swapped() const { return static_cast<int64_t>(host_.size()); }

 private:
  struct HostEntry {
    HostKv kv;
    bool counted = true;  // against the swap budget
  };
  void drop_host(uint64_t seq);

  KvCacheManager& manager_;
  KvCache& cache_;
  int64_t swap_budget_;
  int64_t swap_used_ = 0;
  std::unordered_map<uint64_t, HostEntry> host_;
  std::unordered_set<uint64_t> keep_;
  std::unordered_map<uint64_t, HostKv> kept_;
  std::unordered_set<uint64_t> untrusted_;
};

}  // namespace llmos
