// Byte-level BPE for GPT-2-style vocabularies (tokenizer.ggml.model = "gpt2": GPT-2, Llama 3,
// Qwen2, SmolLM, DeepSeek, Falcon, StarCoder, ...), giving the same ids as llama.cpp:
//  1. special tokens are cut out of the text first (special_partition.h): user-defined ones
//     always, control and unknown ones with parse_special, with the attributes llama.cpp
//     settles for them (e.g. "<|im_end|>" or "<|endoftext|>" forced to control even when the
//     file types them normal, the lstrip/rstrip it sets by model name);
//  2. each remaining run is split into words by the pre-tokenizer tokenizer.ggml.pre selects;
//  3. each word's bytes become GPT-2's printable stand-in characters, which BPE merges pair
//     by pair, lowest merge rank first (ties to the leftmost pair);
//  4. a piece that ends up outside the vocab falls back to its bytes' single-character tokens.
// Decoding maps the stand-in characters back to bytes. Unlike llama.cpp's detokenizer,
// decode() does not "clean up" spaces before punctuation, so decode(encode(s)) == s.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe_merges.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/special_partition.h"
#include "tokenizer/token_table.h"
#include "tokenizer/tokenizer.h"

namespace llmos {

class BpeTokenizer final : public Tokenizer {
 public:
  // Takes any consistent vocab (e.g. built by hand in tests); scores and types may be left
  // empty. Error(kUnsupported) naming vocab.pre when no pre-tokenizer of that name exists;
  // kInvalidArgument naming the field for inconsistent sizes or special ids. `keys` carries the
  // metadata besides the vocab that settles special tokens (model name, eot/eom/FIM ids ...;
  // see resolve_special_tokens).
  explicit BpeTokenizer(Vocab vocab, const SpecialTokenKeys& keys = {});

  // Reads the vocab and the special-token keys of a GGUF file. bos and eos that the file
  // leaves unset (absent, or 0xFFFFFFFF) take llama.cpp's BPE default 11 when the vocab has
  // more than 11 tokens (bos stays unset for the glm4 / chatglm-bpe pre-tokenizers, as there).
  // kUnsupported for another tokenizer.ggml.model than "gpt2" or an unknown
  // tokenizer.ggml.pre; kFormat without tokenizer.ggml.merges.
  static std::unique_ptr<BpeTokenizer> from_gguf(const gguf::File& file);

  std::vector<TokenId> encode(std::string_view text, bool add_special,
                              bool parse_special = false) const override;
  // Pieces follow the token attributes, as llama.cpp's BPE token_to_piece: control and unknown
  // tokens print nothing unless `special` (then their text), user-defined tokens print their
  // text as is, normal tokens their bytes (GPT-2 stand-in characters decoded), byte tokens
  // "<0xNN>" their byte; unused and undefined tokens print nothing.
  std::string token_to_piece(TokenId id, bool special = false) const override;
  std::string decode(const std::vector<TokenId>& ids, bool special = false) const override;

  // The id of a token with exactly this (byte-level encoded) text, or kNoToken.
  TokenId find_token(std::string_view text) const { return token_ids_.find(text); }
  const PreTokenizer& pre_tokenizer() const { return pre_; }
  size_t num_merges() const { return merges_.size(); }

  // The settled special tokens: attributes, eot/eom/FIM ids, end-of-generation ids.
  const SpecialTokens& special_tokens() const { return special_; }
  TokenAttrs token_attrs(TokenId id) const;  // kInvalidArgument for an id outside the vocab
  TokenId eot() const { return special_.eot; }
  TokenId eom() const { return special_.eom; }
  // True for the ids that end generation (eos, eot, eom and llama.cpp's list by text).
  bool is_eog(TokenId id) const override { return special_.is_eog(id); }

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
  SpecialTokens special_;
  std::vector<std::string> pieces_;             // token_to_piece(id, special = true)
};

}  // namespace llmos
