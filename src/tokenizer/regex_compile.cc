// compile_regex: pattern text -> RegexProgram (parser, class construction, simplification).
#include <algorithm>
#include <string>

#include "core/error.h"
#include "tokenizer/regex_program.h"
#include "tokenizer/unicode.h"

namespace llmos {
namespace {

constexpr uint32_t kMaxRepeatBound = 65535;

bool is_ascii_space(char32_t c) { return (c >= 0x09 && c <= 0x0D) || c == 0x20; }
bool is_ascii_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_ascii_word(char32_t c) {
  return is_ascii_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

// The pieces of one bracket expression before it becomes a RegexClass.
struct ClassBuilder {
  bool negated = false;
  bool icase = false;
  std::vector<std::pair<char32_t, char32_t>> ranges;
  uint16_t categories = 0;
  bool space = false, non_space = false, digit = false, non_digit = false;
  bool word = false, non_word = false, dot = false;

  RegexClass build() const {
    RegexClass c;
    c.negated = negated;
    c.icase = icase;
    c.categories = categories;
    c.any_non_ascii = non_space || non_digit || non_word || dot;
    std::vector<std::pair<char32_t, char32_t>> r = ranges;
    if (icase) {
      // A member's lowercase stands for all its case variants: the input is folded too.
      for (const auto& [lo, hi] : ranges) {
        for (char32_t x = lo; x <= hi && x <= kMaxCodePoint; ++x) {
          const char32_t low = unicode_to_lower(x);
          if (low != x) r.emplace_back(low, low);
        }
      }
    }
    std::sort(r.begin(), r.end());
    for (const auto& range : r) {
      if (!c.ranges.empty() && range.first <= c.ranges.back().second + 1) {
        c.ranges.back().second = std::max(c.ranges.back().second, range.second);
      } else {
        c.ranges.push_back(range);
      }
    }
    for (char32_t x = 0; x < 128; ++x) {
      uint16_t cats = categories & unicode_flags(x) & kUnicodeCategoryMask;
      // llama.cpp's ASCII stand-in for \p{S} is "$+<=>^`|": no '~'.
      if (x == '~') cats &= static_cast<uint16_t>(~kUnicodeSymbol);
      const bool sp = is_ascii_space(x), dg = is_ascii_digit(x), wd = is_ascii_word(x);
      const bool member = c.in_ranges(icase ? unicode_to_lower(x) : x) || cats != 0 ||
                          (space && sp) || (non_space && !sp) || (digit && dg) ||
                          (non_digit && !dg) || (word && wd) || (non_word && !wd) ||
                          (dot && x != '\n' && x != '\r');
      c.ascii[x] = member != negated;
    }
    return c;
  }
};

class Parser {
 public:
  explicit Parser(std::string_view pattern) : pattern_(pattern) {
    unicode_decode_lossy(pattern, p_);
  }

  RegexProgram run() {
    prog_.root = parse_alt(false);
    if (pos_ < p_.size()) fail("unmatched ')'");
    if (uses_property_ && std::any_of(p_.begin(), p_.end(), [](char32_t c) { return c >= 128; })) {
      fail("\\p{..} together with non-ASCII characters (llama.cpp cannot run that either)");
    }
    return std::move(prog_);
  }

 private:
  [[noreturn]] void fail(std::string_view what) const {
    throw_error(StatusCode::kUnsupported, "regex '", pattern_, "': ", what,
                " at code point ", pos_);
  }
  bool at_end() const { return pos_ >= p_.size(); }
  char32_t peek() const { return at_end() ? 0 : p_[pos_]; }
  bool eat(char32_t c) {
    if (at_end() || p_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  int32_t add_node(RegexNode node) {
    prog_.nodes.push_back(std::move(node));
    return static_cast<int32_t>(prog_.nodes.size() - 1);
  }
  int32_t add_char(const ClassBuilder& b) {
    prog_.classes.push_back(b.build());
    prog_.preds.push_back({{{static_cast<int32_t>(prog_.classes.size() - 1), false}}});
    RegexNode n;
    n.kind = RegexNode::Kind::kChar;
    n.pred = static_cast<int32_t>(prog_.preds.size() - 1);
    return add_node(std::move(n));
  }

  int32_t parse_alt(bool icase) {
    std::vector<int32_t> branches{parse_seq(icase)};
    while (eat('|')) branches.push_back(parse_seq(icase));
    if (branches.size() == 1) return branches[0];
    RegexNode n;
    n.kind = RegexNode::Kind::kAlt;
    n.kids = std::move(branches);
    return add_node(std::move(n));
  }

  int32_t parse_seq(bool icase) {
    RegexNode seq;
    seq.kind = RegexNode::Kind::kSeq;
    while (!at_end() && peek() != '|' && peek() != ')') {
      const int32_t atom = parse_atom(icase);
      seq.kids.push_back(parse_quantifier(atom));
    }
    return add_node(std::move(seq));
  }

  int32_t parse_quantifier(int32_t atom) {
    uint32_t min = 0, max = 0;
    const char32_t c = peek();
    if (c == '*') {
      ++pos_, min = 0, max = RegexNode::kInfinite;
    } else if (c == '+') {
      ++pos_, min = 1, max = RegexNode::kInfinite;
    } else if (c == '?') {
      ++pos_, min = 0, max = 1;
    } else if (c == '{') {
      ++pos_;
      min = parse_number();
      max = min;
      if (eat(',')) max = peek() == '}' ? RegexNode::kInfinite : parse_number();
      if (!eat('}')) fail("malformed {m,n} quantifier");
      if (max < min) fail("quantifier {m,n} with n < m");
    } else {
      return atom;
    }
    const RegexNode::Kind kind = prog_.nodes[atom].kind;
    if (kind == RegexNode::Kind::kBol || kind == RegexNode::Kind::kEol ||
        kind == RegexNode::Kind::kWordBoundary) {
      fail("quantified assertion");
    }
    RegexNode rep;
    rep.kind = RegexNode::Kind::kRepeat;
    rep.min = min;
    rep.max = max;
    rep.greedy = !eat('?');
    rep.kids = {atom};
    const char32_t next = peek();
    if (next == '*' || next == '+' || next == '?' || next == '{') {
      fail("nothing to repeat (possessive or doubled quantifier)");
    }
    return add_node(std::move(rep));
  }

  uint32_t parse_number() {
    if (at_end() || !is_ascii_digit(peek())) fail("expected a number in {m,n}");
    uint32_t v = 0;
    while (!at_end() && is_ascii_digit(peek())) {
      v = v * 10 + (p_[pos_++] - '0');
      if (v > kMaxRepeatBound) fail("repeat bound too large");
    }
    return v;
  }

  int32_t parse_atom(bool icase) {
    const char32_t c = p_[pos_++];
    switch (c) {
      case '(':
        return parse_group(icase);
      case '[':
        return parse_class(icase);
      case '.': {
        ClassBuilder b;
        b.dot = true;
        return add_char(b);
      }
      case '^':
      case '$': {
        RegexNode n;
        n.kind = c == '^' ? RegexNode::Kind::kBol : RegexNode::Kind::kEol;
        return add_node(std::move(n));
      }
      case '\\':
        return parse_escape_atom(icase);
      case '*':
      case '+':
      case '?':
        --pos_;
        fail("nothing to repeat");
      case '{':
        --pos_;
        fail("'{' that does not start a quantifier");
      default: {
        ClassBuilder b;
        b.icase = icase;
        b.ranges.emplace_back(c, c);
        return add_char(b);
      }
    }
  }

  int32_t parse_group(bool icase) {
    RegexNode look;
    bool is_look = false;
    if (eat('?')) {
      if (eat(':')) {
      } else if (eat('=') || (peek() == '!' && eat('!'))) {
        is_look = true;
        look.kind = RegexNode::Kind::kLook;
        look.negative = p_[pos_ - 1] == '!';
      } else if (peek() == 'i' && pos_ + 1 < p_.size() && p_[pos_ + 1] == ':') {
        pos_ += 2;
        icase = true;
      } else {
        fail("unsupported group kind (lookbehind, named group or inline flag)");
      }
    }
    const int32_t inner = parse_alt(icase);
    if (!eat(')')) fail("missing ')'");
    if (!is_look) return inner;  // capturing groups capture nothing here
    look.kids = {inner};
    return add_node(std::move(look));
  }

  int32_t parse_escape_atom(bool icase) {
    if (at_end()) fail("trailing backslash");
    const char32_t c = peek();
    if (c == 'b' || c == 'B') {
      ++pos_;
      RegexNode n;
      n.kind = RegexNode::Kind::kWordBoundary;
      n.negative = c == 'B';
      return add_node(std::move(n));
    }
    ClassBuilder b;
    b.icase = icase;
    char32_t single = 0;
    if (parse_escape(b, &single, false)) b.ranges.emplace_back(single, single);
    return add_char(b);
  }

  // Parses the escape after a backslash. Returns true with *single set for a single
  // character; false when it added a class (\s, \p{L}, ...) to `b`.
  bool parse_escape(ClassBuilder& b, char32_t* single, bool in_class) {
    if (at_end()) fail("trailing backslash");
    const char32_t c = p_[pos_++];
    switch (c) {
      case 'd': b.digit = true; return false;
      case 'D': b.non_digit = true; return false;
      case 's': b.space = true; return false;
      case 'S': b.non_space = true; return false;
      case 'w': b.word = true; return false;
      case 'W': b.non_word = true; return false;
      case 'p': b.categories |= parse_property(); return false;
      case 'r': *single = 0x0D; return true;
      case 'n': *single = 0x0A; return true;
      case 't': *single = 0x09; return true;
      case 'f': *single = 0x0C; return true;
      case 'v': *single = 0x0B; return true;
      case 'b':
        if (!in_class) break;
        *single = 0x08;
        return true;
      case '0':
        if (!at_end() && is_ascii_digit(peek())) break;
        *single = 0;
        return true;
      case 'x': *single = parse_hex(2); return true;
      case 'u': *single = parse_hex(4); return true;
      default:
        if (c >= 128 || !is_ascii_word(c)) {  // identity escape of punctuation
          *single = c;
          return true;
        }
        break;
    }
    --pos_;
    fail("unsupported escape");
  }

  char32_t parse_hex(int digits) {
    char32_t v = 0;
    for (int k = 0; k < digits; ++k) {
      const char32_t h = at_end() ? 0 : p_[pos_];
      int d = -1;
      if (h >= '0' && h <= '9') d = static_cast<int>(h - '0');
      if (h >= 'a' && h <= 'f') d = static_cast<int>(h - 'a' + 10);
      if (h >= 'A' && h <= 'F') d = static_cast<int>(h - 'A' + 10);
      if (d < 0) fail("malformed hex escape");
      v = v * 16 + static_cast<char32_t>(d);
      ++pos_;
    }
    return v;
  }

  uint16_t parse_property() {
    if (!eat('{')) fail("\\p without {name}");
    std::string name;
    while (!at_end() && peek() != '}') name += static_cast<char>(p_[pos_++] & 0x7F);
    if (!eat('}')) fail("unterminated \\p{");
    uses_property_ = true;
    // The names llama.cpp understands; all letter subcategories mean any letter there.
    if (name == "N") return kUnicodeNumber;
    if (name == "L" || name == "Lu" || name == "Ll" || name == "Lt" || name == "Lm" ||
        name == "Lo") {
      return kUnicodeLetter;
    }
    if (name == "P") return kUnicodePunctuation;
    if (name == "M") return kUnicodeMark;
    if (name == "S") return kUnicodeSymbol;
    fail("unsupported property \\p{" + name + "}");
  }

  int32_t parse_class(bool icase) {
    ClassBuilder b;
    b.icase = icase;
    b.negated = eat('^');
    while (true) {
      if (at_end()) fail("missing ']'");
      if (eat(']')) break;
      char32_t lo = 0;
      if (!parse_class_atom(b, &lo)) continue;  // a class escape: never a range end
      if (peek() == '-' && pos_ + 1 < p_.size() && p_[pos_ + 1] != ']') {
        ++pos_;
        char32_t hi = 0;
        ClassBuilder scratch;
        if (!parse_class_atom(scratch, &hi)) fail("class escape as a range end");
        if (hi < lo) fail("range out of order");
        b.ranges.emplace_back(lo, hi);
      } else {
        b.ranges.emplace_back(lo, lo);
      }
    }
    return add_char(b);
  }

  bool parse_class_atom(ClassBuilder& b, char32_t* single) {
    const char32_t c = p_[pos_++];
    if (c != '\\') {
      *single = c;
      return true;
    }
    return parse_escape(b, single, true);
  }

  std::string_view pattern_;
  std::vector<char32_t> p_;
  size_t pos_ = 0;
  bool uses_property_ = false;
  RegexProgram prog_;
};

// Flattens sequences, drops one-element wrappers and folds a one-character lookahead into
// the character after it, so that repeats of such groups run as simple loops.
int32_t simplify(RegexProgram& prog, int32_t id) {
  using Kind = RegexNode::Kind;
  // simplify() may add nodes, so work on a copy of the child list.
  std::vector<int32_t> kids = prog.nodes[id].kids;
  for (int32_t& kid : kids) kid = simplify(prog, kid);
  prog.nodes[id].kids = kids;
  if (prog.nodes[id].kind == Kind::kSeq) {
    std::vector<int32_t> flat;
    for (const int32_t kid : kids) {
      const RegexNode& k = prog.nodes[kid];
      if (k.kind == Kind::kSeq) {
        flat.insert(flat.end(), k.kids.begin(), k.kids.end());
      } else {
        flat.push_back(kid);
      }
    }
    for (size_t i = flat.size(); i-- > 1;) {
      const RegexNode& look = prog.nodes[flat[i - 1]];
      const RegexNode& next = prog.nodes[flat[i]];
      if (look.kind != Kind::kLook || next.kind != Kind::kChar) continue;
      const RegexNode& inner = prog.nodes[look.kids[0]];
      if (inner.kind != Kind::kChar) continue;
      const auto& inner_conds = prog.preds[inner.pred].conds;
      if (look.negative && inner_conds.size() != 1) continue;
      RegexPred merged = prog.preds[next.pred];
      for (const auto& [cls, negate] : inner_conds) {
        merged.conds.emplace_back(cls, look.negative ? !negate : negate);
      }
      prog.preds.push_back(std::move(merged));
      RegexNode ch;
      ch.kind = Kind::kChar;
      ch.pred = static_cast<int32_t>(prog.preds.size() - 1);
      prog.nodes.push_back(std::move(ch));
      flat[i - 1] = static_cast<int32_t>(prog.nodes.size() - 1);
      flat.erase(flat.begin() + static_cast<std::ptrdiff_t>(i));
    }
    RegexNode& seq = prog.nodes[id];  // push_back may have moved the nodes
    seq.kids = std::move(flat);
    if (seq.kids.size() == 1) return seq.kids[0];
  }
  return id;
}

struct FirstInfo {
  bool nullable = true;
  std::vector<int32_t> preds;  // a non-nullable node starts with a character matching one
};

FirstInfo first_info(const RegexProgram& prog, int32_t id) {
  using Kind = RegexNode::Kind;
  const RegexNode& node = prog.nodes[id];
  FirstInfo info;
  switch (node.kind) {
    case Kind::kChar:
      info.nullable = false;
      info.preds = {node.pred};
      break;
    case Kind::kSeq:
      for (const int32_t kid : node.kids) {
        FirstInfo k = first_info(prog, kid);
        info.preds.insert(info.preds.end(), k.preds.begin(), k.preds.end());
        if (!k.nullable) {
          info.nullable = false;
          break;
        }
      }
      break;
    case Kind::kAlt:
      info.nullable = false;
      for (const int32_t kid : node.kids) {
        FirstInfo k = first_info(prog, kid);
        info.nullable |= k.nullable;
        info.preds.insert(info.preds.end(), k.preds.begin(), k.preds.end());
      }
      break;
    case Kind::kRepeat: {
      info = first_info(prog, node.kids[0]);
      info.nullable |= node.min == 0;
      break;
    }
    default:  // zero-width assertions: no restriction of their own
      break;
  }
  return info;
}

}  // namespace

RegexProgram compile_regex(std::string_view pattern) {
  RegexProgram prog = Parser(pattern).run();
  prog.root = simplify(prog, prog.root);
  FirstInfo first = first_info(prog, prog.root);
  prog.nullable = first.nullable;
  prog.first_known = !first.nullable;
  std::sort(first.preds.begin(), first.preds.end());
  first.preds.erase(std::unique(first.preds.begin(), first.preds.end()), first.preds.end());
  prog.first_preds = std::move(first.preds);
  return prog;
}

}  // namespace llmos
