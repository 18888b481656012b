// Token text -> id lookup, the tokenizers' innermost operation (every candidate merge asks
// it). An open-addressing table over the vocab's own strings: one probe sequence of 8-byte
// slots, each holding a hash tag and an id, so a miss rarely touches the token text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmos {

class TokenTable {
 public:
  TokenTable() = default;
  // Indexes tokens[i] -> i. The strings must outlive the table and stay where they are. A text
  // that repeats maps to its highest id (as llama.cpp's map does); empty texts are skipped.
  explicit TokenTable(const std::vector<std::string>& tokens);

  // The id of the token with exactly this text, or -1.
  int32_t find(std::string_view text) const {
    if (slots_.empty()) return -1;
    const uint64_t h = hash(text);
    const auto tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = static_cast<size_t>(h) & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.id < 0) return -1;
      if (slot.tag == tag && (*tokens_)[slot.id] == text) return slot.id;
    }
  }

  static uint64_t hash(std::string_view text);

 private:
  struct Slot {
    uint32_t tag = 0;
    int32_t id = -1;  // -1: empty
  };
  const std::vector<std::string>* tokens_ = nullptr;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

}  // namespace llmos
