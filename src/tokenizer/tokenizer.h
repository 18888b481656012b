// Tokenizers read from a GGUF file's tokenizer.ggml.* keys. This scope is the
// SentencePiece-style BPE used by Llama-2-family vocabularies (tokenizer.ggml.model = "llama");
// the interface is shared with byte-level BPE ("gpt2"), which plugs in through from_gguf().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/gguf_reader.h"

namespace llmos {

using TokenId = int32_t;
inline constexpr TokenId kNoToken = -1;

// Token attribute as stored in tokenizer.ggml.token_type.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct Vocab {
  std::string model;                 // tokenizer.ggml.model: "llama", "gpt2", ...
  std::vector<std::string> tokens;   // id -> text (SentencePiece uses U+2581 for space)
  std::vector<float> scores;         // id -> score (merge priority for SentencePiece)
  std::vector<TokenType> types;      // id -> attribute
  TokenId bos = kNoToken;
  TokenId eos = kNoToken;
  TokenId unk = kNoToken;
  TokenId pad = kNoToken;
  bool add_bos = false;              // tokenizer.ggml.add_bos_token (default true for "llama")
  bool add_eos = false;
  bool add_space_prefix = true;      // tokenizer.ggml.add_space_prefix (SentencePiece dummy prefix)

  size_t size() const { return tokens.size(); }
  // Reads and validates the tokenizer keys (kFormat naming the key on bad or missing data).
  static Vocab from_gguf(const gguf::File& file);
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text -> ids. add_bos prepends BOS when the vocab has one. When parse_special is true, the
  // text of control/user-defined tokens that appears in `text` is matched as those tokens.
  virtual std::vector<TokenId> encode(std::string_view text, bool add_bos,
                                      bool parse_special = false) const = 0;
  // The bytes one token stands for when printed (SentencePiece: U+2581 -> ' ', <0xNN> -> byte,
  // control tokens -> empty). Concatenating pieces of a generated sequence gives its text.
  virtual std::string token_to_piece(TokenId id) const = 0;
  // ids -> text. Drops the leading space the dummy prefix added when the first id begins a
  // word (as SentencePiece does), so decode(encode(s)) == s for ordinary text.
  virtual std::string decode(const std::vector<TokenId>& ids) const = 0;

  const Vocab& vocab() const { return vocab_; }

  // Picks the implementation from tokenizer.ggml.model; kUnsupported names an unknown model.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& file);

 protected:
  explicit Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}
  Vocab vocab_;
};

}  // namespace llmos
