#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <map>

namespace llmos {
namespace {

struct UnicodeRange {
  char32_t first;  // the range ends where the next one starts
  uint16_t flags;
};

struct LowercaseRun {
  char32_t first;
  char32_t last;
  int32_t delta;   // lowercase = code point + delta
  uint32_t stride;  // 1: every code point of [first, last]; 2: every other one
};

#include "tokenizer/unicode_tables.inc"

constexpr size_t kNumCodePoints = size_t{kMaxCodePoint} + 1;

struct ByteMaps {
  std::array<char32_t, 256> to_unicode{};
  std::array<int16_t, 324> to_byte{};  // indexed by code point; all mapped ones are < 324
};

const ByteMaps& byte_maps() {
  static const ByteMaps maps = [] {
    ByteMaps m;
    m.to_byte.fill(-1);
    const auto printable = [](int b) {
      return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const char32_t c = printable(b) ? static_cast<char32_t>(b) : next++;
      m.to_unicode[b] = c;
      m.to_byte[c] = static_cast<int16_t>(b);
    }
    return m;
  }();
  return maps;
}

}  // namespace

const char* unicode_version() { return kUnicodeVersion; }

const UnicodeFlagTable& UnicodeFlagTable::get() {
  static const UnicodeFlagTable table;
  return table;
}

UnicodeFlagTable::UnicodeFlagTable() {
  // Expand the ranges once, then keep each distinct 128-code-point block a single time
  // (about 1100 blocks of 8704 are distinct).
  std::vector<uint16_t> all(kNumCodePoints, kUnicodeUndefined);
  constexpr size_t n = sizeof(kCategoryRanges) / sizeof(kCategoryRanges[0]);
  for (size_t i = 0; i < n; ++i) {
    const size_t end = i + 1 < n ? kCategoryRanges[i + 1].first : kNumCodePoints;
    std::fill(all.begin() + kCategoryRanges[i].first, all.begin() + end, kCategoryRanges[i].flags);
  }
  for (const char32_t c : kWhitespaceCodePoints) all[c] |= kUnicodeWhitespace;

  constexpr size_t kBlock = size_t{1} << kShift;
  std::map<std::vector<uint16_t>, uint16_t> seen;
  index_.resize(kNumCodePoints / kBlock);
  for (size_t b = 0; b < index_.size(); ++b) {
    std::vector<uint16_t> block(all.begin() + b * kBlock, all.begin() + (b + 1) * kBlock);
    const auto [it, inserted] = seen.emplace(std::move(block), static_cast<uint16_t>(seen.size()));
    if (inserted) blocks_.insert(blocks_.end(), it->first.begin(), it->first.end());
    index_[b] = it->second;
  }
}

char32_t unicode_to_lower(char32_t cpt) {
  if (cpt < 0x80) return cpt >= 'A' && cpt <= 'Z' ? cpt + 32 : cpt;
  // The runs are sorted and disjoint: find the last one starting at or before cpt.
  const auto* end = std::end(kLowercaseRuns);
  const auto* it = std::upper_bound(std::begin(kLowercaseRuns), end, cpt,
                                    [](char32_t c, const LowercaseRun& r) { return c < r.first; });
  if (it == std::begin(kLowercaseRuns)) return cpt;
  --it;
  if (cpt > it->last || (cpt - it->first) % it->stride != 0) return cpt;
  return static_cast<char32_t>(static_cast<int64_t>(cpt) + it->delta);
}

void unicode_decode_lossy(std::string_view text, std::vector<char32_t>& out) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  out.reserve(out.size() + n);
  size_t i = 0;
  const auto cont = [&](size_t k) { return (s[k] & 0xC0) == 0x80; };
  while (i < n) {
    const uint8_t b0 = s[i];
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
    } else if ((b0 & 0x40) == 0) {  // a stray continuation byte
      out.push_back(kReplacementChar);
      ++i;
    } else if ((b0 & 0x20) == 0) {
      if (i + 1 < n && cont(i + 1)) {
        out.push_back(static_cast<char32_t>((b0 & 0x1F) << 6 | (s[i + 1] & 0x3F)));
        i += 2;
      } else {
        out.push_back(kReplacementChar);
        ++i;
      }
    } else if ((b0 & 0x10) == 0) {
      if (i + 2 < n && cont(i + 1) && cont(i + 2)) {
        out.push_back(static_cast<char32_t>((b0 & 0x0F) << 12 | (s[i + 1] & 0x3F) << 6 |
                                            (s[i + 2] & 0x3F)));
        i += 3;
      } else {
        out.push_back(kReplacementChar);
        ++i;
      }
    } else if ((b0 & 0x08) == 0) {
      if (i + 3 < n && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
        out.push_back(static_cast<char32_t>((b0 & 0x07) << 18 | (s[i + 1] & 0x3F) << 12 |
                                            (s[i + 2] & 0x3F) << 6 | (s[i + 3] & 0x3F)));
        i += 4;
      } else {
        out.push_back(kReplacementChar);
        ++i;
      }
    } else {  // 0xF8-0xFF never start a sequence
      out.push_back(kReplacementChar);
      ++i;
    }
  }
}

char32_t byte_to_unicode(uint8_t byte) { return byte_maps().to_unicode[byte]; }

int unicode_to_byte(char32_t cpt) {
  const auto& table = byte_maps().to_byte;
  return cpt < table.size() ? table[cpt] : -1;
}

}  // namespace llmos
