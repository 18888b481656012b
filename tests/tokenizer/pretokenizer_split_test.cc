// Pre-tokenizers (tokenizer.ggml.pre): each one's word split on its edge cases (contractions,
// digit grouping, whitespace runs with \s+(?!\S), line breaks, CJK, emoji, combining marks,
// non-ASCII whitespace), written out by hand from the regexes and cross-checked against
// Python's `regex` module applied the way llama.cpp chains them; the hand-written fast
// splitters against the generic regex engine on seeded random text; aliases; errors.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace llmos {
namespace {

struct SplitCase {
  const char* pre;
  const char* text;
  std::vector<std::string> words;
};

// Expected words per pre-tokenizer. Notes on the less obvious ones:
//  - gpt-2 has no trailing \s+: a single whitespace before a non-space is left unmatched and
//    becomes a word of its own (the "\t" cases); a run of n spaces before a word gives n-1.
//  - gpt-2 is case-sensitive ('S is not a contraction); llama-bpe and qwen2 are not.
//  - llama-bpe groups digits by three (\p{N}{1,3}), qwen2 and starcoder take one at a time.
//  - deepseek-llm's later regexes split earlier words again, e.g. "\u3000\u3001": U+3000 is
//    whitespace (seen as U+000B by llama.cpp), U+3001 falls in its CJK range.
const std::vector<SplitCase> kCases = {
    {"gpt-2", "Hello world",
     {"Hello", " world"}},
    {"gpt-2", "I'm can't we'll they've she'd you're IT'S",
     {"I", "'m", " can", "'t", " we", "'ll", " they", "'ve", " she", "'d", " you", "'re", " IT",
      "'", "S"}},
    {"gpt-2", "  two  spaces   ",
     {" ", " two", " ", " spaces", "   "}},
    {"gpt-2", "tab\there\t\tx",
     {"tab", "\t", "here", "\t", "\t", "x"}},
    {"gpt-2", "123456 7 a1b2",
     {"123456", " 7", " a", "1", "b", "2"}},
    {"gpt-2", "Hello!!! ...?",
     {"Hello", "!!!", " ...?"}},
    {"gpt-2", "line\n\nnext\n",
     {"line", "\n", "\n", "next", "\n"}},
    {"gpt-2", "\u4F60\u597D\u4E16\u754C \u4F60\u597D",
     {"\u4F60\u597D\u4E16\u754C", " \u4F60\u597D"}},
    {"gpt-2", "emoji \U0001F600\U0001F44D!",
     {"emoji", " \U0001F600\U0001F44D!"}},
    {"gpt-2", "cafe\u0301 na\u00EFve",
     {"cafe", "\u0301", " na\u00EFve"}},
    {"gpt-2", "x\u00A0y\u3000\u3000z",
     {"x", "\u00A0", "y", "\u3000", "\u3000", "z"}},
    {"llama-bpe", "I'M HE'LL we'Re it's",
     {"I", "'M", " HE", "'LL", " we", "'Re", " it", "'s"}},
    {"llama-bpe", "1234567 12 345",
     {"123", "456", "7", " ", "12", " ", "345"}},
    {"llama-bpe", "a\r\n\r\nb",
     {"a", "\r\n\r\n", "b"}},
    {"llama-bpe", "hello   world  ",
     {"hello", "  ", " world", "  "}},
    {"llama-bpe", "!!!\n\n  \n  x",
     {"!!!\n\n", "  \n", " ", " x"}},
    {"llama-bpe", "abc123def $100.00",
     {"abc", "123", "def", " $", "100", ".", "00"}},
    {"llama-bpe", "\u65E5\u672C\u8A9E\u30C6\u30AD\u30B9\u30C8 \U0001F44D\U0001F44D",
     {"\u65E5\u672C\u8A9E\u30C6\u30AD\u30B9\u30C8", " \U0001F44D\U0001F44D"}},
    {"llama-bpe", "\u0661\u0662\u0663\u0664 \u00BD\u00B2",
     {"\u0661\u0662\u0663", "\u0664", " ", "\u00BD\u00B2"}},
    {"qwen2", "1234 I'VE a  b",
     {"1", "2", "3", "4", " I", "'VE", " a", " ", " b"}},
    {"qwen2", "x\n\n\ny  \u4E2D\u6587",
     {"x", "\n\n\n", "y", " ", " \u4E2D\u6587"}},
    {"deepseek-llm", "Hello \u4E16\u754C 123",
     {"Hello", " ", "\u4E16\u754C", " ", "123"}},
    {"deepseek-llm", "\u0391\u0392\u0393 abc \uFF01\uFF1F x  ",
     {"\u0391\u0392\u0393", " abc", " \uFF01\uFF1F", " x", "  "}},
    {"deepseek-llm", "a\nb \uD55C\uAD6D\uC5B4 text",
     {"a", "\n", "b", " ", "\uD55C\uAD6D\uC5B4", " text"}},
    {"deepseek-llm", "\u3000\u3001end",
     {"\u3000", "\u3001", "end"}},
    {"deepseek-coder", "def f(x):\n  return x+1",
     {"def", " f", "(", "x", "):", "\n", " ", " return", " x", "+", "1"}},
    {"deepseek-coder", "\u4E2D\u6587abc123 \u00E9t\u00E9!",
     {"\u4E2D\u6587", "abc", "1", "2", "3", " \u00E9t\u00E9", "!"}},
    {"falcon", "Hello, world! 1234567",
     {"Hello", ",", " world", "!", " ", "123", "456", "7"}},
    {"falcon", "a$b~c`d 12",
     {"a", "$", "b", "~", "c", "`", "d", " 12"}},
    {"starcoder", "x = 12345",
     {"x", " =", " ", "1", "2", "3", "4", "5"}},
    {"starcoder", "abc123 456 don't",
     {"abc", "1", "2", "3", " ", "4", "5", "6", " don", "'t"}},
    {"default", "Hello, world! 1234567 $5",
     {"Hello", ",", " world", "!", " ", "123", "456", "7", " ", "$", "5"}},
    {"default", "a^b|c <tag> 9999",
     {"a", "^", "b", "|", "c", " ", "<", "tag", ">", " ", "999", "9"}},
};

TEST(PreTokenizerSplit, EdgeCasesPerPreTokenizer) {
  for (const SplitCase& c : kCases) {
    const PreTokenizer pre(c.pre);
    EXPECT_EQ(pre.split_words(c.text), c.words) << c.pre << ": '" << c.text << "'";
  }
}

TEST(PreTokenizerSplit, AliasesShareTheirTypesRules) {
  const std::string text = "I'm 1234567 tokens\n\n  long,   OK? \u4F60\u597D";
  const auto split = [&](const char* name) { return PreTokenizer(name).split_words(text); };
  for (const char* alias : {"mpt", "olmo", "phi-2", "jais"}) {
    EXPECT_EQ(split(alias), split("gpt-2"));
  }
  for (const char* alias : {"smollm", "refact", "command-r", "codeshell"}) {
    EXPECT_EQ(split(alias), split("starcoder"));
  }
  for (const char* alias : {"llama3", "llama-v3", "falcon3", "dbrx", "smaug-bpe"}) {
    EXPECT_EQ(split(alias), split("llama-bpe"));
  }
  for (const char* alias : {"deepseek-r1-qwen", "stablelm2", "megrez"}) {
    EXPECT_EQ(split(alias), split("qwen2"));
  }
  // The three families really differ on this text.
  EXPECT_NE(split("gpt-2"), split("llama-bpe"));
  EXPECT_NE(split("qwen2"), split("llama-bpe"));
  EXPECT_NE(split("starcoder"), split("gpt-2"));
}

TEST(PreTokenizerSplit, FlagsPerType) {
  EXPECT_TRUE(PreTokenizer("llama-bpe").ignore_merges());
  EXPECT_FALSE(PreTokenizer("gpt-2").ignore_merges());
  EXPECT_FALSE(PreTokenizer("qwen2").ignore_merges());
  EXPECT_TRUE(PreTokenizer::default_add_bos("llama-bpe"));
  EXPECT_TRUE(PreTokenizer::default_add_bos("llama3"));
  EXPECT_FALSE(PreTokenizer::default_add_bos("qwen2"));
  EXPECT_FALSE(PreTokenizer::default_add_bos("gpt-2"));
  EXPECT_FALSE(PreTokenizer::default_add_bos("no-such-pre"));
  EXPECT_EQ(PreTokenizer("").name(), "default");
  EXPECT_EQ(PreTokenizer("").patterns(), PreTokenizer("default").patterns());
  EXPECT_EQ(PreTokenizer("default").patterns().size(), 4u);
  EXPECT_EQ(PreTokenizer("deepseek-llm").patterns().size(), 6u);
}

TEST(PreTokenizerSplit, UnknownNameIsUnsupportedAndNamed) {
  for (const char* name : {"rwkv-world", "gpt2", "LLAMA-BPE", "no-such-pre"}) {
    EXPECT_FALSE(PreTokenizer::is_supported(name)) << name;
    try {
      PreTokenizer pre(name);
      ADD_FAILURE() << "expected kUnsupported for '" << name << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), StatusCode::kUnsupported);
      EXPECT_NE(std::string(e.what()).find(std::string("'") + name + "'"), std::string::npos)
          << e.what();
    }
  }
  for (const std::string_view name : PreTokenizer::supported_names()) {
    EXPECT_TRUE(PreTokenizer::is_supported(name)) << name;
  }
}

TEST(PreTokenizerSplit, InvalidUtf8BecomesReplacementCharacters) {
  // As in llama.cpp: each byte that starts no complete sequence is one U+FFFD.
  const PreTokenizer pre("gpt-2");
  EXPECT_EQ(pre.split_words("a\xFF" "b"), (std::vector<std::string>{"a", "\uFFFD", "b"}));
  EXPECT_EQ(pre.split_words("\xE4\xBD"), (std::vector<std::string>{"\uFFFD\uFFFD"}));
  EXPECT_TRUE(pre.split_words("").empty());
}

// A seeded random mix of what pre-tokenizers care about.
std::string random_text(std::mt19937& rng, size_t n) {
  static const std::vector<std::string> pool = {
      "a", "Z", "q", "0", "7", " ", " ", "  ", "\t", "\n", "\r", "\r\n", "'", "'s", "'T",
      "'ll", "'RE", "'x", ".", ",", "!", "?", "-", "(", ")", "$", "~", "`", "^", "|", "<",
      "\u00E9", "\u00C9", "\u00DF", "\u03A9", "\u0436", "\u4E2D", "\u6587", "\u3042",
      "\u30AB", "\uD55C", "\u0661", "\uFF11", "\u00BD", "\u0301", "\u064E", "\U0001F600",
      "\U0001F44D", "\u00A0", "\u3000", "\u2003", "\u0085", "\u2026", "\u3002", "\uFF0C",
      "\u201C", "\u2014", "\u20AC", "\u200D", "\uFF21", "\uFF01", "\U0001D400", "\U00020000"};
  std::uniform_int_distribution<size_t> pick(0, pool.size() - 1);
  std::string s;
  for (size_t i = 0; i < n; ++i) s += pool[pick(rng)];
  return s;
}

// The chain of regexes, run by the generic engine only (no hand-written splitters).
std::vector<std::string> split_with_regex_only(const PreTokenizer& pre, std::string_view text) {
  std::vector<char32_t> cpts;
  unicode_decode_lossy(text, cpts);
  std::vector<uint16_t> flags(cpts.size());
  for (size_t i = 0; i < cpts.size(); ++i) flags[i] = unicode_flags(cpts[i]);
  std::vector<uint32_t> ends;
  if (!cpts.empty()) ends.push_back(static_cast<uint32_t>(cpts.size()));
  for (const std::string& pattern : pre.patterns()) {
    const Regex re(pattern);
    std::vector<uint32_t> next;
    size_t begin = 0;
    for (const uint32_t end : ends) {
      re.split({cpts.data(), flags.data(), begin, end}, next);
      begin = end;
    }
    ends.swap(next);
  }
  std::vector<std::string> words;
  size_t begin = 0;
  for (const uint32_t end : ends) {
    std::string w;
    for (size_t i = begin; i < end; ++i) unicode_append_utf8(w, cpts[i]);
    words.push_back(std::move(w));
    begin = end;
  }
  return words;
}

TEST(PreTokenizerSplit, FastSplittersMatchTheRegexOnRandomText) {
  // gpt-2 and starcoder/default/falcon use the GPT-2 splitter, llama-bpe the Llama-3 one,
  // qwen2 the Qwen2 one; the others run the regex engine both ways (a consistency check).
  std::mt19937 rng(1234);
  for (const std::string_view name : {"gpt-2", "llama-bpe", "qwen2", "starcoder", "default",
                                      "falcon", "deepseek-llm", "deepseek-coder"}) {
    const PreTokenizer pre(name);
    for (int i = 0; i < 300; ++i) {
      const std::string text = random_text(rng, 1 + static_cast<size_t>(i % 40));
      ASSERT_EQ(pre.split_words(text), split_with_regex_only(pre, text))
          << name << ": '" << text << "'";
    }
  }
}

TEST(PreTokenizerSplit, WordsCoverTheTextAndLongRunsAreFine) {
  // Long runs of one kind stress the backtracking (\s+(?!\S), \s*[\r\n]+) and the repeats.
  const std::vector<std::string> texts = {
      std::string(20000, 'a'), std::string(20000, ' '), std::string(20000, '7'),
      std::string(10000, ' ') + "x", std::string(10000, '\n') + "  y",
      [] {
        std::string s;
        for (int i = 0; i < 5000; ++i) s += "\u00E9\u4E2D";
        return s;
      }()};
  std::mt19937 rng(99);
  for (const std::string_view name : PreTokenizer::supported_names()) {
    const PreTokenizer pre(name);
    for (const std::string& text : texts) {
      std::string joined;
      for (const std::string& w : pre.split_words(text)) {
        EXPECT_FALSE(w.empty());
        joined += w;
      }
      EXPECT_EQ(joined, text) << name;
    }
    for (int i = 0; i < 20; ++i) {
      const std::string text = random_text(rng, 200);
      std::string joined;
      for (const std::string& w : pre.split_words(text)) joined += w;
      EXPECT_EQ(joined, text) << name;
    }
  }
}

}  // namespace
}  // namespace llmos
