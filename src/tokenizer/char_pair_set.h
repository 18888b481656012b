// The set of adjacent character pairs that occur inside some token of a vocab. A merge-based
// tokenizer can never produce a piece spanning a boundary whose pair is not in the set, so
// text can be cut there into independent chunks without changing the result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmos {

class CharPairSet {
 public:
  CharPairSet() = default;
  // Characters are split as utf8_sequence_length splits them (malformed bytes included).
  explicit CharPairSet(const std::vector<std::string>& tokens);

  bool contains(std::string_view a, std::string_view b) const {
    const uint64_t key = pack(a, b);
    if (key == kEmpty) return has_empty_key_;
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return true;
      if (keys_[i] == kEmpty) return false;
    }
  }
  size_t size() const { return size_; }

  // Each character (1-4 bytes) packed big-endian into 32 bits. Unambiguous: the lead byte
  // fixes the intended length, and a character clipped at the end of a text packs to a value
  // no full character has.
  static uint64_t pack(std::string_view a, std::string_view b) {
    uint64_t hi = 0, lo = 0;
    for (const char c : a) hi = (hi << 8) | static_cast<uint8_t>(c);
    for (const char c : b) lo = (lo << 8) | static_cast<uint8_t>(c);
    return (hi << 32) | lo;
  }

 private:
  // Marks a free slot. It is also the packing of the pair (NUL, NUL), kept in has_empty_key_.
  static constexpr uint64_t kEmpty = 0;
  size_t slot_of(uint64_t key) const {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 20) & mask_;
  }
  void insert(uint64_t key);

  std::vector<uint64_t> keys_ = std::vector<uint64_t>(1, kEmpty);
  size_t mask_ = 0;
  size_t size_ = 0;
  bool has_empty_key_ = false;
};

}  // namespace llmos
