#include "tokenizer/bpe_merges.h"

#include <limits>

#include "core/error.h"

namespace llmos {

BpeMerges::BpeMerges(const TokenTable& tokens, size_t n_vocab,
                     const std::vector<std::string>& rules)
    : tokens_(&tokens), n_vocab_(n_vocab) {
  LLMOS_CHECK_ARG(rules.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()),
                  "vocab.merges has ", rules.size(), " rules, more than a rank can index");
  size_t capacity = 16;
  while (capacity < rules.size() * 2) capacity *= 2;  // load factor <= 1/2
  slots_.assign(capacity, Slot{kEmpty, -1, -1});
  mask_ = capacity - 1;

  for (size_t rank = 0; rank < rules.size(); ++rank) {
    const std::string& rule = rules[rank];
    const size_t space = rule.find(' ', 1);
    if (space == std::string::npos) continue;
    const std::string left = rule.substr(0, space);
    const std::string right = rule.substr(space + 1);
    if (right.empty()) continue;  // an empty symbol never occurs
    const int32_t l = intern(left);
    const int32_t r = intern(right);
    const int32_t result = intern(left + right);
    const uint64_t key = pack(l, r);
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.key == key) break;  // a repeated pair keeps its first (lowest) rank
      if (slot.key == kEmpty) {
        slot = {key, static_cast<int32_t>(rank), result};
        ++size_;
        break;
      }
    }
  }
}

int32_t BpeMerges::intern(const std::string& text) {
  const int32_t id = tokens_->find(text);
  if (id >= 0) return id;
  const auto [it, inserted] =
      extra_.emplace(text, static_cast<int32_t>(n_vocab_ + extra_.size()));
  LLMOS_CHECK_ARG(!inserted || it->second >= 0, "vocab plus merge texts exceed the id range");
  return it->second;
}

int32_t BpeMerges::symbol(std::string_view text) const {
  if (tokens_ == nullptr) return -1;
  const int32_t id = tokens_->find(text);
  if (id >= 0) return id;
  const auto it = extra_.find(std::string(text));
  return it == extra_.end() ? -1 : it->second;
}

}  // namespace llmos
