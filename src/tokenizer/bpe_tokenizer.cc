#include "tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "core/error.h"
#include "tokenizer/special_partition.h"
#include "tokenizer/unicode.h"

namespace llmos {
namespace {

void check_special_id(TokenId id, size_t n, const char* field) {
  LLMOS_CHECK_ARG(id == kNoToken || (id >= 0 && static_cast<size_t>(id) < n), "vocab.", field,
                  " = ", id, " is outside the vocab (", n, " tokens)");
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "<0xNN>" -> NN, or -1.
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  const int hi = hex_digit(text[3]);
  const int lo = hex_digit(text[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

}  // namespace

// Merge state for one word: a linked list of pieces over the word's bytes and a heap of
// candidate merges. A candidate is stale once either piece has changed; the pieces' symbols at
// push time tell (a piece only changes by growing, which changes its symbol).
struct BpeTokenizer::Scratch {
  struct Piece {
    int32_t symbol;
    uint32_t begin;
    uint32_t len;  // 0 once merged into its left neighbour
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    int32_t rank;
    int32_t left;
    int32_t right;
    int32_t left_symbol;
    int32_t right_symbol;
    int32_t result;
  };
  PreTokenizer::Scratch pre;
  std::string word;
  std::string encoded;
  std::vector<Piece> pieces;
  std::vector<Candidate> heap;
};

BpeTokenizer::BpeTokenizer(Vocab vocab, const SpecialTokenKeys& keys)
    : Tokenizer(std::move(vocab)), pre_(vocab_.pre) {
  const size_t n = vocab_.size();
  LLMOS_CHECK_ARG(n > 0, "vocab has no tokens");
  LLMOS_CHECK_ARG(n < static_cast<size_t>(std::numeric_limits<TokenId>::max()), "vocab has ", n,
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

  token_ids_ = TokenTable(vocab_.tokens);
  merges_ = BpeMerges(token_ids_, n, vocab_.merges);

  for (int b = 0; b < 256; ++b) {
    std::string& c = byte_chars_[b];
    unicode_append_utf8(c, byte_to_unicode(static_cast<uint8_t>(b)));
    byte_symbols_[b] = merges_.symbol(c);
    // llama.cpp's fallback for a piece that is no token: each byte of the piece's encoded
    // text, looked up as a one-byte token (and dropped when there is none).
    for (const char e : c) {
      const TokenId id = find_token(std::string_view(&e, 1));
      if (id != kNoToken) byte_fallback_[b].push_back(id);
    }
  }

  special_ = resolve_special_tokens(vocab_, keys);

  // What llama.cpp's token-to-piece cache holds (special = true), by attribute in its order;
  // token_to_piece() blanks control and unknown tokens when special is false.
  pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = vocab_.tokens[i];
    const TokenAttrs attrs = special_.attrs[i];
    if ((attrs & kAttrSpecial) != 0) {
      pieces_[i] = text;
    } else if ((attrs & kAttrNormal) != 0) {
      pieces_[i] = decode_token_text(text);
    } else if ((attrs & kAttrByte) != 0) {
      const int byte = parse_byte_token(text);
      pieces_[i] = byte >= 0 ? std::string(1, static_cast<char>(byte)) : decode_token_text(text);
    }  // unused, undefined: not printed
  }
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_gguf(const gguf::File& file) {
  // llama.cpp refuses a BPE vocab without merges, and so do we (with the key named).
  if (file.find("tokenizer.ggml.merges") == nullptr) {
    throw_error(StatusCode::kFormat, file.path(),
                ": missing required key 'tokenizer.ggml.merges' (needed by tokenizer model "
                "'gpt2')");
  }
  Vocab vocab = Vocab::from_gguf(file);
  if (vocab.model != "gpt2") {
    throw_error(StatusCode::kUnsupported, file.path(), ": tokenizer model '", vocab.model,
                "' (tokenizer.ggml.model) is not byte-level BPE ('gpt2')");
  }
  if (!PreTokenizer::is_supported(vocab.pre)) {
    throw_error(StatusCode::kUnsupported, file.path(), ": pre-tokenizer '", vocab.pre,
                "' (tokenizer.ggml.pre) is not supported");
  }
  // llama.cpp's loader starts a BPE vocab with bos = eos = 11 (<|endoftext|> in Falcon's
  // vocab), clears bos for the glm4 / chatglm-bpe pre-tokenizers, and keeps those defaults
  // where the file has no key or the converters' 0xFFFFFFFF "none" (it ignores any id outside
  // the vocab; Vocab::from_gguf rejects other such ids); a default outside the vocab is dropped.
  constexpr TokenId kBpeDefaultId = 11;
  const bool glm = vocab.pre == "glm4" || vocab.pre == "chatglm-bpe";
  const auto fill_default = [&](TokenId& id) {
    if (id == kNoToken && static_cast<size_t>(kBpeDefaultId) < vocab.size()) id = kBpeDefaultId;
  };
  if (!glm) fill_default(vocab.bos);
  fill_default(vocab.eos);
  return std::make_unique<BpeTokenizer>(std::move(vocab), SpecialTokenKeys::from_gguf(file));
}

TokenAttrs BpeTokenizer::token_attrs(TokenId id) const {
  LLMOS_CHECK_ARG(id >= 0 && static_cast<size_t>(id) < vocab_.size(), "token id ", id,
                  " is outside the vocab (", vocab_.size(), " tokens)");
  return special_.attrs[id];
}

std::string BpeTokenizer::decode_token_text(std::string_view text) {
  std::vector<char32_t> cpts;
  unicode_decode_lossy(text, cpts);
  std::string out;
  out.reserve(text.size());
  for (const char32_t c : cpts) {
    const int byte = unicode_to_byte(c);
    if (byte >= 0) {
      out += static_cast<char>(byte);
      continue;
    }
    // Not a byte stand-in: llama.cpp writes a marker with the character's bytes and the
    // whole token text.
    std::string utf8;
    unicode_append_utf8(utf8, c);
    out += "[UNK_BYTE_0x";
    for (const char u : utf8) {
      char hex[3];
      std::snprintf(hex, sizeof(hex), "%02x", static_cast<unsigned>(static_cast<uint8_t>(u)));
      out += hex;
    }
    out.append(text);
    out += ']';
  }
  return out;
}

std::vector<TokenId> BpeTokenizer::encode(std::string_view text, bool add_special,
                                          bool parse_special) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && vocab_.add_bos && vocab_.bos != kNoToken) out.push_back(vocab_.bos);
  Scratch scratch;
  for (const TextFragment& fragment : partition_special_tokens(
           text, vocab_.tokens, special_.attrs, special_.partition_order, parse_special)) {
    if (fragment.is_text()) {
      encode_text(text.substr(fragment.begin, fragment.end - fragment.begin), scratch, out);
    } else {
      out.push_back(fragment.token);
    }
  }
  if (add_special && vocab_.add_eos && vocab_.eos != kNoToken) out.push_back(vocab_.eos);
  return out;
}

void BpeTokenizer::encode_text(std::string_view text, Scratch& scratch,
                               std::vector<TokenId>& out) const {
  pre_.split(text, scratch.pre);
  const std::vector<char32_t>& cpts = scratch.pre.cpts;
  size_t begin = 0;
  for (const uint32_t end : scratch.pre.ends) {
    // Words are the UTF-8 of the decoded code points (as in llama.cpp, an invalid byte has
    // become U+FFFD by now).
    scratch.word.clear();
    for (size_t i = begin; i < end; ++i) unicode_append_utf8(scratch.word, cpts[i]);
    encode_word(scratch.word, scratch, out);
    begin = end;
  }
}

void BpeTokenizer::encode_word(std::string_view word, Scratch& scratch,
                               std::vector<TokenId>& out) const {
  if (word.empty()) return;
  const auto byte_at = [&](size_t i) { return static_cast<uint8_t>(word[i]); };
  if (pre_.ignore_merges()) {
    scratch.encoded.clear();
    for (size_t i = 0; i < word.size(); ++i) scratch.encoded += byte_chars_[byte_at(i)];
    const TokenId id = find_token(scratch.encoded);
    if (id != kNoToken) {
      out.push_back(id);
      return;
    }
  }
  if (word.size() == 1) {
    append_piece(byte_symbols_[byte_at(0)], word, out);
    return;
  }

  auto& pieces = scratch.pieces;
  auto& heap = scratch.heap;
  pieces.clear();
  heap.clear();
  const auto n = static_cast<int32_t>(word.size());
  for (int32_t i = 0; i < n; ++i) {
    pieces.push_back({byte_symbols_[byte_at(i)], static_cast<uint32_t>(i), 1, i - 1,
                      i + 1 < n ? i + 1 : -1});
  }
  // Lowest rank first; equal ranks (the same pair twice) leftmost first.
  const auto later = [](const Scratch::Candidate& a, const Scratch::Candidate& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  const auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const int32_t ls = pieces[left].symbol;
    const int32_t rs = pieces[right].symbol;
    const BpeMerges::Merge m = merges_.find(ls, rs);
    if (m.rank < 0) return;
    heap.push_back({m.rank, left, right, ls, rs, m.result});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (int32_t i = 1; i < n; ++i) try_add(i - 1, i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Scratch::Candidate c = heap.back();
    heap.pop_back();
    Scratch::Piece& left = pieces[c.left];
    Scratch::Piece& right = pieces[c.right];
    if (left.len == 0 || right.len == 0 || left.symbol != c.left_symbol ||
        right.symbol != c.right_symbol) {
      continue;
    }
    left.symbol = c.result;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) pieces[right.next].prev = c.left;
    try_add(left.prev, c.left);
    try_add(c.left, left.next);
  }

  for (int32_t i = 0; i >= 0; i = pieces[i].next) {
    const Scratch::Piece& p = pieces[i];
    append_piece(p.symbol, word.substr(p.begin, p.len), out);
  }
}

void BpeTokenizer::append_piece(int32_t symbol, std::string_view bytes,
                                std::vector<TokenId>& out) const {
  if (symbol >= 0 && static_cast<size_t>(symbol) < vocab_.size()) {
    out.push_back(symbol);
    return;
  }
  for (const char b : bytes) {
    const auto& ids = byte_fallback_[static_cast<uint8_t>(b)];
    out.insert(out.end(), ids.begin(), ids.end());
  }
}

std::string BpeTokenizer::token_to_piece(TokenId id, bool special) const {
  LLMOS_CHECK_ARG(id >= 0 && static_cast<size_t>(id) < vocab_.size(), "token id ", id,
                  " is outside the vocab (", vocab_.size(), " tokens)");
  if (!special && (special_.attrs[id] & (kAttrControl | kAttrUnknown)) != 0) return {};
  return pieces_[id];
}

std::string BpeTokenizer::decode(const std::vector<TokenId>& ids, bool special) const {
  std::string out;
  bool strip_space = vocab_.add_space_prefix;  // as llama.cpp's detokenizer (off for BPE)
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
