#include "tokenizer/pretokenizer_fast.h"

#include "tokenizer/unicode.h"

namespace llmos {
namespace {

constexpr char32_t kOutside = 0xFFFFFFFF;  // "no code point here": past the chunk's end
constexpr uint16_t kWordFlags = kUnicodeWhitespace | kUnicodeLetter | kUnicodeNumber;

// Shared plumbing: code points and flags with the chunk's end reading as kOutside / 0, and
// word emission that skips empty words.
class Cursor {
 public:
  Cursor(const RegexSubject& s, std::vector<uint32_t>& ends) : s_(s), ends_(ends), prev_(s.begin) {}
  char32_t cpt(size_t pos) const { return pos < s_.end ? s_.cpts[pos] : kOutside; }
  uint16_t flags(size_t pos) const { return pos < s_.end ? s_.flags[pos] : 0; }
  size_t end() const { return s_.end; }
  void emit(size_t end) {
    if (end > prev_) ends_.push_back(static_cast<uint32_t>(end));
    prev_ = end;
  }

  // 's 't 'm 'd 're 've 'll at pos (lowercased when fold): the length matched, or 0.
  size_t contraction(size_t pos, bool fold) const {
    if (cpt(pos) != '\'' || pos + 1 >= s_.end) return 0;
    const auto low = [&](char32_t c) { return fold ? unicode_to_lower(c) : c; };
    const char32_t c1 = low(cpt(pos + 1));
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    if (pos + 2 >= s_.end) return 0;
    const char32_t c2 = low(cpt(pos + 2));
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
    return 0;
  }

  // The whitespace tail shared by both patterns: \s+(?!\S) leaves the last whitespace of a
  // run to the word after it; a run at the chunk's end is taken whole (\s+).
  size_t whitespace(size_t pos, size_t count) const {
    if (count > 1 && pos + count < s_.end) return pos + count - 1;
    return pos + count;
  }

 private:
  const RegexSubject& s_;
  std::vector<uint32_t>& ends_;
  size_t prev_;
};

// Llama 3 (max_digits 3) and Qwen2 (max_digits 1).
void split_llama3_like(const RegexSubject& s, std::vector<uint32_t>& ends, size_t max_digits) {
  Cursor cur(s, ends);
  for (size_t pos = s.begin; pos < s.end;) {
    const char32_t c = cur.cpt(pos);
    const uint16_t f = cur.flags(pos);

    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (const size_t n = cur.contraction(pos, true)) {
      pos += n;
      cur.emit(pos);
      continue;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!(c == '\r' || c == '\n' || (f & kUnicodeNumber))) {
      if ((f & kUnicodeLetter) || (cur.flags(pos + 1) & kUnicodeLetter)) {
        ++pos;
        while (cur.flags(pos) & kUnicodeLetter) ++pos;
        cur.emit(pos);
        continue;
      }
    }
    // \p{N}{1,max_digits}
    if (f & kUnicodeNumber) {
      size_t start = pos;
      while (cur.flags(pos) & kUnicodeNumber) {
        if (++pos - start >= max_digits) {
          cur.emit(pos);
          start = pos;
        }
      }
      cur.emit(pos);
      continue;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'; a lone trailing space also lands here (as \s+ would take it)
    uint16_t f2 = c == ' ' ? cur.flags(pos + 1) : f;
    if (!(f2 & kWordFlags) && f != 0) {
      pos += c == ' ';
      while (!(f2 & kWordFlags) && f2 != 0) f2 = cur.flags(++pos);
      for (char32_t c2 = cur.cpt(pos); c2 == '\r' || c2 == '\n'; c2 = cur.cpt(++pos)) {
      }
      cur.emit(pos);
      continue;
    }
    // \s*[\r\n]+ takes the whitespace run up to its last line break
    size_t count = 0;
    size_t last_break = 0;
    while (cur.flags(pos + count) & kUnicodeWhitespace) {
      const char32_t c2 = cur.cpt(pos + count);
      if (c2 == '\r' || c2 == '\n') last_break = pos + count + 1;
      ++count;
    }
    if (last_break > 0) {
      pos = last_break;
      cur.emit(pos);
      continue;
    }
    if (count > 0) {
      pos = cur.whitespace(pos, count);
      cur.emit(pos);
      continue;
    }
    cur.emit(++pos);  // nothing matched: unreachable for valid flags, kept for safety
  }
}

}  // namespace

void split_gpt2(const RegexSubject& s, std::vector<uint32_t>& ends) {
  Cursor cur(s, ends);
  for (size_t pos = s.begin; pos < s.end;) {
    const char32_t c = cur.cpt(pos);
    const uint16_t f = cur.flags(pos);

    if (const size_t n = cur.contraction(pos, false)) {
      pos += n;
      cur.emit(pos);
      continue;
    }
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional space, then a run of one kind
    uint16_t f2 = c == ' ' ? cur.flags(pos + 1) : f;
    const auto run = [&](auto&& in_run) {
      pos += c == ' ';
      while (in_run(f2)) f2 = cur.flags(++pos);
      cur.emit(pos);
    };
    if (f2 & kUnicodeLetter) {
      run([](uint16_t g) { return (g & kUnicodeLetter) != 0; });
      continue;
    }
    if (f2 & kUnicodeNumber) {
      run([](uint16_t g) { return (g & kUnicodeNumber) != 0; });
      continue;
    }
    if (!(f2 & kWordFlags) && f2 != 0) {
      run([](uint16_t g) { return !(g & kWordFlags) && g != 0; });
      continue;
    }
    size_t count = 0;
    while (cur.flags(pos + count) & kUnicodeWhitespace) ++count;
    if (count > 0) {
      pos = cur.whitespace(pos, count);
      cur.emit(pos);
      continue;
    }
    cur.emit(++pos);  // nothing matched: unreachable for valid flags, kept for safety
  }
}

void split_llama3(const RegexSubject& s, std::vector<uint32_t>& ends) {
  split_llama3_like(s, ends, 3);
}

void split_qwen2(const RegexSubject& s, std::vector<uint32_t>& ends) {
  split_llama3_like(s, ends, 1);
}

FastSplitter fast_splitter_for(std::string_view pattern) {
  if (pattern == kGpt2Pattern) return split_gpt2;
  if (pattern == kLlama3Pattern || pattern == kLlama3AdaptedPattern) return split_llama3;
  if (pattern == kQwen2Pattern) return split_qwen2;
  return nullptr;
}

}  // namespace llmos
