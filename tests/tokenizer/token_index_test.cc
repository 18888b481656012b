// The tokenizers' lookup structures: TokenTable (text -> id) and CharPairSet (which adjacent
// characters some token joins).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/char_pair_set.h"
#include "tokenizer/token_table.h"
#include "tokenizer/utf8.h"

namespace llmos {
namespace {

TEST(TokenTable, FindsEveryTokenAndRejectsOthers) {
  std::mt19937 rng(7);
  std::vector<std::string> tokens;
  std::map<std::string, int32_t> expected;  // last id wins on duplicates
  for (int i = 0; i < 5000; ++i) {
    std::string t;
    const int len = 1 + static_cast<int>(rng() % 12);
    for (int k = 0; k < len; ++k) t += static_cast<char>('a' + rng() % 4);
    tokens.push_back(t);
    expected[t] = i;
  }
  tokens.push_back("");  // never indexed
  tokens.push_back(std::string("\0x", 2));
  expected[std::string("\0x", 2)] = static_cast<int32_t>(tokens.size() - 1);
  const TokenTable table(tokens);
  for (const auto& [text, id] : expected) EXPECT_EQ(table.find(text), id) << text;
  EXPECT_EQ(table.find(""), -1);
  EXPECT_EQ(table.find("e"), -1);
  EXPECT_EQ(table.find("aaaaaaaaaaaaa"), -1);  // longer than any token
  EXPECT_EQ(table.find(std::string("\0", 1)), -1);
  EXPECT_EQ(TokenTable().find("a"), -1);
}

TEST(CharPairSet, HoldsExactlyThePairsInsideTokens) {
  const std::vector<std::string> tokens = {
      "ab", "\xE2\x96\x81the", "c", std::string("\0\0", 2), "\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF",
      "x\xC3"};
  const CharPairSet set(tokens);
  const auto has = [&](const std::string& text) {
    // Splits a two-character string the way tokenizers split text.
    std::vector<std::string> chars;
    for_each_utf8_char(text, [&](size_t b, size_t n) { chars.push_back(text.substr(b, n)); });
    EXPECT_EQ(chars.size(), 2u) << "test string must hold two characters";
    return chars.size() == 2 && set.contains(chars[0], chars[1]);
  };
  EXPECT_TRUE(has("ab"));
  EXPECT_FALSE(has("ba"));
  EXPECT_TRUE(has("\xE2\x96\x81t"));
  EXPECT_TRUE(has("he"));
  EXPECT_FALSE(has("t\xE2\x96\x81"));
  EXPECT_FALSE(has("ca"));
  EXPECT_TRUE(has(std::string("\0\0", 2)));  // the pair that packs to the empty-slot value
  EXPECT_FALSE(has(std::string("a\0", 2)));
  EXPECT_TRUE(has("\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF"));
  EXPECT_TRUE(has("x\xC3"));   // a lead byte clipped at the end of the token
  EXPECT_FALSE(CharPairSet().contains("a", "b"));
  EXPECT_FALSE(CharPairSet().contains(std::string("\0", 1), std::string("\0", 1)));
}

}  // namespace
}  // namespace llmos
