// Byte-level BPE: merge order (rank, then leftmost), merges through texts outside the vocab,
// llama.cpp's byte fallback, ignore_merges for Llama-3 pre-tokenizers, special tokens,
// token_to_piece/decode, construction errors — on small hand-built vocabs; then the real GPT-2
// vocab: known ids, special tokens in text, and round trips on seeded random Unicode text.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/gguf_reader.h"
#include "support/test_paths.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/unicode.h"

namespace llmos {
namespace {

using Ids = std::vector<TokenId>;

// The byte-level spelling of raw text: each byte's GPT-2 stand-in character.
std::string enc(std::string_view raw) {
  std::string out;
  for (const char b : raw) unicode_append_utf8(out, byte_to_unicode(static_cast<uint8_t>(b)));
  return out;
}

// A small vocab: the ids are the positions in `tokens`.
Vocab make_vocab(std::vector<std::string> tokens, std::vector<std::string> merges,
                 std::string pre = "gpt-2") {
  Vocab v;
  v.model = "gpt2";
  v.pre = std::move(pre);
  v.tokens = std::move(tokens);
  v.merges = std::move(merges);
  v.types.assign(v.tokens.size(), TokenType::kNormal);
  return v;
}

const std::vector<std::string> kTokens = {
    "a", "b", "c", enc(" "), "ab", "bc", "abc", enc(" a"), "aa", "aaaa", "ccc", enc(" ab"),
};
enum : TokenId { A, B, C, SP, AB, BC, ABC, SP_A, AA, AAAA, CCC, SP_AB };

TEST(BpeTokenizer, MergesByRankThenLeftmost) {
  const BpeTokenizer tok(make_vocab(kTokens, {"a b", "b c", "ab c", enc(" ") + " a", "a a",
                                              "aa aa", "c c", "cc c", enc(" a") + " b"}));
  EXPECT_EQ(tok.num_merges(), 9u);
  EXPECT_EQ(tok.encode("abc", false), (Ids{ABC}));           // a+b (rank 0), then ab+c
  EXPECT_EQ(tok.encode("bc", false), (Ids{BC}));
  EXPECT_EQ(tok.encode("aaa", false), (Ids{AA, A}));          // the leftmost "a a" first
  EXPECT_EQ(tok.encode("aaaaa", false), (Ids{AAAA, A}));
  // " ab": "a b" (rank 0) beats " a" (rank 3), and " ab" is no rule.
  EXPECT_EQ(tok.encode(" ab", false), (Ids{SP, AB}));
}

TEST(BpeTokenizer, LowerRankWinsOverPosition) {
  // "b c" ranks before "a b": "abc" -> a + bc, and "a bc" is no rule.
  const BpeTokenizer tok(make_vocab(kTokens, {"b c", "a b", "ab c"}));
  EXPECT_EQ(tok.encode("abc", false), (Ids{A, BC}));
  // Duplicated rules keep their first rank; a rule without a space never applies.
  const BpeTokenizer dup(make_vocab(kTokens, {"b c", "abc", "a b", "b c", "ab c"}));
  EXPECT_EQ(dup.num_merges(), 3u);
  EXPECT_EQ(dup.encode("abc", false), (Ids{A, BC}));
}

TEST(BpeTokenizer, MergesThroughTextsOutsideTheVocab) {
  // "cc" is no token, but "c c" then "cc c" still builds the token "ccc".
  const BpeTokenizer tok(make_vocab(kTokens, {"c c", "cc c"}));
  EXPECT_EQ(tok.encode("ccc", false), (Ids{CCC}));
  // A piece that ends outside the vocab falls back to its bytes' one-character tokens.
  EXPECT_EQ(tok.encode("cc", false), (Ids{C, C}));
}

TEST(BpeTokenizer, ByteFallbackDropsWhatTheVocabLacks) {
  // As llama.cpp: a character with no token is looked up byte by byte of its stand-in's
  // UTF-8 and dropped when those are no tokens either ('d' here; U+00E9 -> "Ã©").
  const BpeTokenizer tok(make_vocab(kTokens, {"a b"}));
  EXPECT_EQ(tok.encode("adb", false), (Ids{A, B}));
  EXPECT_EQ(tok.encode("\u00E9", false), Ids{});
  std::vector<std::string> tokens = kTokens;
  tokens.push_back(enc("\xC3"));  // "Ã"
  tokens.push_back(enc("\xA9"));  // "©"
  const BpeTokenizer latin(make_vocab(tokens, {}));
  EXPECT_EQ(latin.encode("\u00E9", false), (Ids{12, 13}));
  EXPECT_EQ(latin.decode({12, 13}), "\u00E9");
}

TEST(BpeTokenizer, SpaceWordsAndPreTokenizer) {
  const BpeTokenizer tok(make_vocab(kTokens, {"a b", enc(" ") + " a", enc(" a") + " b"}));
  // gpt-2 splits "ab ab" into "ab" and " ab"; in the second, "a b" (rank 0) goes first and
  // leaves " " + "ab", which is no rule. With " a" ranked first, " a" + "b" merge fully.
  EXPECT_EQ(tok.encode("ab ab", false), (Ids{AB, SP, AB}));
  const BpeTokenizer space_first(
      make_vocab(kTokens, {enc(" ") + " a", enc(" a") + " b", "a b"}));
  EXPECT_EQ(space_first.encode("ab ab", false), (Ids{AB, SP_AB}));
  EXPECT_EQ(space_first.encode("  a", false), (Ids{SP, SP_A}));  // \s+(?!\S) keeps one space
}

TEST(BpeTokenizer, IgnoreMergesTakesWholeWordTokens) {
  // Only "b c" merges, yet Llama-3 style vocabs emit a word that is a token as that token.
  const auto vocab = [](const char* pre) { return make_vocab(kTokens, {"b c"}, pre); };
  EXPECT_EQ(BpeTokenizer(vocab("gpt-2")).encode("abc", false), (Ids{A, BC}));
  EXPECT_EQ(BpeTokenizer(vocab("llama-bpe")).encode("abc", false), (Ids{ABC}));
  EXPECT_EQ(BpeTokenizer(vocab("llama-bpe")).encode("abcc", false), (Ids{A, BC, C}));
}

Vocab special_vocab() {
  std::vector<std::string> tokens = kTokens;
  tokens.push_back("<|end|>");  // 12: control
  tokens.push_back("<tool>");   // 13: user-defined
  tokens.push_back("<s>");      // 14: control, bos
  Vocab v = make_vocab(tokens, {"a b"});
  v.types[12] = TokenType::kControl;
  v.types[13] = TokenType::kUserDefined;
  v.types[14] = TokenType::kControl;
  v.bos = 14;
  v.eos = 12;
  return v;
}

TEST(BpeTokenizer, SpecialTokensInText) {
  const BpeTokenizer tok(special_vocab());
  EXPECT_EQ(tok.encode("ab<|end|>c", false, true), (Ids{AB, 12, C}));
  // Without parse_special the control token is text ('<', '|', ... are no tokens here).
  EXPECT_EQ(tok.encode("ab<|end|>c", false, false), (Ids{AB, C}));
  // User-defined tokens are always matched.
  EXPECT_EQ(tok.encode("a<tool>b", false, false), (Ids{A, 13, B}));
  // BOS/EOS only when the vocab asks for them.
  EXPECT_EQ(tok.encode("ab", true), (Ids{AB}));
  Vocab v = special_vocab();
  v.add_bos = true;
  v.add_eos = true;
  const BpeTokenizer with_bos(std::move(v));
  EXPECT_EQ(with_bos.encode("ab", true), (Ids{14, AB, 12}));
  EXPECT_EQ(with_bos.encode("ab", false), (Ids{AB}));
  EXPECT_EQ(with_bos.encode("", true), (Ids{14, 12}));
}

TEST(BpeTokenizer, PiecesAndDecode) {
  std::vector<std::string> tokens = kTokens;
  tokens.push_back("<|end|>");
  tokens.push_back("<tool>");
  tokens.push_back("x\u20AC");  // 14: "€" is no byte stand-in
  Vocab v = make_vocab(tokens, {"a b"});
  v.types[12] = TokenType::kControl;
  v.types[13] = TokenType::kUserDefined;
  const BpeTokenizer tok(std::move(v));
  EXPECT_EQ(tok.token_to_piece(SP_A), " a");
  EXPECT_EQ(tok.token_to_piece(SP), " ");
  EXPECT_EQ(tok.token_to_piece(12), "");
  EXPECT_EQ(tok.token_to_piece(12, true), "<|end|>");
  EXPECT_EQ(tok.token_to_piece(13), "<tool>");
  // llama.cpp's marker for a character that stands for no byte.
  EXPECT_EQ(tok.token_to_piece(14), "x[UNK_BYTE_0xe282acx\u20AC]");
  EXPECT_EQ(tok.decode({A, SP_A, 12, B}), "a ab");
  EXPECT_EQ(tok.decode({A, SP_A, 12, B}, true), "a a<|end|>b");
  EXPECT_THROW(tok.token_to_piece(15), Error);
  EXPECT_THROW(tok.token_to_piece(-1), Error);
}

TEST(BpeTokenizer, ConstructionErrors) {
  try {
    BpeTokenizer tok(make_vocab(kTokens, {}, "no-such-pre"));
    ADD_FAILURE() << "expected kUnsupported";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("'no-such-pre'"), std::string::npos) << e.what();
  }
  Vocab bad_bos = make_vocab(kTokens, {});
  bad_bos.bos = 100;
  EXPECT_THROW(BpeTokenizer{std::move(bad_bos)}, Error);
  Vocab bad_types = make_vocab(kTokens, {});
  bad_types.types.pop_back();
  EXPECT_THROW(BpeTokenizer{std::move(bad_types)}, Error);
  EXPECT_THROW(BpeTokenizer{make_vocab({}, {})}, Error);
  // An empty pre means "default", as llama.cpp does for files without the key.
  EXPECT_EQ(BpeTokenizer(make_vocab(kTokens, {}, "")).pre_tokenizer().name(), "default");
}

// ---- the real GPT-2 vocab ----

constexpr const char* kGpt2Vocab = "vocab/ggml-vocab-gpt-2.gguf";

std::unique_ptr<Tokenizer> gpt2() {
  return Tokenizer::from_gguf(gguf::File::open(test::shared_path(kGpt2Vocab)));
}

TEST(BpeTokenizerGpt2, MetadataAndKnownIds) {
  LLMOS_REQUIRE_SHARED(kGpt2Vocab);
  const auto tok = gpt2();
  const Vocab& v = tok->vocab();
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "gpt-2");
  EXPECT_EQ(v.size(), 50257u);
  EXPECT_EQ(v.merges.size(), 50000u);
  EXPECT_EQ(v.bos, 50256);
  EXPECT_FALSE(v.add_bos);
  EXPECT_EQ(v.types[50256], TokenType::kControl);
  EXPECT_EQ(tok->encode("Hello world", false), (Ids{15496, 995}));
  EXPECT_EQ(tok->encode(" Hello world", false), (Ids{18435, 995}));
  EXPECT_EQ(tok->token_to_piece(995), " world");
  EXPECT_EQ(tok->token_to_piece(198), "\n");
  EXPECT_EQ(tok->token_to_piece(50256), "");
  EXPECT_EQ(tok->token_to_piece(50256, true), "<|endoftext|>");
}

TEST(BpeTokenizerGpt2, SpecialTokenInText) {
  LLMOS_REQUIRE_SHARED(kGpt2Vocab);
  const auto tok = gpt2();
  EXPECT_EQ(tok->encode("Hi<|endoftext|>Hi", false, true), (Ids{17250, 50256, 17250}));
  const Ids plain = tok->encode("<|endoftext|>", false, false);
  std::vector<std::string> pieces;
  for (const TokenId id : plain) pieces.push_back(tok->token_to_piece(id));
  EXPECT_EQ(pieces, (std::vector<std::string>{"<", "|", "end", "of", "text", "|", ">"}));
  EXPECT_EQ(tok->decode(plain), "<|endoftext|>");
}

// Seeded random text over all planes: ASCII, whitespace runs, Latin/Greek/Cyrillic, CJK,
// Hangul, combining marks, emoji, supplementary ideographs, private use planes.
std::string random_unicode(std::mt19937& rng, size_t n) {
  static const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E},       {0x20, 0x20},       {0x09, 0x0D},     {0xA0, 0x24F},
      {0x300, 0x36F},     {0x370, 0x4FF},     {0x600, 0x6FF},   {0x900, 0x97F},
      {0x2000, 0x206F},   {0x3000, 0x30FF},   {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3},
      {0xE000, 0xF8FF},   {0xFF00, 0xFFEF},   {0x1F300, 0x1FAFF}, {0x1D400, 0x1D7FF},
      {0x20000, 0x2A6DF}, {0xE0000, 0xE007F}, {0xF0000, 0x10FFFF}};
  std::uniform_int_distribution<size_t> pick(0, ranges.size() - 1);
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    const auto [lo, hi] = ranges[pick(rng)];
    const char32_t c = std::uniform_int_distribution<uint32_t>(lo, hi)(rng);
    const int repeat = c == ' ' ? std::uniform_int_distribution<int>(1, 5)(rng) : 1;
    for (int k = 0; k < repeat; ++k) unicode_append_utf8(s, c);
  }
  return s;
}

TEST(BpeTokenizerGpt2, RoundTripsOnRandomUnicode) {
  LLMOS_REQUIRE_SHARED(kGpt2Vocab);
  const auto tok = gpt2();
  std::mt19937 rng(20240611);
  for (int i = 0; i < 300; ++i) {
    const std::string text = random_unicode(rng, 1 + static_cast<size_t>(i % 64));
    const Ids ids = tok->encode(text, false);
    ASSERT_EQ(tok->decode(ids), text) << "case " << i;
    for (const TokenId id : ids) ASSERT_TRUE(id >= 0 && id < 50257);
  }
}

TEST(BpeTokenizerGpt2, InvalidUtf8BecomesReplacementCharacters) {
  LLMOS_REQUIRE_SHARED(kGpt2Vocab);
  const auto tok = gpt2();
  // llama.cpp decodes the text first; each invalid byte turns into U+FFFD.
  EXPECT_EQ(tok->decode(tok->encode("a\xFF" "b\xC3", false)), "a\uFFFD" "b\uFFFD");
  EXPECT_EQ(tok->encode("", false), Ids{});
}

TEST(BpeTokenizerGpt2, Throughput) {
  LLMOS_REQUIRE_SHARED(kGpt2Vocab);
  const auto tok = gpt2();
  std::string text;
  while (text.size() < (1u << 20)) {
    text += "The quick brown fox jumps over the lazy dog; it's 2024, isn't it? ";
  }
  const auto start = std::chrono::steady_clock::now();
  const Ids ids = tok->encode(text, false);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("encoded %zu bytes into %zu tokens at %.2f MB/s (this build type)\n", text.size(),
              ids.size(), text.size() / seconds / 1e6);
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_LT(seconds, 60.0);  // generous for Debug + sanitizers; catches quadratic behaviour
}

}  // namespace
}  // namespace llmos
