// Small UTF-8 helpers shared by the tokenizers. Tokenizers must accept any bytes, so nothing
// here rejects input: malformed sequences are split the same deterministic way llama.cpp
// splits them (by the lead byte alone), and the byte fallback takes care of the rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llmos {

// Length of the UTF-8 sequence a byte starts, judged from that byte only: ASCII and stray
// continuation bytes (0x80-0xBF) count as 1, 0xC0-0xDF as 2, 0xE0-0xEF as 3, 0xF0-0xFF as 4.
inline size_t utf8_sequence_length(uint8_t lead) {
  static constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[lead >> 4];
}

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool utf8_is_valid(std::string_view text);

// Appends the UTF-8 encoding of a code point (replacement character for invalid ones).
void utf8_append(std::string& out, char32_t code_point);

}  // namespace llmos
