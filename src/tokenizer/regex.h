// A small backtracking regex engine over code points, for the pre-tokenizer patterns of
// byte-level BPE vocabularies. It reproduces what llama.cpp gets from std::regex
// (ECMAScript: leftmost match, ordered alternation, greedy/lazy quantifiers with
// backtracking) on its "collapsed" text, so splits are identical:
//  - \p{N} \p{L} \p{P} \p{M} \p{S} test the Unicode category (\p{Lu}, \p{Ll}, \p{Lt}, \p{Lm},
//    \p{Lo} all mean any letter, as in llama.cpp); for ASCII they are the ASCII members of the
//    category, except that '~' is not \p{S} (llama.cpp's ASCII symbol set lacks it);
//  - every non-ASCII whitespace code point is seen as U+000B, so \s means White_Space and
//    literal ranges never match such a code point; \d and \w are ASCII only;
//  - a pattern that uses \p{..} may not contain non-ASCII characters (llama.cpp refuses that).
// Supported: alternation, (...), (?:...), (?i:...) (simple lowercase folding), (?=...),
// (?!...), classes with ranges, negation and escapes (\s \S \d \D \w \W \p{..} \r \n \t \f \v
// \xHH \uHHHH and escaped punctuation), '.', ^ $ \b \B, quantifiers ? * + {m} {m,} {m,n} and
// their lazy forms. Anything else (back references, lookbehind, possessive quantifiers,
// unknown properties) is Error(kUnsupported) naming the pattern.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace llmos {

struct RegexProgram;  // the compiled form, regex_program.h

// The text a regex runs on: code points with their unicode_flags(), matched inside the chunk
// [begin, end) (lookaheads, ^ and $ see the chunk's ends as the ends of the text).
struct RegexSubject {
  const char32_t* cpts = nullptr;
  const uint16_t* flags = nullptr;
  size_t begin = 0;
  size_t end = 0;
};

class Regex {
 public:
  explicit Regex(std::string_view pattern);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  const std::string& pattern() const { return pattern_; }

  // Finds the leftmost match starting at or after `from`. not_null rejects an empty match;
  // continuous only tries a match starting exactly at `from`.
  bool search(const RegexSubject& subject, size_t from, bool not_null, bool continuous,
              size_t* match_begin, size_t* match_end) const;

  // Splits the chunk as llama.cpp's unicode_regex_split_stl does with std::regex_iterator:
  // every match is a word, and so is the unmatched text between (and around) matches.
  // Appends the end offset of each non-empty word, in order, to `ends`.
  void split(const RegexSubject& subject, std::vector<uint32_t>& ends) const;

 private:
  std::string pattern_;
  std::unique_ptr<const RegexProgram> program_;
};

}  // namespace llmos
