// The merge rules of a byte-level BPE vocabulary (tokenizer.ggml.merges, "left right" with
// rank = index, lower merges first) as a hash table over integer symbol pairs, so that the
// merge loop never builds or compares strings. A symbol is a piece of text: a vocab token's
// text has its token id; a text that only occurs as a merge part or result gets an id past
// the vocab; any other text can never merge (-1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/token_table.h"

namespace llmos {

class BpeMerges {
 public:
  struct Merge {
    int32_t rank = -1;    // -1: the pair does not merge
    int32_t result = -1;  // symbol of the merged text
  };

  BpeMerges() = default;
  // `tokens` indexes the vocab (n_vocab texts). A rule without a space after its first
  // character never applies (llama.cpp splits at the first space from index 1); when a pair
  // repeats, its first rank counts.
  BpeMerges(const TokenTable& tokens, size_t n_vocab, const std::vector<std::string>& rules);

  // The symbol of a text (see above).
  int32_t symbol(std::string_view text) const;

  Merge find(int32_t left, int32_t right) const {
    if (slots_.empty() || left < 0 || right < 0) return {};
    const uint64_t key = pack(left, right);
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.key == key) return {slot.rank, slot.result};
      if (slot.key == kEmpty) return {};
    }
  }

  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key;
    int32_t rank;
    int32_t result;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // no pair of non-negative ids packs to it
  static uint64_t pack(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  size_t slot_of(uint64_t key) const {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 24) & mask_;
  }
  int32_t intern(const std::string& text);

  const TokenTable* tokens_ = nullptr;
  size_t n_vocab_ = 0;
  std::unordered_map<std::string, int32_t> extra_;  // texts outside the vocab
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace llmos
