#include "tokenizer/spm_tokenizer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace llmos {
namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's space

std::string escape_spaces(std::string_view text, bool dummy_prefix) {
  std::string out;
  out.reserve(text.size() + text.size() / 4 + kSpaceMark.size());
  if (dummy_prefix) out += kSpaceMark;
  for (const char c : text) {
    if (c == ' ') {
      out += kSpaceMark;
    } else {
      out += c;
    }
  }
  return out;
}

std::string unescape_spaces(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t mark = text.find(kSpaceMark, pos);
    if (mark == std::string_view::npos) {
      out.append(text.substr(pos));
      break;
    }
    out.append(text.substr(pos, mark - pos));
    out += ' ';
    pos = mark + kSpaceMark.size();
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "<0xNN>" -> NN, or -1 when the text is not of that form.
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  const int hi = hex_digit(text[3]);
  const int lo = hex_digit(text[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

void check_special_id(TokenId id, size_t n, const char* field) {
  LLMOS_CHECK_ARG(id == kNoToken || (id >= 0 && static_cast<size_t>(id) < n), "vocab.", field,
                  " = ", id, " is outside the vocab (", n, " tokens)");
}

constexpr size_t kNone = std::numeric_limits<size_t>::max();

}  // namespace

// A doubly linked list of pieces over the chunk; merging folds the right piece into the left.
// Candidate merges are adjacent pairs whose concatenation is a token, best first: highest
// token score, ties to the leftmost pair. Entries go stale when a neighbour merges; `len`
// detects that (a live pair's lengths still add up to it).
struct SpmTokenizer::Scratch {
  struct Symbol {
    size_t begin;
    size_t len;  // 0 once merged into its left neighbour
    size_t prev;
    size_t next;
  };
  struct Bigram {
    float score;
    size_t left;
    size_t right;
    size_t len;
  };
  std::vector<Symbol> symbols;
  std::vector<Bigram> queue;
};

SpmTokenizer::SpmTokenizer(Vocab vocab, const SpecialTokenKeys& keys)
    : Tokenizer(std::move(vocab)) {
  const size_t n = vocab_.size();
  LLMOS_CHECK_ARG(n > 0, "vocab has no tokens");
  LLMOS_CHECK_ARG(n <= static_cast<size_t>(std::numeric_limits<TokenId>::max()), "vocab has ", n,
                  " tokens, more than a TokenId can index");
  if (vocab_.scores.empty()) vocab_.scores.assign(n, 0.0f);
  if (vocab_.types.empty()) vocab_.types.assign(n, TokenType::kNormal);
  LLMOS_CHECK_ARG(vocab_.scores.size() == n, "vocab.scores has ", vocab_.scores.size(),
                  " entries, expected one per token (", n, ")");
  LLMOS_CHECK_ARG(vocab_.types.size() == n, "vocab.types has ", vocab_.types.size(),
                  " entries, expected one per token (", n, ")");
  check_special_id(vocab_.bos, n, "bos");
  check_special_id(vocab_.eos, n, "eos");
  check_special_id(vocab_.unk, n, "unk");
  check_special_id(vocab_.pad, n, "pad");
  // A NaN score would break the merge queue's ordering; such a token can never win a merge.
  for (float& score : vocab_.scores) {
    if (std::isnan(score)) score = -std::numeric_limits<float>::infinity();
  }

  token_ids_ = TokenTable(vocab_.tokens);
  pairs_ = CharPairSet(vocab_.tokens);

  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char name[6] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
    TokenId id = find_token(std::string_view(name, sizeof(name)));
    // Like llama.cpp, a vocab without <0xNN> may still hold the byte itself as a token.
    const char raw = static_cast<char>(b);
    if (id == kNoToken) id = find_token(std::string_view(&raw, 1));
    byte_tokens_[b] = id;
  }

  special_ = resolve_special_tokens(vocab_, keys);

  // What llama.cpp's token-to-piece cache holds (special = true); token_to_piece() blanks
  // control and unknown tokens when special is false.
  pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = vocab_.tokens[i];
    const TokenAttrs attrs = special_.attrs[i];
    if ((attrs & kAttrSpecial) != 0) {
      pieces_[i] = text;
    } else if ((attrs & kAttrNormal) != 0) {
      pieces_[i] = unescape_spaces(text);
    } else if ((attrs & kAttrByte) != 0) {
      const int byte = parse_byte_token(text);
      pieces_[i] = byte >= 0 ? std::string(1, static_cast<char>(byte)) : unescape_spaces(text);
    }  // unused, undefined: not printed
  }
}

std::unique_ptr<SpmTokenizer> SpmTokenizer::from_gguf(const gguf::File& file) {
  Vocab vocab = Vocab::from_gguf(file);
  if (vocab.model != "llama") {
    throw_error(StatusCode::kUnsupported, file.path(), ": tokenizer model '", vocab.model,
                "' (tokenizer.ggml.model) is not SentencePiece ('llama')");
  }
  const auto fill_default = [&](TokenId& id, TokenId fallback) {
    if (id == kNoToken && static_cast<size_t>(fallback) < vocab.size()) id = fallback;
  };
  fill_default(vocab.bos, 1);
  fill_default(vocab.eos, 2);
  fill_default(vocab.unk, 0);
  return std::make_unique<SpmTokenizer>(std::move(vocab), SpecialTokenKeys::from_gguf(file));
}

TokenId SpmTokenizer::find_token(std::string_view text) const { return token_ids_.find(text); }

std::vector<TokenId> SpmTokenizer::encode(std::string_view text, bool add_special,
                                          bool parse_special) const {
  std::vector<TokenId> out;
  if (add_special && vocab_.add_bos && vocab_.bos != kNoToken) out.push_back(vocab_.bos);

  // The dummy prefix goes before the first text run and before every run that follows a
  // special token, as llama.cpp does.
  bool after_special = true;
  Scratch scratch;
  for (const TextFragment& fragment : partition_special_tokens(
           text, vocab_.tokens, special_.attrs, special_.partition_order, parse_special)) {
    if (!fragment.is_text()) {
      out.push_back(fragment.token);
      after_special = true;
      continue;
    }
    const std::string escaped =
        escape_spaces(text.substr(fragment.begin, fragment.end - fragment.begin),
                      vocab_.add_space_prefix && after_special);
    encode_run(escaped, scratch, out);
    after_special = false;
  }

  if (add_special && vocab_.add_eos && vocab_.eos != kNoToken) out.push_back(vocab_.eos);
  return out;
}

void SpmTokenizer::encode_run(std::string_view text, Scratch& scratch,
                              std::vector<TokenId>& out) const {
  size_t chunk_begin = 0;
  std::string_view prev;
  for_each_utf8_char(text, [&](size_t begin, size_t len) {
    const std::string_view c = text.substr(begin, len);
    if (!prev.empty() && !pairs_.contains(prev, c)) {
      encode_chunk(text.substr(chunk_begin, begin - chunk_begin), scratch, out);
      chunk_begin = begin;
    }
    prev = c;
  });
  if (chunk_begin < text.size()) encode_chunk(text.substr(chunk_begin), scratch, out);
}

void SpmTokenizer::encode_chunk(std::string_view text, Scratch& scratch,
                                std::vector<TokenId>& out) const {
  // A single character needs no merging.
  if (text.size() <= 4 && utf8_sequence_length(static_cast<uint8_t>(text[0])) >= text.size()) {
    const TokenId id = find_token(text);
    if (id != kNoToken) {
      out.push_back(id);
    } else {
      append_fallback(text, out);
    }
    return;
  }

  auto& symbols = scratch.symbols;
  auto& queue = scratch.queue;
  symbols.clear();
  queue.clear();
  for_each_utf8_char(text, [&](size_t begin, size_t len) {
    const size_t index = symbols.size();
    symbols.push_back({begin, len, index == 0 ? kNone : index - 1, kNone});
    if (index > 0) symbols[index - 1].next = index;
  });

  const auto lower_priority = [](const Scratch::Bigram& a, const Scratch::Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  const auto try_add = [&](size_t left, size_t right) {
    if (left == kNone || right == kNone) return;
    const size_t len = symbols[left].len + symbols[right].len;
    const TokenId id = find_token(text.substr(symbols[left].begin, len));
    if (id == kNoToken) return;
    queue.push_back({vocab_.scores[id], left, right, len});
    std::push_heap(queue.begin(), queue.end(), lower_priority);
  };

  for (size_t i = 1; i < symbols.size(); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), lower_priority);
    const Scratch::Bigram best = queue.back();
    queue.pop_back();

    auto& left = symbols[best.left];
    auto& right = symbols[best.right];
    if (left.len == 0 || right.len == 0 || left.len + right.len != best.len) continue;

    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next != kNone) symbols[right.next].prev = best.left;

    try_add(left.prev, best.left);
    try_add(best.left, left.next);
  }

  for (size_t i = 0; i != kNone; i = symbols[i].next) {
    const std::string_view piece = text.substr(symbols[i].begin, symbols[i].len);
    const TokenId id = find_token(piece);
    if (id != kNoToken) {
      out.push_back(id);
    } else {
      append_fallback(piece, out);
    }
  }
}

void SpmTokenizer::append_fallback(std::string_view piece, std::vector<TokenId>& out) const {
  const bool all_bytes = std::all_of(piece.begin(), piece.end(), [&](char c) {
    return byte_tokens_[static_cast<uint8_t>(c)] != kNoToken;
  });
  if (all_bytes) {
    for (const char c : piece) out.push_back(byte_tokens_[static_cast<uint8_t>(c)]);
    return;
  }
  if (vocab_.unk == kNoToken) {
    throw_error(StatusCode::kUnsupported, "tokenizer: text piece of ", piece.size(),
                " bytes is not in the vocab, which has neither byte tokens for it nor an "
                "unknown token");
  }
  out.push_back(vocab_.unk);
}

std::string SpmTokenizer::token_to_piece(TokenId id, bool special) const {
  LLMOS_CHECK_ARG(id >= 0 && static_cast<size_t>(id) < vocab_.size(), "token id ", id,
                  " is outside the vocab (", vocab_.size(), " tokens)");
  if (!special && (special_.attrs[id] & (kAttrControl | kAttrUnknown)) != 0) return {};
  return pieces_[id];
}

TokenAttrs SpmTokenizer::token_attrs(TokenId id) const {
  LLMOS_CHECK_ARG(id >= 0 && static_cast<size_t>(id) < vocab_.size(), "token id ", id,
                  " is outside the vocab (", vocab_.size(), " tokens)");
  return special_.attrs[id];
}

std::string SpmTokenizer::decode(const std::vector<TokenId>& ids, bool special) const {
  std::string out;
  bool strip_space = vocab_.add_space_prefix;
  for (const TokenId id : ids) {
    const std::string piece = token_to_piece(id, special);
    if (piece.empty()) continue;
    const bool strip = strip_space && piece.front() == ' ';
    out.append(piece, strip ? 1 : 0);
    strip_space = false;
  }
  return out;
}

}  // namespace llmos
