#include "kv/kv_cache_manager.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace llmos {

KvCacheManager::KvCacheManager(const KvCacheManagerOptions& options)
    : pool_(options.num_blocks, options.block_size, options.enable_prefix_caching) {
  LLMOS_CHECK_ARG(
      std::isfinite(options.watermark) && options.watermark >= 0.0 && options.watermark < 1.0,
      "KvCacheManager: watermark must be in [0, 1), got ", options.watermark);
  watermark_blocks_ = static_cast<int64_t>(
      std::floor(options.watermark * static_cast<double>(pool_.num_usable_blocks())));
}

KvCacheManager::SeqState& KvCacheManager::state(SeqId seq, const char* what) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end())
    throw_error(StatusCode::kNotFound, "KvCacheManager::", what, ": unknown sequence ", seq);
  return it->second;
}

const KvCacheManager::SeqState& KvCacheManager::state(SeqId seq, const char* what) const {
  auto it = seqs_.find(seq);
  if (it == seqs_.end())
    throw_error(StatusCode::kNotFound, "KvCacheManager::", what, ": unknown sequence ", seq);
  return it->second;
}

int64_t KvCacheManager::blocks_for(int64_t tokens) const {
  const int64_t bs = pool_.block_size();
  return (tokens + bs - 1) / bs;
}

int64_t KvCacheManager::find_cached_prefix(SeqId seq, std::span<const int32_t> prompt,
                                          bool leave_last_token) {
  auto it = seqs_.find(seq);
  LLMOS_CHECK_ARG(it == seqs_.end() || it->second.blocks.empty(),
                  "KvCacheManager::find_cached_prefix: sequence ", seq, " already has blocks");
  SeqState& s = it == seqs_.end() ? seqs_[seq] : it->second;
  if (!pool_.prefix_caching_enabled() || prompt.empty()) return 0;

  const size_t bs = static_cast<size_t>(pool_.block_size());
  // Never the whole prompt: the last token must be computed to get logits.
  const size_t max_blocks = (prompt.size() - (leave_last_token ? 1 : 0)) / bs;
  std::vector<int32_t> hit;
  uint64_t parent = kRootBlockHash;
  for (size_t i = 0; i < max_blocks; ++i) {
    std::span<const int32_t> block_tokens = prompt.subspan(i * bs, bs);
    const uint64_t h = hash_block_tokens(parent, block_tokens);
    std::optional<int32_t> id = pool_.find_cached(h, parent, block_tokens);
    if (!id) break;
    hit.push_back(*id);
    parent = h;
  }
  for (int32_t id : hit) pool_.touch(id);
  s.blocks = hit;
  s.num_tokens = static_cast<int64_t>(hit.size() * bs);
  s.num_committed = static_cast<int64_t>(hit.size());
  s.last_hash = parent;

  ++prefix_queries_;
  prefix_query_tokens_ += static_cast<int64_t>(prompt.size());
  prefix_hit_tokens_ += s.num_tokens;
  return s.num_tokens;
}

bool KvCacheManager::allocate_slots(SeqId seq, int64_t num_new_tokens) {
  LLMOS_CHECK_ARG(num_new_tokens >= 0,
                  "KvCacheManager::allocate_slots: num_new_tokens must be >= 0, got ",
                  num_new_tokens);
  auto it = seqs_.find(seq);
  const SeqState empty;
  const SeqState& cur = it == seqs_.end() ? empty : it->second;
  if (num_new_tokens == 0) {
    if (it == seqs_.end()) seqs_.emplace(seq, SeqState{});
    return true;
  }
  // More tokens than the whole pool can hold: a plain "no" (and no overflow
  // below).
  const int64_t capacity = pool_.num_usable_blocks() * pool_.block_size();
  if (num_new_tokens > capacity) return false;

  const int64_t bs = pool_.block_size();
  const bool partial_last = cur.num_tokens % bs != 0;
  const bool cow = partial_last && pool_.ref_count(cur.blocks.back()) > 1;
  const int64_t grow =
      blocks_for(cur.num_tokens + num_new_tokens) - static_cast<int64_t>(cur.blocks.size());
  const int64_t needed = grow + (cow ? 1 : 0);
  std::vector<int32_t> fresh;
  if (!pool_.allocate(needed, fresh)) return false;

  SeqState& s = it == seqs_.end() ? seqs_[seq] : it->second;
  size_t next = 0;
  if (cow) {
    const int32_t src = s.blocks.back();
    const int32_t dst = fresh[next++];
    copies_.push_back({src, dst});
    s.blocks.back() = dst;
    pool_.release(src);  // still referenced by the other sharers
  }
  s.blocks.insert(s.blocks.end(), fresh.begin() + static_cast<std::ptrdiff_t>(next), fresh.end());
  s.num_tokens += num_new_tokens;
  return true;
}

void KvCacheManager::commit_full_blocks(SeqId seq, std::span<const int32_t> tokens) {
  SeqState& s = state(seq, "commit_full_blocks");
  LLMOS_CHECK_ARG(static_cast<int64_t>(tokens.size()) <= s.num_tokens,
                  "KvCacheManager::commit_full_blocks: ", tokens.size(),
                  " tokens given but sequence ", seq, " has only ", s.num_tokens, " slots");
  const size_t bs = static_cast<size_t>(pool_.block_size());
  const int64_t full = static_cast<int64_t>(tokens.size() / bs);
  for (int64_t i = s.num_committed; i < full; ++i) {
    std::span<const int32_t> block_tokens = tokens.subspan(static_cast<size_t>(i) * bs, bs);
    const uint64_t h = hash_block_tokens(s.last_hash, block_tokens);
    const int32_t block = s.blocks[static_cast<size_t>(i)];
    // A block shared with another sequence may already be registered by it.
    if (pool_.prefix_caching_enabled() && !pool_.block_hash(block)) {
      pool_.cache_block(block, h, s.last_hash, block_tokens);
    }
    s.last_hash = h;
    s.num_committed = i + 1;
  }
}

void KvCacheManager::fork(SeqId parent, SeqId child) {
  LLMOS_CHECK_ARG(parent != child, "KvCacheManager::fork: parent and child are both ", parent);
  LLMOS_CHECK_ARG(!has_sequence(child), "KvCacheManager::fork: child sequence ", child,
                  " already exists");
  const SeqState& p = state(parent, "fork");
  for (int32_t id : p.blocks) pool_.touch(id);
  SeqState copy = p;
  seqs_.emplace(child, std::move(copy));
}

void KvCacheManager::free(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end())
    throw_error(StatusCode::kNotFound, "KvCacheManager::free: unknown sequence ", seq);
  const std::vector<int32_t>& blocks = it->second.blocks;
  for (auto b = blocks.rbegin(); b != blocks.rend(); ++b) pool_.release(*b);
  seqs_.erase(it);
}

bool KvCacheManager::can_admit(int64_t num_tokens) const {
  LLMOS_CHECK_ARG(num_tokens >= 0, "KvCacheManager::can_admit: num_tokens must be >= 0, got ",
                  num_tokens);
  const int64_t capacity = pool_.num_usable_blocks() * pool_.block_size();
  if (num_tokens > capacity) return false;
  return pool_.num_free_blocks() - blocks_for(num_tokens) >= watermark_blocks_;
}

std::vector<BlockCopy> KvCacheManager::take_block_copies() {
  std::vector<BlockCopy> out;
  out.swap(copies_);
  return out;
}

const std::vector<int32_t>& KvCacheManager::block_table(SeqId seq) const {
  return state(seq, "block_table").blocks;
}

int64_t KvCacheManager::num_tokens(SeqId seq) const { return state(seq, "num_tokens").num_tokens; }

std::vector<SeqId> KvCacheManager::sequence_ids() const {
  std::vector<SeqId> out;
  out.reserve(seqs_.size());
  for (const auto& [id, s] : seqs_) out.push_back(id);
  std::sort(out.begin(), out.end());
  return out;
}

KvCacheStats KvCacheManager::stats() const {
  KvCacheStats st;
  st.total_blocks = pool_.num_usable_blocks();
  st.used_blocks = pool_.num_used_blocks();
  st.cached_blocks = pool_.num_cached_blocks();
  st.free_blocks = pool_.num_free_blocks() - pool_.num_cached_blocks();
  st.prefix_queries = prefix_queries_;
  st.prefix_query_tokens = prefix_query_tokens_;
  st.prefix_hit_tokens = prefix_hit_tokens_;
  return st;
}

}  // namespace llmos
