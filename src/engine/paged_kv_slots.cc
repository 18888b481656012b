#include "engine/paged_kv_slots.h"

#include <utility>

#include "core/error.h"

namespace llmos {

PagedKvSlots::PagedKvSlots(KvCacheManager& manager, KvCache& cache, int64_t swap_budget_bytes)
    : manager_(manager), cache_(cache), swap_budget_(swap_budget_bytes) {
  LLMOS_CHECK_ARG(swap_budget_bytes >= 0, "swap space: ", swap_budget_bytes,
                  " bytes (must be >= 0)");
  LLMOS_CHECK_ARG(manager.block_size() == cache.spec().block_size,
                  "PagedKvSlots: manager block size ", manager.block_size(),
                  " differs from the cache's ", cache.spec().block_size);
}

bool PagedKvSlots::allocate_slots(uint64_t seq, int32_t num_new_tokens) {
  if (host_.contains(seq)) return false;  // swapped out: swap_in first
  return manager_.allocate_slots(static_cast<SeqId>(seq), num_new_tokens);
}

int32_t PagedKvSlots::cached_prefix_tokens(uint64_t seq, std::span<const int32_t> tokens) {
  if (tokens.empty()) return 0;
  // The scheduler already left out the token it must compute, so the whole span may hit.
  const int64_t hit =
      manager_.find_cached_prefix(static_cast<SeqId>(seq), tokens, /*leave_last_token=*/false);
  return static_cast<int32_t>(hit);
}

void PagedKvSlots::drop_host(uint64_t seq) {
  auto it = host_.find(seq);
  if (it == host_.end()) return;
  if (it->second.counted) swap_used_ -= static_cast<int64_t>(it->second.kv.data.size());
  host_.erase(it);
}

void PagedKvSlots::free(uint64_t seq) {
  if (manager_.has_sequence(static_cast<SeqId>(seq))) manager_.free(static_cast<SeqId>(seq));
  drop_host(seq);
}

void PagedKvSlots::forget(uint64_t seq) {
  keep_.erase(seq);
  kept_.erase(seq);
  untrusted_.erase(seq);
}

void PagedKvSlots::free_finished(uint64_t seq) {
  if (keep_.erase(seq) != 0) {
    const auto id = static_cast<SeqId>(seq);
    if (auto it = host_.find(seq); it != host_.end()) {
      if (it->second.counted) swap_used_ -= static_cast<int64_t>(it->second.kv.data.size());
      kept_[seq] = std::move(it->second.kv);
      host_.erase(it);
    } else if (manager_.has_sequence(id)) {
      kept_[seq] = read_host_kv(cache_, manager_.block_table(id), manager_.num_tokens(id));
    }
  }
  free(seq);
}

std::optional<HostKv> PagedKvSlots::take_kept(uint64_t seq) {
  auto it = kept_.find(seq);
  if (it == kept_.end()) return std::nullopt;
  HostKv kv = std::move(it->second);
  kept_.erase(it);
  return kv;
}

bool PagedKvSlots::can_admit(int32_t num_tokens) const { return manager_.can_admit(num_tokens); }

bool PagedKvSlots::swap_out(uint64_t seq) {
  const auto id = static_cast<SeqId>(seq);
  if (!manager_.has_sequence(id) || host_.contains(seq)) return false;
  const int64_t tokens = manager_.num_tokens(id);
  const int64_t bytes = (tokens + block_size() - 1) / block_size() * cache_.block_bytes();
  if (swap_used_ + bytes > swap_budget_) return false;
  HostEntry entry{read_host_kv(cache_, manager_.block_table(id), tokens), true};
  manager_.free(id);
  swap_used_ += static_cast<int64_t>(entry.kv.data.size());
  host_.emplace(seq, std::move(entry));
  return true;
}

bool PagedKvSlots::swap_in(uint64_t seq) {
  auto it = host_.find(seq);
  const auto id = static_cast<SeqId>(seq);
  if (it == host_.end() || manager_.has_sequence(id)) return false;
  const HostKv& kv = it->second.kv;
  if (!manager_.allocate_slots(id, kv.num_tokens)) {
    if (manager_.has_sequence(id)) manager_.free(id);
    return false;
  }
  write_host_kv(cache_, manager_.block_table(id), kv);
  drop_host(seq);
  return true;
}

void PagedKvSlots::install_host_kv(uint64_t seq, HostKv kv) {
  LLMOS_CHECK_ARG(!host_.contains(seq) && !manager_.has_sequence(static_cast<SeqId>(seq)),
                  "install_host_kv: sequence ", seq, " already holds K/V");
  LLMOS_CHECK_ARG(kv.block_bytes == cache_.block_bytes(), "install_host_kv: blocks of ",
                  kv.block_bytes, " bytes, the cache's are ", cache_.block_bytes());
  host_.emplace(seq, HostEntry{std::move(kv), false});
  untrusted_.insert(seq);
}

void PagedKvSlots::apply_block_copies() {
  for (const BlockCopy& c : manager_.take_block_copies()) cache_.copy_block(c.src, c.dst);
}

}  // namespace llmos
