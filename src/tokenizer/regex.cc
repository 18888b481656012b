// The backtracking matcher. Each node gets a continuation ("what must match after me"), so
// alternation and quantifiers backtrack exactly like ECMAScript: branches in order, greedy
// repeats longest first, a lookahead is atomic, and a repeat iteration past the minimum that
// consumes nothing ends the repeat.
#include "tokenizer/regex.h"

#include <type_traits>

#include "core/error.h"
#include "tokenizer/regex_program.h"

namespace llmos {
namespace {

// A non-owning reference to a callable bool(size_t end), cheap to pass down the recursion.
class Cont {
 public:
  template <typename F>
    requires(!std::is_same_v<std::decay_t<F>, Cont>)
  Cont(const F& f)  // NOLINT(google-explicit-constructor): used with lambdas only
      : obj_(&f), call_([](const void* obj, size_t pos) {
          return (*static_cast<const F*>(obj))(pos);
        }) {}
  bool operator()(size_t pos) const { return call_(obj_, pos); }

 private:
  const void* obj_;
  bool (*call_)(const void*, size_t);
};

// Recursion depth at which matching gives up instead of risking the stack: only repeats of
// groups (not of single characters) recurse per iteration, and no supported pre-tokenizer
// pattern has one that runs long.
constexpr int kMaxDepth = 4000;

class Matcher {
 public:
  Matcher(const RegexProgram& prog, const RegexSubject& s, const std::string& pattern)
      : prog_(prog), s_(s), pattern_(pattern) {}

  bool match(int32_t id, size_t pos, Cont k) {
    if (++depth_ > kMaxDepth) {
      throw_error(StatusCode::kUnsupported, "regex '", pattern_,
                  "': input needs too deep backtracking (a repeated group ran too long)");
    }
    const bool ok = match_node(id, pos, k);
    --depth_;
    return ok;
  }

 private:
  using Kind = RegexNode::Kind;

  bool char_at(int32_t pred, size_t pos) const {
    return pos < s_.end && prog_.test(pred, s_.cpts[pos], s_.flags[pos]);
  }
  bool word_at(size_t pos) const {
    if (pos < s_.begin || pos >= s_.end) return false;
    const char32_t c = s_.cpts[pos];
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           c == '_';
  }

  bool match_node(int32_t id, size_t pos, Cont k) {
    const RegexNode& n = prog_.nodes[id];
    switch (n.kind) {
      case Kind::kChar:
        return char_at(n.pred, pos) && k(pos + 1);
      case Kind::kSeq:
        return match_seq(n, 0, pos, k);
      case Kind::kAlt:
        for (const int32_t kid : n.kids) {
          if (match(kid, pos, k)) return true;
        }
        return false;
      case Kind::kRepeat:
        if (prog_.nodes[n.kids[0]].kind == Kind::kChar) return repeat_char(n, pos, k);
        return repeat(n, 0, pos, k);
      case Kind::kLook: {
        const auto accept = [](size_t) { return true; };
        const bool found = match(n.kids[0], pos, accept);
        return found != n.negative && k(pos);
      }
      case Kind::kBol:
        return pos == s_.begin && k(pos);
      case Kind::kEol:
        return pos == s_.end && k(pos);
      case Kind::kWordBoundary: {
        const bool boundary = (pos > s_.begin && word_at(pos - 1)) != word_at(pos);
        return boundary != n.negative && k(pos);
      }
    }
    return false;
  }

  bool match_seq(const RegexNode& n, size_t i, size_t pos, Cont k) {
    if (i == n.kids.size()) return k(pos);
    if (i + 1 == n.kids.size()) return match(n.kids[i], pos, k);
    const auto rest = [&](size_t p) { return match_seq(n, i + 1, p, k); };
    return match(n.kids[i], pos, rest);
  }

  // A repeat of one character: count the run, then give characters back one at a time.
  bool repeat_char(const RegexNode& n, size_t pos, Cont k) {
    const int32_t pred = prog_.nodes[n.kids[0]].pred;
    size_t count = 0;
    while (count < n.max && char_at(pred, pos + count)) ++count;
    if (count < n.min) return false;
    if (n.greedy) {
      for (size_t c = count + 1; c-- > n.min;) {
        if (k(pos + c)) return true;
      }
    } else {
      for (size_t c = n.min; c <= count; ++c) {
        if (k(pos + c)) return true;
      }
    }
    return false;
  }

  bool repeat(const RegexNode& n, uint32_t done, size_t pos, Cont k) {
    const auto more = [&](size_t p) {
      if (p == pos && done >= n.min) return false;  // an empty iteration ends the repeat
      return repeat(n, done + 1, p, k);
    };
    const bool can_stop = done >= n.min;
    const bool can_go = done < n.max;
    if (n.greedy) {
      if (can_go && match(n.kids[0], pos, more)) return true;
      return can_stop && k(pos);
    }
    if (can_stop && k(pos)) return true;
    return can_go && match(n.kids[0], pos, more);
  }

  const RegexProgram& prog_;
  const RegexSubject& s_;
  const std::string& pattern_;
  int depth_ = 0;
};

}  // namespace

Regex::Regex(std::string_view pattern)
    : pattern_(pattern), program_(std::make_unique<RegexProgram>(compile_regex(pattern))) {}
Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

bool Regex::search(const RegexSubject& subject, size_t from, bool not_null, bool continuous,
                   size_t* match_begin, size_t* match_end) const {
  const RegexProgram& prog = *program_;
  Matcher matcher(prog, subject, pattern_);
  for (size_t start = from; start <= subject.end; ++start) {
    if (prog.first_known && !continuous) {
      // Skip starts where no match can begin (cheap: most patterns start with a class).
      if (start == subject.end) return false;
      bool possible = false;
      for (const int32_t pred : prog.first_preds) {
        if (prog.test(pred, subject.cpts[start], subject.flags[start])) {
          possible = true;
          break;
        }
      }
      if (!possible) continue;
    }
    size_t end = 0;
    const auto accept = [&](size_t p) {
      if (not_null && p == start) return false;
      end = p;
      return true;
    };
    if (matcher.match(prog.root, start, accept)) {
      *match_begin = start;
      *match_end = end;
      return true;
    }
    if (continuous) return false;
  }
  return false;
}

void Regex::split(const RegexSubject& subject, std::vector<uint32_t>& ends) const {
  const auto push = [&](size_t end) {
    if (end > (ends.empty() ? 0 : ends.back()) && end > subject.begin) {
      ends.push_back(static_cast<uint32_t>(end));
    }
  };
  // std::regex_iterator: after an empty match, first retry at the same place requiring a
  // non-empty match, then move one code point on.
  size_t last = subject.begin;
  size_t mb = 0, me = 0;
  bool found = search(subject, subject.begin, false, false, &mb, &me);
  while (found) {
    if (mb > last) push(mb);
    push(me);
    last = me;
    if (mb == me) {
      if (me == subject.end) break;
      found = search(subject, me, true, true, &mb, &me) ||
              search(subject, me + 1, false, false, &mb, &me);
    } else {
      found = search(subject, me, false, false, &mb, &me);
    }
  }
  if (last < subject.end) push(subject.end);
}

}  // namespace llmos
