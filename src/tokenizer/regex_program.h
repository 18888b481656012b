// The compiled form of a Regex (regex.h): character classes, single-character predicates and
// a tree of nodes. Built by compile_regex (regex_compile.cc), run by regex.cc.
#pragma once

#include <bitset>
#include <cstdint>
#include <limits>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/unicode.h"

namespace llmos {

// One bracket expression (or a single literal, '.', \s, \p{L}, ... written alone).
struct RegexClass {
  bool negated = false;
  bool icase = false;  // ranges hold lowercase-folded code points; test folds the input
  std::vector<std::pair<char32_t, char32_t>> ranges;  // literal members, sorted
  uint16_t categories = 0;  // \p{..} flags, for non-ASCII code points
  // For non-ASCII, non-whitespace code points: whether \S, \D, \W or '.' is a member.
  bool any_non_ascii = false;
  std::bitset<128> ascii;  // the final answer (negation applied) for ASCII code points

  bool in_ranges(char32_t c) const {
    for (const auto& [lo, hi] : ranges) {
      if (c < lo) return false;
      if (c <= hi) return true;
    }
    return false;
  }
  bool test(char32_t c, uint16_t flags) const {
    if (c < 128) return ascii[c];
    // llama.cpp hands non-ASCII whitespace to std::regex as U+000B.
    if (flags & kUnicodeWhitespace) return ascii[0x0B];
    const bool member = any_non_ascii || (flags & categories) != 0 ||
                        in_ranges(icase ? unicode_to_lower(c) : c);
    return member != negated;
  }
};

// A test on one code point: all conditions must hold. Lookaheads over one character fold
// into the character that follows them, e.g. (?=[\p{L}])[^a-z] is one predicate.
struct RegexPred {
  std::vector<std::pair<int32_t, bool>> conds;  // {class index, negate}
};

struct RegexNode {
  enum class Kind : uint8_t {
    kChar,         // pred
    kSeq,          // kids in order
    kAlt,          // kids, first that leads to a match wins
    kRepeat,       // kids[0], min..max times
    kLook,         // kids[0] must (or, negative, must not) match here; consumes nothing
    kBol,          // ^
    kEol,          // $
    kWordBoundary  // \b, or \B when negative
  };
  static constexpr uint32_t kInfinite = std::numeric_limits<uint32_t>::max();

  Kind kind = Kind::kSeq;
  bool negative = false;
  bool greedy = true;
  uint32_t min = 0;
  uint32_t max = 0;
  int32_t pred = -1;
  std::vector<int32_t> kids;
};

struct RegexProgram {
  std::vector<RegexClass> classes;
  std::vector<RegexPred> preds;
  std::vector<RegexNode> nodes;
  int32_t root = -1;
  // Search acceleration: when the pattern cannot match empty text (first_known), a match can
  // only start where one of these predicates holds.
  bool nullable = true;
  bool first_known = false;
  std::vector<int32_t> first_preds;

  bool test(int32_t pred, char32_t c, uint16_t flags) const {
    for (const auto& [cls, negate] : preds[pred].conds) {
      if (classes[cls].test(c, flags) == negate) return false;
    }
    return true;
  }
};

// Parses and optimizes a pattern; Error(kUnsupported) naming the pattern for anything outside
// the supported subset (see regex.h).
RegexProgram compile_regex(std::string_view pattern);

}  // namespace llmos
