// A KvSlots with a fixed number of device blocks (and optional host blocks for swap) that
// tracks, per sequence, how many tokens it holds. Enough to exercise the scheduler's policy
// against the same "yes/no" answers the real block manager gives.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>

#include "sched/kv_slots.h"

namespace llmos::test {

class FakeKvSlots : public KvSlots {
 public:
  FakeKvSlots(int32_t num_blocks, int32_t block_size, int32_t watermark_blocks = 0,
              int32_t host_blocks = 0)
      : num_blocks_(num_blocks), block_size_(block_size), watermark_(watermark_blocks),
        host_blocks_(host_blocks) {}

  bool allocate_slots(uint64_t seq, int32_t num_new_tokens) override {
    ++allocate_calls;
    if (host_.contains(seq)) return false;  // must be swapped in first
    const int32_t have = device_.contains(seq) ? device_[seq] : 0;
    const int32_t need = blocks(have + num_new_tokens) - blocks(have);
    if (need > free_blocks()) return false;
    device_[seq] = have + num_new_tokens;
    return true;
  }
  int32_t cached_prefix_tokens(uint64_t seq, std::span<const int32_t> tokens) override {
    // Pretends the first prefix_hit_tokens (whole blocks only) are cached.
    int32_t hit = std::min<int32_t>(prefix_hit_tokens, static_cast<int32_t>(tokens.size()));
    hit -= hit % block_size_;
    if (hit == 0 || blocks(hit) > free_blocks()) return 0;
    device_[seq] = hit;
    return hit;
  }
  void free(uint64_t seq) override {
    device_.erase(seq);
    host_.erase(seq);
  }
  bool can_admit(int32_t num_tokens) const override {
    return free_blocks() - blocks(num_tokens) >= watermark_;
  }
  int32_t block_size() const override { return block_size_; }
  bool swap_out(uint64_t seq) override {
    auto it = device_.find(seq);
    if (it == device_.end() || host_used() + blocks(it->second) > host_blocks_) return false;
    host_[seq] = it->second;
    device_.erase(it);
    return true;
  }
  bool swap_in(uint64_t seq) override {
    auto it = host_.find(seq);
    if (it == host_.end() || blocks(it->second) > free_blocks()) return false;
    device_[seq] = it->second;
    host_.erase(it);
    return true;
  }

  int32_t blocks(int32_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }
  int32_t used_blocks() const {
    int32_t n = 0;
    for (const auto& [seq, t] : device_) n += blocks(t);
    return n;
  }
  int32_t host_used() const {
    int32_t n = 0;
    for (const auto& [seq, t] : host_) n += blocks(t);
    return n;
  }
  int32_t free_blocks() const { return num_blocks_ - used_blocks(); }
  bool on_device(uint64_t seq) const { return device_.contains(seq); }
  bool on_host(uint64_t seq) const { return host_.contains(seq); }
  int32_t tokens_of(uint64_t seq) const {
    auto it = device_.find(seq);
    return it == device_.end() ? 0 : it->second;
  }
  size_t num_device_seqs() const { return device_.size(); }
  size_t num_host_seqs() const { return host_.size(); }

  int32_t prefix_hit_tokens = 0;
  int64_t allocate_calls = 0;

 private:
  int32_t num_blocks_;
  int32_t block_size_;
  int32_t watermark_;
  int32_t host_blocks_;
  std::map<uint64_t, int32_t> device_;  // seq -> tokens held
  std::map<uint64_t, int32_t> host_;
};

}  // namespace llmos::test
