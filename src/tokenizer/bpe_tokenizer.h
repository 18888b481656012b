// Byte-level BPE for GPT-2-style vocabularies (tokenizer.ggml.model = "gpt2": GPT-2, Llama 3,
// Qwen2, SmolLM, DeepSeek, Falcon, StarCoder, ...), giving the same ids as llama.cpp:
//  1. special tokens are cut out of the text first (user-defined always, control and unknown
//     ones with parse_special);
//  2. each remaining run is split into words by the pre-tokenizer tokenizer.ggml.pre selects;
//  3. each word's bytes become GPT-2's printable stand-in characters, which BPE merges pair
//     by pair, lowest merge rank first (ties to the leftmost pair);
//  4. a piece that ends up outside the vocab falls back to its bytes' single-character tokens.
// Decoding maps the stand-in characters back to bytes. Unlike llama.cpp's detokenizer,
// decode() does not "clean up" spaces before punctuation, so decode(encode(s)) == s.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe_merges.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/token_table.h"
#include "tokenizer/tokenizer.h"

namespace llmos {

class BpeTokenizer final : public Tokenizer {
 public:
  // Takes any consistent vocab (e.g. built by hand in tests); scores and types may be left
  // empty. Error(kUnsupported) naming vocab.pre when no pre-tokenizer of that name exists;
  // kInvalidArgument naming the field for inconsistent sizes or special ids.
  explicit BpeTokenizer(Vocab vocab);

  std::vector<TokenId> encode(std::string_view text, bool add_special,
                              bool parse_special = false) const override;
  std::string token_to_piece(TokenId id, bool special = false) const override;
  std::string decode(const std::vector<TokenId>& ids, bool special = false) const override;

  // The id of a token with exactly this (byte-level encoded) text, or kNoToken.
  TokenId find_token(std::string_view text) const { return token_ids_.find(text); }
  const PreTokenizer& pre_tokenizer() const { return pre_; }
  size_t num_merges() const { return merges_.size(); }

 private:
  struct Scratch;
  void encode_text(std::string_view text, Scratch& scratch, std::vector<TokenId>& out) const;
  // BPE on one word, given as raw bytes.
  void encode_word(std::string_view word, Scratch& scratch, std::vector<TokenId>& out) const;
  // Appends a piece's ids: its token, or the fallback of each of its bytes.
  void append_piece(int32_t symbol, std::string_view bytes, std::vector<TokenId>& out) const;
  // llama.cpp's decoding of a normal token's text into bytes.
  static std::string decode_token_text(std::string_view text);

  TokenTable token_ids_;  // indexes vocab_.tokens, which never changes after construction
  PreTokenizer pre_;
  BpeMerges merges_;
  std::array<int32_t, 256> byte_symbols_{};     // symbol of each byte's stand-in character
  std::array<std::string, 256> byte_chars_;     // UTF-8 of each byte's stand-in character
  std::array<std::vector<TokenId>, 256> byte_fallback_;  // see append_piece
  std::vector<TokenId> specials_;               // longest text first
  std::vector<std::string> pieces_;             // token_to_piece(id, special = false)
};

}  // namespace llmos
