#include "tokenizer/char_pair_set.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace llmos {

CharPairSet::CharPairSet(const std::vector<std::string>& tokens) {
  for (const std::string& token : tokens) {
    const std::string_view text = token;
    std::string_view prev;
    for_each_utf8_char(text, [&](size_t begin, size_t len) {
      const std::string_view c = text.substr(begin, len);
      if (!prev.empty()) insert(pack(prev, c));
      prev = c;
    });
  }
}

void CharPairSet::insert(uint64_t key) {
  if (key == kEmpty) {
    size_ += has_empty_key_ ? 0 : 1;
    has_empty_key_ = true;
    return;
  }
  if ((size_ + 1) * 2 > keys_.size()) {  // keep the load factor <= 1/2
    std::vector<uint64_t> old;
    old.swap(keys_);
    keys_.assign(std::max<size_t>(16, old.size() * 2), kEmpty);
    mask_ = keys_.size() - 1;
    for (const uint64_t k : old) {
      if (k == kEmpty) continue;
      size_t i = slot_of(k);
      while (keys_[i] != kEmpty) i = (i + 1) & mask_;
      keys_[i] = k;
    }
  }
  size_t i = slot_of(key);
  while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
  if (keys_[i] == kEmpty) {
    keys_[i] = key;
    ++size_;
  }
}

}  // namespace llmos
