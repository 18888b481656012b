// Unicode code point properties and conversions for the byte-level BPE pre-tokenizers, all
// as llama.cpp defines them so that text splits into the same words:
//  - category flags per code point (from the generated unicode_tables.inc, Unicode 15.1);
//  - lossy UTF-8 decoding (each byte that does not start a well-formed-enough sequence
//    becomes U+FFFD) and the encoding that turns those code points back into bytes;
//  - GPT-2's byte <-> printable-character mapping used by byte-level vocabularies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmos {

// Category flags of a code point: exactly one of the first eight bits (the general-category
// group), plus kWhitespace for White_Space code points.
enum UnicodeFlag : uint16_t {
  kUnicodeUndefined = 0x01,    // Cn (unassigned, noncharacters)
  kUnicodeNumber = 0x02,       // \p{N}
  kUnicodeLetter = 0x04,       // \p{L}
  kUnicodeSeparator = 0x08,    // \p{Z}
  kUnicodeMark = 0x10,         // \p{M}
  kUnicodePunctuation = 0x20,  // \p{P}
  kUnicodeSymbol = 0x40,       // \p{S}
  kUnicodeControl = 0x80,      // \p{C} other than Cn: Cc, Cf, Co, Cs
  kUnicodeCategoryMask = 0xFF,
  kUnicodeWhitespace = 0x100,  // \s
};

inline constexpr char32_t kMaxCodePoint = 0x10FFFF;
inline constexpr char32_t kReplacementChar = 0xFFFD;

// The Unicode version the tables were generated from.
const char* unicode_version();

// Flags of any code point; values past U+10FFFF (which lossy decoding can produce) are
// kUnicodeUndefined. Two table lookups: get() once, then call it per code point.
class UnicodeFlagTable {
 public:
  static const UnicodeFlagTable& get();
  uint16_t operator()(char32_t cpt) const {
    if (cpt > kMaxCodePoint) return kUnicodeUndefined;
    return blocks_[(static_cast<size_t>(index_[cpt >> kShift]) << kShift) | (cpt & kMask)];
  }

 private:
  static constexpr unsigned kShift = 7;
  static constexpr char32_t kMask = (1u << kShift) - 1;
  UnicodeFlagTable();
  std::vector<uint16_t> index_;   // code point >> kShift -> block number
  std::vector<uint16_t> blocks_;  // distinct blocks of 128 flags
};

inline uint16_t unicode_flags(char32_t cpt) { return UnicodeFlagTable::get()(cpt); }

// Simple (one-to-one) lowercase mapping; code points without one map to themselves.
char32_t unicode_to_lower(char32_t cpt);

// Decodes UTF-8 the way llama.cpp does (unicode_cpts_from_utf8): a sequence is taken by its
// lead byte when its continuation bytes are present and well formed, without checks for
// overlong forms or surrogates (so a 0xF0-0xF7 lead can give values up to 0x1FFFFF); any
// other byte becomes one U+FFFD. Appends to `out`.
void unicode_decode_lossy(std::string_view text, std::vector<char32_t>& out);

// Appends the UTF-8 form of a code point as llama.cpp writes it (values up to 0x1FFFFF use the
// plain 4-byte pattern, so lossy decoding followed by this gives back every byte sequence it
// accepted).
inline void unicode_append_utf8(std::string& out, char32_t cpt) {
  if (cpt < 0x80) {
    out += static_cast<char>(cpt);
  } else if (cpt < 0x800) {
    out += static_cast<char>(0xC0 | (cpt >> 6));
    out += static_cast<char>(0x80 | (cpt & 0x3F));
  } else if (cpt < 0x10000) {
    out += static_cast<char>(0xE0 | (cpt >> 12));
    out += static_cast<char>(0x80 | ((cpt >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cpt & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | ((cpt >> 18) & 0x07));
    out += static_cast<char>(0x80 | ((cpt >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cpt >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cpt & 0x3F));
  }
}

// GPT-2's reversible byte -> character mapping: the printable Latin-1 bytes ('!'..'~',
// U+00A1..U+00AC, U+00AE..U+00FF) map to themselves, the other 68 bytes, in order, to
// U+0100, U+0101, ...
char32_t byte_to_unicode(uint8_t byte);
// The byte a character stands for, or -1 when it is not one of the 256 mapped characters.
int unicode_to_byte(char32_t cpt);

}  // namespace llmos
