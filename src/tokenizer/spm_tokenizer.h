// SentencePiece-style BPE for vocabularies with tokenizer.ggml.model = "llama" (Llama 1/2,
// Mistral v0.1-v0.3, Phi-3/3.5, Gemma 1-3, CodeLlama, TinyLlama ...), giving the same ids as
// llama.cpp's SPM tokenizer:
//  - special tokens are split off first (special_partition.h): user-defined ones always, control
//    and unknown ones with parse_special, with the attributes llama.cpp gives them (e.g. the
//    rstrip of Phi-3's chat tokens, or "<|end|>" forced to control);
//  - in each remaining text run spaces become U+2581, and when add_space_prefix a dummy "▁"
//    starts the first run and every run that follows a special token;
//  - adjacent pieces merge greedily by the score of the merged token (any vocab token, as in
//    llama.cpp); pieces that end up outside the vocab fall back per byte to <0xNN> tokens, or to
//    a token whose text is that single byte (vocabs without byte tokens), or else to the
//    unknown token (llama.cpp aborts there).
// tokenizer.ggml.remove_extra_whitespaces is not applied: llama.cpp honours it only for UGM.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/char_pair_set.h"
#include "tokenizer/special_partition.h"
#include "tokenizer/token_table.h"
#include "tokenizer/tokenizer.h"

namespace llmos {

class SpmTokenizer final : public Tokenizer {
 public:
  // Takes any consistent vocab (e.g. built by hand in tests): scores and types may be left
  // empty (0 and kNormal); otherwise they, and the special ids, must match the token count
  // (kInvalidArgument naming the field). `keys` carries the metadata besides the vocab that
  // settles special tokens (model name, eot/eom ids ...; see resolve_special_tokens).
  explicit SpmTokenizer(Vocab vocab, const SpecialTokenKeys& keys = {});

  // Reads the vocab and the special-token keys of a GGUF file. bos, eos and unk that the file
  // leaves unset (absent, or no valid id) take llama.cpp's SPM defaults 1, 2 and 0 when the
  // vocab has that many tokens. Another tokenizer.ggml.model than "llama" is kUnsupported.
  static std::unique_ptr<SpmTokenizer> from_gguf(const gguf::File& file);

  std::vector<TokenId> encode(std::string_view text, bool add_special,
                              bool parse_special = false) const override;
  // Pieces follow the token attributes: control and unknown tokens print nothing unless
  // `special` (then their text), user-defined tokens print their text as is, normal tokens
  // with U+2581 turned into spaces, byte tokens their byte; anything else prints nothing.
  std::string token_to_piece(TokenId id, bool special = false) const override;
  std::string decode(const std::vector<TokenId>& ids, bool special = false) const override;

  // The id of a token with exactly this text (the highest id when texts repeat, as in
  // llama.cpp), or kNoToken.
  TokenId find_token(std::string_view text) const;

  // The settled special tokens: attributes, eot/eom/FIM ids, end-of-generation ids.
  const SpecialTokens& special_tokens() const { return special_; }
  TokenAttrs token_attrs(TokenId id) const;  // kInvalidArgument for an id outside the vocab
  TokenId eot() const { return special_.eot; }
  TokenId eom() const { return special_.eom; }
  // True for the ids that end generation (eos, eot, eom and llama.cpp's list by text).
  bool is_eog(TokenId id) const override { return special_.is_eog(id); }

 private:
  struct Scratch;
  // Merges one escaped text run and appends its ids. The run is cut, exactly, into chunks
  // that no token can span (see pairs_), which keeps the merge queue small and local.
  void encode_run(std::string_view text, Scratch& scratch, std::vector<TokenId>& out) const;
  // The greedy merge itself, on one chunk.
  void encode_chunk(std::string_view text, Scratch& scratch, std::vector<TokenId>& out) const;
  // Appends a piece that is not a token as byte tokens, or one unknown token.
  void append_fallback(std::string_view piece, std::vector<TokenId>& out) const;

  // Both index vocab_.tokens, which never changes after construction.
  TokenTable token_ids_;
  CharPairSet pairs_;  // only where a pair is in here can a merge join two characters
  std::array<TokenId, 256> byte_tokens_{};  // kNoToken where the vocab has no token for a byte
  SpecialTokens special_;
  std::vector<std::string> pieces_;  // token_to_piece(id, special = true)
};

}  // namespace llmos
