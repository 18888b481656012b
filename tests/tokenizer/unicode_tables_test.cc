// The generated Unicode tables (src/tokenizer/unicode_tables.inc) and the conversions built on
// them: category spot checks across planes and Unicode versions, the exact White_Space set,
// simple lowercase mapping, llama.cpp's lossy UTF-8 decoding, GPT-2's byte mapping.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "tokenizer/unicode.h"

namespace llmos {
namespace {

uint16_t category(char32_t c) { return unicode_flags(c) & kUnicodeCategoryMask; }
bool space(char32_t c) { return (unicode_flags(c) & kUnicodeWhitespace) != 0; }

TEST(UnicodeTables, Version) { EXPECT_STREQ(unicode_version(), "15.1.0"); }

TEST(UnicodeTables, CategorySpotChecks) {
  const std::vector<std::pair<char32_t, uint16_t>> cases = {
      {'A', kUnicodeLetter},         {'z', kUnicodeLetter},
      {'0', kUnicodeNumber},         {' ', kUnicodeSeparator},
      {'\n', kUnicodeControl},       {'!', kUnicodePunctuation},
      {'_', kUnicodePunctuation},    {'~', kUnicodeSymbol},
      {'$', kUnicodeSymbol},         {0x7F, kUnicodeControl},
      {0xAA, kUnicodeLetter},        {0xAD, kUnicodeControl},       // soft hyphen is Cf
      {0xB2, kUnicodeNumber},        {0xB5, kUnicodeLetter},
      {0xBD, kUnicodeNumber},        {0xD7, kUnicodeSymbol},
      {0x0301, kUnicodeMark},        {0x0378, kUnicodeUndefined},
      {0x0660, kUnicodeNumber},      {0x0903, kUnicodeMark},        // Mc
      {0x2167, kUnicodeNumber},      {0x2028, kUnicodeSeparator},   // Nl, Zl
      {0x3000, kUnicodeSeparator},   {0x3001, kUnicodePunctuation},
      {0x4E2D, kUnicodeLetter},      {0x9FFF, kUnicodeLetter},      // CJK (Unicode 14)
      {0xAC00, kUnicodeLetter},      {0xD800, kUnicodeControl},     // Cs
      {0xE000, kUnicodeControl},     {0xFEFF, kUnicodeControl},     // Co, Cf
      {0xFFFD, kUnicodeSymbol},      {0xFFFE, kUnicodeUndefined},
      {0x1F600, kUnicodeSymbol},     {0x1D400, kUnicodeLetter},
      {0x20000, kUnicodeLetter},     {0xE0001, kUnicodeControl},
      {0x10FFFF, kUnicodeUndefined}, {0x110000, kUnicodeUndefined},  // past the end
      {0x1FFFFF, kUnicodeUndefined},
      // Unicode 15.0 / 15.1 additions (as in llama.cpp's tables), not yet 16.0.
      {0x0CF3, kUnicodeMark},        {0x31350, kUnicodeLetter},     // 15.0
      {0x2EBF0, kUnicodeLetter},     {0x2FFC, kUnicodeSymbol},      // 15.1
      {0x1C89, kUnicodeUndefined},                                   // 16.0
  };
  for (const auto& [c, want] : cases) {
    EXPECT_EQ(category(c), want) << "U+" << std::hex << static_cast<uint32_t>(c);
  }
}

TEST(UnicodeTables, EveryCodePointHasExactlyOneCategory) {
  for (char32_t c = 0; c <= kMaxCodePoint; ++c) {
    const uint16_t cat = category(c);
    ASSERT_TRUE(cat != 0 && (cat & (cat - 1)) == 0) << "U+" << std::hex << static_cast<uint32_t>(c);
  }
}

TEST(UnicodeTables, WhitespaceIsExactlyWhiteSpace) {
  const std::set<char32_t> expected = {0x09,   0x0A,   0x0B,   0x0C,   0x0D,   0x20,   0x85,
                                       0xA0,   0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
                                       0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028,
                                       0x2029, 0x202F, 0x205F, 0x3000};
  std::set<char32_t> found;
  for (char32_t c = 0; c <= kMaxCodePoint; ++c) {
    if (space(c)) found.insert(c);
  }
  EXPECT_EQ(found, expected);
  EXPECT_FALSE(space(0x200B));  // ZERO WIDTH SPACE is Cf, not White_Space
  EXPECT_FALSE(space(0x1C));    // Python's isspace() says yes; Unicode does not
}

TEST(UnicodeTables, SimpleLowercase) {
  const std::vector<std::pair<char32_t, char32_t>> cases = {
      {'A', 'a'},         {'Z', 'z'},         {'a', 'a'},         {'1', '1'},
      {0xC0, 0xE0},       {0xDE, 0xFE},       {0xD7, 0xD7},       {0x0100, 0x0101},
      {0x0101, 0x0101},   {0x0130, 'i'},      {0x0178, 0xFF},     {0x01C5, 0x01C6},
      {0x03A3, 0x03C3},   {0x0410, 0x0430},   {0x10A0, 0x2D00},   {0x1E9E, 0xDF},
      {0x212A, 'k'},      {0x212B, 0xE5},     {0xFF21, 0xFF41},   {0x10400, 0x10428},
      {0x1E900, 0x1E922}, {0x4E2D, 0x4E2D},   {0x1F600, 0x1F600},
  };
  for (const auto& [c, low] : cases) {
    EXPECT_EQ(unicode_to_lower(c), low) << "U+" << std::hex << static_cast<uint32_t>(c);
  }
}

std::vector<char32_t> decode(std::string_view s) {
  std::vector<char32_t> out;
  unicode_decode_lossy(s, out);
  return out;
}

TEST(UnicodeTables, LossyDecodingAsLlamaCpp) {
  using V = std::vector<char32_t>;
  EXPECT_EQ(decode("a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80"), (V{'a', 0xE9, 0x4E2D, 0x1F600}));
  EXPECT_EQ(decode("\x80"), (V{0xFFFD}));                    // stray continuation byte
  EXPECT_EQ(decode("\xC3"), (V{0xFFFD}));                    // truncated at the end
  EXPECT_EQ(decode("\xE4\xB8" "a"), (V{0xFFFD, 0xFFFD, 'a'}));  // each bad byte is one U+FFFD
  EXPECT_EQ(decode("\xF8\xFF"), (V{0xFFFD, 0xFFFD}));
  // No overlong or surrogate checks, and 0xF4-0xF7 leads reach past U+10FFFF.
  EXPECT_EQ(decode("\xC0\x80"), (V{0}));
  EXPECT_EQ(decode("\xED\xA0\x80"), (V{0xD800}));
  EXPECT_EQ(decode("\xF4\x90\x80\x80"), (V{0x110000}));
  EXPECT_EQ(decode(""), V{});
  // Re-encoding gives back every sequence the decoder accepted, canonicalized.
  std::string out;
  for (const char32_t c : decode("\xF7\xBF\xBF\xBF\xC0\x80z")) unicode_append_utf8(out, c);
  EXPECT_EQ(out, std::string("\xF7\xBF\xBF\xBF", 4) + std::string(1, '\0') + "z");
}

TEST(UnicodeTables, Gpt2ByteMapping) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t c = byte_to_unicode(static_cast<uint8_t>(b));
    seen.insert(c);
    EXPECT_EQ(unicode_to_byte(c), b);
    // The stand-ins are printable: letters, numbers, punctuation or symbols.
    EXPECT_EQ(unicode_flags(c) & (kUnicodeWhitespace | kUnicodeControl | kUnicodeSeparator), 0)
        << b;
  }
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(byte_to_unicode('!'), U'!');
  EXPECT_EQ(byte_to_unicode('~'), U'~');
  EXPECT_EQ(byte_to_unicode(0x00), 0x0100u);
  EXPECT_EQ(byte_to_unicode(' '), 0x0120u);  // "Ġ"
  EXPECT_EQ(byte_to_unicode('\n'), 0x010Au);  // "Ċ"
  EXPECT_EQ(byte_to_unicode(0x7F), 0x0121u);
  EXPECT_EQ(byte_to_unicode(0xAD), 0x0143u);
  EXPECT_EQ(byte_to_unicode(0xAE), 0x00AEu);
  EXPECT_EQ(unicode_to_byte(U' '), -1);
  EXPECT_EQ(unicode_to_byte(0x0144), -1);
  EXPECT_EQ(unicode_to_byte(0x4E2D), -1);
}

}  // namespace
}  // namespace llmos
