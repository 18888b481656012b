// The pre-tokenizer regex engine: ECMAScript matching semantics (leftmost match, ordered
// alternation, greedy/lazy backtracking, atomic lookahead, empty-iteration rule), llama.cpp's
// view of the text (categories, '~' not in \p{S}, non-ASCII whitespace seen as U+000B),
// std::regex_iterator's split with gaps and empty matches, and errors for what it refuses.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace llmos {
namespace {

struct Text {
  std::vector<char32_t> cpts;
  std::vector<uint16_t> flags;
  explicit Text(std::string_view utf8) {
    unicode_decode_lossy(utf8, cpts);
    for (const char32_t c : cpts) flags.push_back(unicode_flags(c));
  }
  RegexSubject all() const { return {cpts.data(), flags.data(), 0, cpts.size()}; }
  std::string slice(size_t b, size_t e) const {
    std::string s;
    for (size_t i = b; i < e; ++i) unicode_append_utf8(s, cpts[i]);
    return s;
  }
};

// The first match in the whole text, or "<none>".
std::string first_match(std::string_view pattern, std::string_view text) {
  const Regex re(pattern);
  const Text t(text);
  size_t b = 0, e = 0;
  if (!re.search(t.all(), 0, false, false, &b, &e)) return "<none>";
  return t.slice(b, e);
}

std::vector<std::string> split(std::string_view pattern, std::string_view text) {
  const Regex re(pattern);
  const Text t(text);
  std::vector<uint32_t> ends;
  re.split(t.all(), ends);
  std::vector<std::string> words;
  size_t b = 0;
  for (const uint32_t e : ends) {
    words.push_back(t.slice(b, e));
    b = e;
  }
  return words;
}

using Words = std::vector<std::string>;

TEST(PreTokenizerRegex, AlternationIsOrderedNotLongest) {
  EXPECT_EQ(first_match("a|ab", "ab"), "a");
  EXPECT_EQ(first_match("ab|a", "ab"), "ab");
  EXPECT_EQ(first_match("'s|'t| ?x+", "  xx's"), " xx");  // leftmost start wins first
  EXPECT_EQ(first_match("b|a", "ab"), "a");
}

TEST(PreTokenizerRegex, QuantifiersBacktrack) {
  EXPECT_EQ(first_match("a+", "caaab"), "aaa");
  EXPECT_EQ(first_match("a+?", "aaa"), "a");
  EXPECT_EQ(first_match("a*?b", "aaab"), "aaab");
  EXPECT_EQ(first_match("a{2,3}", "aaaa"), "aaa");
  EXPECT_EQ(first_match("a{2}", "aaaa"), "aa");
  EXPECT_EQ(first_match("a{2,}", "aaaa"), "aaaa");
  EXPECT_EQ(first_match("a{3}", "aa"), "<none>");
  EXPECT_EQ(first_match("(?:ab)+", "ababa"), "abab");
  EXPECT_EQ(first_match("(a|ab)(c|bcd)", "abcd"), "abcd");  // backtracks into the group
  EXPECT_EQ(first_match("x?x", "x"), "x");
  // An iteration that matches nothing ends a repeat instead of looping.
  EXPECT_EQ(first_match("(?:a?)*b", "aab"), "aab");
  EXPECT_EQ(first_match("(?:a|)*", "aa"), "aa");
}

TEST(PreTokenizerRegex, WhitespaceLookaheadKeepsTheLastSpace) {
  EXPECT_EQ(first_match(R"(\s+(?!\S))", "   x"), "  ");
  EXPECT_EQ(first_match(R"(\s+(?!\S))", "   "), "   ");  // at the end: all of it
  EXPECT_EQ(first_match(R"(\s+(?!\S))", " x"), "<none>");
  EXPECT_EQ(first_match(R"(\s*[\r\n]+)", "  \n \n  x"), "  \n \n");
  EXPECT_EQ(first_match("a(?=b)", "acab"), "a");
  EXPECT_EQ(split("a(?=b)", "acab"), (Words{"ac", "a", "b"}));
  EXPECT_EQ(first_match("a(?!b)", "abac"), "a");
  EXPECT_EQ(split("a(?!b)", "abac"), (Words{"ab", "a", "c"}));
}

TEST(PreTokenizerRegex, ClassesAndEscapes) {
  EXPECT_EQ(first_match("[a-c]+", "xxbcaz"), "bca");
  EXPECT_EQ(first_match("[^a-c]+", "abxyzc"), "xyz");
  EXPECT_EQ(first_match(R"([\-\]\\]+)", "a-]\\b"), "-]\\");
  EXPECT_EQ(first_match("[-a]+", "b-a-"), "-a-");
  EXPECT_EQ(first_match(R"([\r\n]+)", "a\r\n\nb"), "\r\n\n");
  EXPECT_EQ(first_match(R"(\x41\u0042)", "zAB"), "AB");
  EXPECT_EQ(first_match(R"(\d+)", "ab\u0661\u0662 42"), "42");  // \d is ASCII only
  EXPECT_EQ(first_match(R"(\w+)", "\u00E9t\u00E9_1"), "t");
  EXPECT_EQ(first_match(".+", "ab\ncd"), "ab");
  EXPECT_EQ(first_match("[(|)]+", "a(|)b"), "(|)");  // no special meaning inside a class
}

TEST(PreTokenizerRegex, UnicodeCategories) {
  EXPECT_EQ(first_match(R"(\p{L}+)", "12 \u00E9t\u00E9\u4E2D\u6587x!"),
            "\u00E9t\u00E9\u4E2D\u6587x");
  EXPECT_EQ(first_match(R"(\p{N}+)", "x\u0661\u00BD\u2167 9"), "\u0661\u00BD\u2167");
  EXPECT_EQ(first_match(R"(\p{P}+)", "a\u3001\u00BF!\u2014b"), "\u3001\u00BF!\u2014");
  EXPECT_EQ(first_match(R"(\p{M}+)", "e\u0301\u0308x"), "\u0301\u0308");
  EXPECT_EQ(first_match(R"(\p{S}+)", "a\u20AC$+\U0001F600b"), "\u20AC$+\U0001F600");
  // llama.cpp spells every letter subcategory as "any letter".
  EXPECT_EQ(first_match(R"(\p{Lu}+)", "1abC\u00E9"), "abC\u00E9");
  // llama.cpp's ASCII stand-in for \p{S} has no '~' (Unicode puts it in Sm).
  EXPECT_EQ(first_match(R"(\p{S}+)", "~~$~"), "$");
  EXPECT_EQ(first_match(R"([^\s\p{L}\p{N}]+)", "ab~!\u00A0c"), "~!");
}

TEST(PreTokenizerRegex, NonAsciiWhitespaceIsSeenAsVerticalTab) {
  // \s is White_Space; U+3000 and U+00A0 are, U+200B is not.
  EXPECT_EQ(first_match(R"(\s+)", "a\u3000\u00A0\u2028b"), "\u3000\u00A0\u2028");
  EXPECT_EQ(first_match(R"(\s+)", "a\u200Bb"), "<none>");
  // A literal range never matches non-ASCII whitespace (llama.cpp hands std::regex U+000B).
  EXPECT_EQ(first_match("[\u3000-\u3002]+", "\u3000\u3001\u3002"), "\u3001\u3002");
  EXPECT_EQ(first_match("[\\x0B]+", "a\u3000\u2003b"), "\u3000\u2003");
  EXPECT_EQ(first_match("[^a]+", "a\u3000"), "\u3000");
}

TEST(PreTokenizerRegex, CaseInsensitiveGroups) {
  EXPECT_EQ(first_match("(?i:'s|'ll)", "x'LL"), "'LL");
  EXPECT_EQ(first_match("(?i:[a-c]+)x", "zABcx"), "ABcx");
  EXPECT_EQ(first_match("(?i:k)", "\u212A"), "\u212A");  // KELVIN SIGN lowercases to k
  EXPECT_EQ(first_match("(?i:\u00E9)", "\u00C9"), "\u00C9");
  EXPECT_EQ(first_match("(?i:a)B", "Ab AB"), "AB");  // the flag ends with its group
}

TEST(PreTokenizerRegex, AnchorsAndWordBoundaries) {
  EXPECT_EQ(first_match(R"(\s+$)", "a  b   "), "   ");
  EXPECT_EQ(first_match("^a", "ba"), "<none>");
  EXPECT_EQ(split("^a", "aaa"), (Words{"a", "aa"}));
  EXPECT_EQ(first_match(R"(\bx\w*)", "axe xyz"), "xyz");
  EXPECT_EQ(first_match(R"(\Bx)", "xax"), "x");
}

TEST(PreTokenizerRegex, SplitKeepsGapsAndEmptyMatchesAsRegexIterator) {
  EXPECT_EQ(split("[0-9]+", "ab12cd345"), (Words{"ab", "12", "cd", "345"}));
  EXPECT_EQ(split("[0-9]+", "abc"), (Words{"abc"}));
  EXPECT_EQ(split("[0-9]+", ""), Words{});
  // Empty matches split the gaps (std::regex_iterator retries non-empty, then moves on).
  EXPECT_EQ(split("x*", "abc"), (Words{"a", "b", "c"}));
  EXPECT_EQ(split("x*", "abxxc"), (Words{"a", "b", "xx", "c"}));
}

TEST(PreTokenizerRegex, SplitStaysInsideTheChunk) {
  const Regex re(R"(\s+(?!\S)|\s+)");
  const Text t("a  b  ");
  std::vector<uint32_t> ends;
  // Only [1, 3) = "  ": the lookahead sees the chunk's end, not the "b" after it.
  re.split({t.cpts.data(), t.flags.data(), 1, 3}, ends);
  EXPECT_EQ(ends, (std::vector<uint32_t>{3}));
}

TEST(PreTokenizerRegex, RefusesWhatItCannotRunExactly) {
  for (const char* bad : {"(?<=a)b", "a++", "a?+", R"(\p{Han}+)", R"(\P{L})", R"((a)\1)",
                          "\\p{L}\u00E9", "(ab", "ab)", "a{2,1}", "[abc", "*a", "a{x}",
                          R"(\q)", "(?P<n>a)"}) {
    try {
      const Regex re(bad);
      ADD_FAILURE() << "expected kUnsupported for " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), StatusCode::kUnsupported) << bad;
      EXPECT_NE(std::string(e.what()).find("regex '"), std::string::npos) << e.what();
    }
  }
}

TEST(PreTokenizerRegex, RunawayGroupRepeatIsAnErrorNotACrash) {
  // Repeats of single characters loop; a repeated multi-character group recurses per
  // iteration and gives up past a depth limit instead of overflowing the stack.
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "ab";
  EXPECT_EQ(first_match("(?:a|b)+", text.substr(0, 300)).size(), 300u);
  try {
    first_match("(?:ab)+", text);
    ADD_FAILURE() << "expected kUnsupported";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnsupported);
  }
  EXPECT_EQ(first_match("[ab]+", text).size(), text.size());
}

}  // namespace
}  // namespace llmos
