// SentencePiece BPE on small hand-built vocabularies: merge order, byte fallback, unknown
// tokens, special tokens, dummy prefix, decoding, malformed input.
#include "tokenizer/spm_tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "tokenizer/special_partition.h"

namespace llmos {
namespace {

constexpr const char* kSp = "\xE2\x96\x81";  // U+2581

std::string sp(const std::string& text) {  // spaces -> U+2581
  std::string out;
  for (char c : text) {
    if (c == ' ') {
      out += kSp;
    } else {
      out += c;
    }
  }
  return out;
}

struct VocabBuilder {
  Vocab vocab;
  VocabBuilder() {
    vocab.model = "llama";
    vocab.add_bos = true;
    add("<unk>", 0, TokenType::kUnknown);
    add("<s>", 0, TokenType::kControl);
    add("</s>", 0, TokenType::kControl);
    vocab.unk = 0;
    vocab.bos = 1;
    vocab.eos = 2;
  }
  TokenId add(const std::string& text, float score, TokenType type = TokenType::kNormal) {
    vocab.tokens.push_back(text);
    vocab.scores.push_back(score);
    vocab.types.push_back(type);
    return static_cast<TokenId>(vocab.tokens.size() - 1);
  }
  // <0x00>..<0xFF>; returns the id of <0x00>.
  TokenId add_bytes() {
    TokenId first = kNoToken;
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      const TokenId id = add(name, 0, TokenType::kByte);
      if (b == 0) first = id;
    }
    return first;
  }
};

// Straightforward O(n^2) SentencePiece BPE used as an oracle: repeatedly merge the adjacent
// pair whose concatenation is the highest-scoring token (leftmost on ties).
std::vector<TokenId> naive_encode_run(const SpmTokenizer& tok, const std::string& text,
                                      TokenId first_byte) {
  std::vector<std::string> pieces;
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<uint8_t>(text[i]);
    size_t len = lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    len = std::min(len, text.size() - i);
    pieces.push_back(text.substr(i, len));
    i += len;
  }
  while (true) {
    size_t best = pieces.size();
    float best_score = 0;
    for (size_t i = 0; i + 1 < pieces.size(); ++i) {
      const TokenId id = tok.find_token(pieces[i] + pieces[i + 1]);
      if (id == kNoToken) continue;
      const float score = tok.vocab().scores[id];
      if (best == pieces.size() || score > best_score) {
        best = i;
        best_score = score;
      }
    }
    if (best == pieces.size()) break;
    pieces[best] += pieces[best + 1];
    pieces.erase(pieces.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  std::vector<TokenId> ids;
  for (const std::string& piece : pieces) {
    const TokenId id = tok.find_token(piece);
    if (id != kNoToken) {
      ids.push_back(id);
    } else {
      for (char c : piece) ids.push_back(first_byte + static_cast<uint8_t>(c));
    }
  }
  return ids;
}

TEST(SpmTokenizer, MergesHighestScoringTokenFirst) {
  for (const bool ab_wins : {true, false}) {
    VocabBuilder b;
    const TokenId space = b.add(kSp, -10);
    const TokenId a = b.add("a", -10);
    b.add("b", -10);
    const TokenId c = b.add("c", -10);
    const TokenId ab = b.add("ab", ab_wins ? -1.0f : -2.0f);
    const TokenId bc = b.add("bc", ab_wins ? -2.0f : -1.0f);
    SpmTokenizer tok(b.vocab);
    const std::vector<TokenId> expected =
        ab_wins ? std::vector<TokenId>{space, ab, c} : std::vector<TokenId>{space, a, bc};
    EXPECT_EQ(tok.encode("abc", false), expected) << "ab_wins=" << ab_wins;
  }
}

TEST(SpmTokenizer, TiesGoToTheLeftmostPair) {
  VocabBuilder b;
  const TokenId space = b.add(kSp, -10);
  const TokenId a = b.add("a", -10);
  b.add("b", -10);
  const TokenId c = b.add("c", -10);
  const TokenId ab = b.add("ab", -1);
  b.add("bc", -1);
  const TokenId aa = b.add("aa", -1);
  SpmTokenizer tok(b.vocab);
  EXPECT_EQ(tok.encode("abc", false), (std::vector<TokenId>{space, ab, c}));
  EXPECT_EQ(tok.encode("aaa", false), (std::vector<TokenId>{space, aa, a}));
  EXPECT_EQ(tok.encode("aaaa", false), (std::vector<TokenId>{space, aa, aa}));
}

TEST(SpmTokenizer, MergesChainIntoLongerTokens) {
  VocabBuilder b;
  b.add(kSp, -10);
  b.add("h", -10);
  b.add("e", -10);
  b.add("l", -10);
  b.add("o", -10);
  b.add("ll", -1);
  b.add("he", -2);
  b.add("hell", -3);
  b.add("hello", -4);
  const TokenId word = b.add(sp(" hello"), -5);
  SpmTokenizer tok(b.vocab);
  EXPECT_EQ(tok.encode("hello", false), std::vector<TokenId>{word});
  // add_space_prefix off: no dummy prefix, so the word ends at "hello".
  Vocab v = b.vocab;
  v.add_space_prefix = false;
  SpmTokenizer raw(std::move(v));
  EXPECT_EQ(raw.encode("hello", false), std::vector<TokenId>{raw.find_token("hello")});
}

TEST(SpmTokenizer, UnknownCharactersFallBackToBytes) {
  VocabBuilder b;
  const TokenId byte0 = b.add_bytes();
  const TokenId space = b.add(kSp, -10);
  const TokenId a = b.add("a", -10);
  SpmTokenizer tok(b.vocab);
  // U+1F999 (llama emoji) = F0 9F A6 99
  const std::vector<TokenId> ids = tok.encode("a\xF0\x9F\xA6\x99", false);
  EXPECT_EQ(ids, (std::vector<TokenId>{space, a, byte0 + 0xF0, byte0 + 0x9F, byte0 + 0xA6,
                                       byte0 + 0x99}));
  EXPECT_EQ(tok.decode(ids), "a\xF0\x9F\xA6\x99");
  EXPECT_EQ(tok.token_to_piece(byte0 + 0x0A), "\n");
}

TEST(SpmTokenizer, UnknownTokenWhenNoByteTokens) {
  VocabBuilder b;
  const TokenId space = b.add(kSp, -10);
  const TokenId a = b.add("a", -10);
  SpmTokenizer tok(b.vocab);
  // One unknown token per character that is not in the vocab.
  EXPECT_EQ(tok.encode("a\xF0\x9F\xA6\x99\xC3\xA9", false),
            (std::vector<TokenId>{space, a, 0, 0}));
  EXPECT_EQ(tok.token_to_piece(0), "");
  EXPECT_EQ(tok.token_to_piece(0, /*special=*/true), "<unk>");

  Vocab no_unk = b.vocab;
  no_unk.unk = kNoToken;
  no_unk.types[0] = TokenType::kNormal;
  SpmTokenizer strict(std::move(no_unk));
  try {
    strict.encode("\xF0\x9F\xA6\x99", false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnsupported);
  }
}

TEST(SpmTokenizer, PiecesByTokenType) {
  VocabBuilder b;
  const TokenId byte0 = b.add_bytes();
  const TokenId word = b.add(sp(" a b"), -1);
  const TokenId user = b.add(sp("<tool> x"), 0, TokenType::kUserDefined);
  const TokenId unused = b.add("zz", 0, TokenType::kUnused);
  const TokenId undefined = b.add("yy", 0, TokenType::kUndefined);
  const TokenId bad_byte = b.add("<0xZZ>", 0, TokenType::kByte);
  SpmTokenizer tok(b.vocab);
  EXPECT_EQ(tok.token_to_piece(1), "");
  EXPECT_EQ(tok.token_to_piece(2), "");
  EXPECT_EQ(tok.token_to_piece(1, true), "<s>");
  EXPECT_EQ(tok.token_to_piece(word), " a b");
  EXPECT_EQ(tok.token_to_piece(word, true), " a b");
  EXPECT_EQ(tok.token_to_piece(user), sp("<tool> x"));  // user-defined: text as is
  EXPECT_EQ(tok.token_to_piece(unused), "");
  EXPECT_EQ(tok.token_to_piece(undefined), "");
  EXPECT_EQ(tok.token_to_piece(byte0 + 0xFF), "\xFF");
  EXPECT_EQ(tok.token_to_piece(bad_byte), "<0xZZ>");
  for (const TokenId bad : {-1, static_cast<TokenId>(b.vocab.size())}) {
    try {
      tok.token_to_piece(bad);
      FAIL() << "expected an error for id " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(SpmTokenizer, AddSpecialFollowsVocabFlags) {
  VocabBuilder b;
  const TokenId space = b.add(kSp, -10);
  const TokenId a = b.add("a", -10);
  SpmTokenizer tok(b.vocab);
  EXPECT_EQ(tok.encode("a", true), (std::vector<TokenId>{1, space, a}));
  EXPECT_EQ(tok.encode("a", false), (std::vector<TokenId>{space, a}));

  Vocab v = b.vocab;
  v.add_bos = false;
  v.add_eos = true;
  SpmTokenizer eos_only(std::move(v));
  EXPECT_EQ(eos_only.encode("a", true), (std::vector<TokenId>{space, a, 2}));

  Vocab no_bos = b.vocab;
  no_bos.bos = kNoToken;
  SpmTokenizer without(std::move(no_bos));
  EXPECT_EQ(without.encode("a", true), (std::vector<TokenId>{space, a}));
}

TEST(SpmTokenizer, EmptyInput) {
  VocabBuilder b;
  b.add(kSp, -10);
  SpmTokenizer tok(b.vocab);
  EXPECT_TRUE(tok.encode("", false).empty());
  EXPECT_EQ(tok.encode("", true), std::vector<TokenId>{1});
  EXPECT_EQ(tok.decode({}), "");
  EXPECT_EQ(tok.decode({1}), "");
}

TEST(SpmTokenizer, OnlySpaces) {
  VocabBuilder b;
  const TokenId s1 = b.add(kSp, -10);
  const TokenId s2 = b.add(sp("  "), -1);
  SpmTokenizer tok(b.vocab);
  // Dummy prefix + 3 spaces = 4 marks; equal-score pairs merge leftmost first.
  EXPECT_EQ(tok.encode("   ", false), (std::vector<TokenId>{s2, s2}));
  EXPECT_EQ(tok.encode("  ", false), (std::vector<TokenId>{s2, s1}));
  EXPECT_EQ(tok.encode(" ", false), (std::vector<TokenId>{s2}));
  for (const std::string text : {" ", "  ", "   ", "    "}) {
    EXPECT_EQ(tok.decode(tok.encode(text, true)), text) << "'" << text << "'";
  }
}

TEST(SpmTokenizer, InvalidUtf8FallsBackToBytes) {
  VocabBuilder b;
  const TokenId byte0 = b.add_bytes();
  b.add(kSp, -10);
  b.add("a", -10);
  b.add("b", -10);
  SpmTokenizer tok(b.vocab);
  const std::vector<std::string> inputs = {
      "\xFF", "\xFF\xFE", "a\x80" "b", "\xC3", "ab\xE2", "\xE2" "ab", "\xF0\x9F",
      std::string("a\0b", 3), "\xC0\xAF", "\xED\xA0\x80"};
  for (const std::string& text : inputs) {
    const std::vector<TokenId> ids = tok.encode(text, true);
    EXPECT_EQ(tok.decode(ids), text);
    for (const TokenId id : ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(static_cast<size_t>(id), b.vocab.size());
    }
  }
  // A truncated 3-byte sequence swallows the next two bytes as one piece, which is not a
  // token, so all three come out as bytes (as in llama.cpp).
  EXPECT_EQ(tok.encode("\xE2" "ab", false),
            (std::vector<TokenId>{tok.find_token(kSp), byte0 + 0xE2, byte0 + 'a', byte0 + 'b'}));
}

TEST(SpmTokenizer, ParseSpecialMatchesControlTokens) {
  VocabBuilder b;
  const TokenId byte0 = b.add_bytes();
  const TokenId space = b.add(kSp, -10);
  const TokenId a = b.add("a", -10);
  const TokenId space_a = b.add(sp(" a"), -1);
  SpmTokenizer tok(b.vocab);
  // After a special token the next text run gets the dummy prefix again.
  EXPECT_EQ(tok.encode("a<s>a</s>", false, true),
            (std::vector<TokenId>{space_a, 1, space_a, 2}));
  EXPECT_EQ(tok.encode("<unk>", false, true), std::vector<TokenId>{0});
  // Without parse_special the same characters are plain text.
  std::vector<TokenId> expected = {space, byte0 + '<', byte0 + 's', byte0 + '>', a};
  EXPECT_EQ(tok.encode("<s>a", false, false), expected);
  EXPECT_EQ(tok.decode(tok.encode("<s>a", false, false)), "<s>a");
  // decode: specials print empty by default, their text when asked.
  const std::vector<TokenId> ids = tok.encode("<s>a", true, true);
  EXPECT_EQ(ids, (std::vector<TokenId>{1, 1, space_a}));
  EXPECT_EQ(tok.decode(ids), "a");
  EXPECT_EQ(tok.decode(ids, true), "<s><s> a");
}

TEST(SpmTokenizer, UserDefinedTokensAlwaysMatch) {
  VocabBuilder b;
  b.add_bytes();
  const TokenId space_a = b.add(sp(" a"), -1);
  b.add(kSp, -10);
  b.add("a", -10);
  const TokenId tool = b.add("<tool>", 0, TokenType::kUserDefined);
  const TokenId tool_long = b.add("<tool>x", 0, TokenType::kUserDefined);
  SpmTokenizer tok(b.vocab);
  EXPECT_EQ(tok.encode("a<tool>a", false, false), (std::vector<TokenId>{space_a, tool, space_a}));
  // The longest special token claims its text first.
  EXPECT_EQ(tok.encode("<tool>x<tool>", false, false), (std::vector<TokenId>{tool_long, tool}));
  EXPECT_EQ(tok.decode(tok.encode("a<tool>", false)), "a<tool>");
}

TEST(SpecialPartition, SplitsAroundEveryOccurrence) {
  VocabBuilder b;
  const TokenId x = b.add("<x>", 0, TokenType::kControl);
  const TokenId xy = b.add("<x><y>", 0, TokenType::kControl);
  b.add("", 0, TokenType::kControl);  // empty specials are never matched
  const std::vector<TokenId> order = special_tokens_longest_first(b.vocab);
  ASSERT_FALSE(order.empty());
  EXPECT_EQ(order.front(), xy);
  const std::string text = "a<x><y><x>b<x>";
  const auto parts = partition_special_tokens(text, b.vocab, order, true);
  std::vector<std::pair<TokenId, std::string>> got;
  for (const TextFragment& f : parts) {
    got.emplace_back(f.token, text.substr(f.begin, f.end - f.begin));
  }
  const std::vector<std::pair<TokenId, std::string>> expected = {
      {kNoToken, "a"}, {xy, "<x><y>"}, {x, "<x>"}, {kNoToken, "b"}, {x, "<x>"}};
  EXPECT_EQ(got, expected);
  EXPECT_TRUE(partition_special_tokens("", b.vocab, order, true).empty());
  const auto plain = partition_special_tokens(text, b.vocab, order, false);
  ASSERT_EQ(plain.size(), 1u);
  EXPECT_TRUE(plain[0].is_text());
}

TEST(SpmTokenizer, DecodeRemovesOnlyTheDummyPrefixSpace) {
  VocabBuilder b;
  b.add_bytes();
  b.add(kSp, -10);
  b.add("a", -10);
  b.add(sp(" a"), -1);
  b.add(sp("  "), -2);
  SpmTokenizer tok(b.vocab);
  for (const std::string text : {"a", " a", "  a", "a a", "a\n a", "\n", " \n", "a "}) {
    EXPECT_EQ(tok.decode(tok.encode(text, true)), text) << "'" << text << "'";
    EXPECT_EQ(tok.decode(tok.encode(text, false)), text) << "'" << text << "'";
  }
  Vocab v = b.vocab;
  v.add_space_prefix = false;
  SpmTokenizer raw(std::move(v));
  EXPECT_EQ(raw.encode("a", false), std::vector<TokenId>{raw.find_token("a")});
  EXPECT_EQ(raw.decode(raw.encode(" a", false)), " a");
}

TEST(SpmTokenizer, DuplicateTextsResolveToTheLastId) {
  VocabBuilder b;
  b.add("a", -1);
  const TokenId second = b.add("a", -1);
  SpmTokenizer tok(b.vocab);
  EXPECT_EQ(tok.find_token("a"), second);
}

TEST(SpmTokenizer, RejectsInconsistentVocab) {
  VocabBuilder b;
  b.add("a", -1);
  auto expect_invalid = [](Vocab v) {
    try {
      SpmTokenizer tok(std::move(v));
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), StatusCode::kInvalidArgument) << e.what();
    }
  };
  Vocab v = b.vocab;
  v.scores.pop_back();
  expect_invalid(v);
  v = b.vocab;
  v.types.push_back(TokenType::kNormal);
  expect_invalid(v);
  v = b.vocab;
  v.bos = 99;
  expect_invalid(v);
  v = b.vocab;
  v.unk = -5;
  expect_invalid(v);
  expect_invalid(Vocab{});
  // Scores and types may be omitted altogether.
  Vocab bare;
  bare.tokens = {"a", "b", "ab"};
  SpmTokenizer tok(std::move(bare));
  EXPECT_EQ(tok.vocab().scores.size(), 3u);
  EXPECT_EQ(tok.token_to_piece(2), "ab");
}

TEST(SpmTokenizer, NanScoresDoNotBreakMerging) {
  VocabBuilder b;
  const TokenId space = b.add(kSp, -10);
  b.add("a", -10);
  b.add("b", -10);
  const TokenId c = b.add("c", -10);
  b.add("bc", std::numeric_limits<float>::quiet_NaN());
  const TokenId ab = b.add("ab", -5);
  SpmTokenizer tok(b.vocab);
  EXPECT_EQ(tok.encode("abc", false), (std::vector<TokenId>{space, ab, c}));
}

TEST(SpmTokenizer, MatchesNaiveReferenceOnRandomText) {
  VocabBuilder b;
  const TokenId byte0 = b.add_bytes();
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> score(-20.0f, 0.0f);
  const std::vector<std::string> alphabet = {"a", "b", "c", kSp, "\xC3\xA9"};
  // Every string of length 1..3 over the alphabet is a token, plus some longer ones.
  std::vector<std::string> level = {""};
  for (int len = 1; len <= 3; ++len) {
    std::vector<std::string> next;
    for (const std::string& prefix : level) {
      for (const std::string& ch : alphabet) next.push_back(prefix + ch);
    }
    for (const std::string& t : next) {
      if (len == 1 || rng() % 3 != 0) b.add(t, score(rng));
    }
    level = next;
  }
  for (const std::string t : {"abca", "aabb", "cccc", "abcab"}) b.add(t, score(rng));
  // Some exact ties, to exercise leftmost-first.
  b.vocab.scores[b.vocab.size() - 1] = b.vocab.scores[b.vocab.size() - 2];
  SpmTokenizer tok(b.vocab);

  const std::vector<std::string> chars = {"a", "b", "c", " ", "\xC3\xA9", "d", "\xF0\x9F\x98\x80"};
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    const int len = static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) text += chars[rng() % chars.size()];
    const std::vector<TokenId> got = tok.encode(text, false);
    const std::vector<TokenId> expected =
        text.empty() ? std::vector<TokenId>{} : naive_encode_run(tok, sp(" " + text), byte0);
    ASSERT_EQ(got, expected) << "text '" << text << "'";
    ASSERT_EQ(tok.decode(got), text);
  }
}

TEST(SpmTokenizer, LongRunsStayFast) {
  VocabBuilder b;
  b.add_bytes();
  b.add(kSp, -10);
  b.add("a", -10);
  b.add("aa", -1);
  b.add("aaaa", -2);
  SpmTokenizer tok(b.vocab);
  const std::string text(1 << 18, 'a');  // one 256 KiB word: quadratic merging would not finish
  const auto start = std::chrono::steady_clock::now();
  const std::vector<TokenId> ids = tok.encode(text, false);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_LT(seconds, 30.0);
}

}  // namespace
}  // namespace llmos
