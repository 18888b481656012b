// SentencePiece-style BPE for Llama-2-family vocabularies (tokenizer.ggml.model = "llama"),
// giving the same ids as llama.cpp's SPM tokenizer: spaces become U+2581, a dummy "▁" prefix
// starts the text and every text run that follows a special token, and adjacent pieces merge
// greedily by the score of the merged token. Pieces that end up outside the vocab fall back to
// <0xNN> byte tokens (or to the unknown token when the vocab lacks them).
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/char_pair_set.h"
#include "tokenizer/token_table.h"
#include "tokenizer/tokenizer.h"

namespace llmos {

class SpmTokenizer final : public Tokenizer {
 public:
  // Takes any consistent vocab (e.g. built by hand in tests): scores and types may be left
  // empty (0 and kNormal); otherwise they, and the special ids, must match the token count
  // (kInvalidArgument naming the field).
  explicit SpmTokenizer(Vocab vocab);

  std::vector<TokenId> encode(std::string_view text, bool add_special,
                              bool parse_special = false) const override;
  std::string token_to_piece(TokenId id, bool special = false) const override;
  std::string decode(const std::vector<TokenId>& ids, bool special = false) const override;

  // The id of a token with exactly this text (the highest id when texts repeat, as in
  // llama.cpp), or kNoToken.
  TokenId find_token(std::string_view text) const;

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
  std::vector<TokenId> specials_;           // longest text first
  std::vector<std::string> pieces_;         // token_to_piece(id, special = false)
};

}  // namespace llmos
