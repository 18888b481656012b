#include "tokenizer/token_table.h"

#include <cstring>

namespace llmos {
namespace {

uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  return h;
}

}  // namespace

uint64_t TokenTable::hash(std::string_view text) {
  const char* p = text.data();
  size_t n = text.size();
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC4CEB9FE1A85EC53ull);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = mix(h ^ v);
    p += 8;
    n -= 8;
  }
  uint64_t tail = 0;
  for (size_t i = 0; i < n; ++i) {
    tail |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  }
  return mix(h ^ tail ^ 0x5851F42D4C957F2Dull);
}

TokenTable::TokenTable(const std::vector<std::string>& tokens) : tokens_(&tokens) {
  size_t capacity = 16;
  while (capacity < tokens.size() * 2) capacity *= 2;  // load factor <= 1/2
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  for (size_t id = 0; id < tokens.size(); ++id) {
    const std::string& text = tokens[id];
    if (text.empty()) continue;
    const uint64_t h = hash(text);
    const auto tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = static_cast<size_t>(h) & mask_;; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.id < 0 || (slot.tag == tag && tokens[slot.id] == text)) {
        slot = {tag, static_cast<int32_t>(id)};  // a later duplicate replaces the earlier id
        break;
      }
    }
  }
}

}  // namespace llmos
