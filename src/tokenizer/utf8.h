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

// Calls f(begin, len) for each character of `text` as split by utf8_sequence_length (the last
// one clipped to the end of the text).
template <typename F>
void for_each_utf8_char(std::string_view text, F&& f) {
  for (size_t pos = 0; pos < text.size();) {
    size_t len = utf8_sequence_length(static_cast<uint8_t>(text[pos]));
    if (len > text.size() - pos) len = text.size() - pos;
    f(pos, len);
    pos += len;
  }
}

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool utf8_is_valid(std::string_view text);

// Appends the UTF-8 encoding of a code point (replacement character for invalid ones).
void utf8_append(std::string& out, char32_t code_point);

}  // namespace llmos
