// Tokenizers read from a GGUF file's tokenizer.ggml.* keys: SentencePiece-style BPE for
// Llama-2-family vocabularies (tokenizer.ggml.model = "llama", spm_tokenizer.h) and byte-level
// BPE for GPT-2-style ones ("gpt2": Llama 3, Qwen2, SmolLM, ...; bpe_tokenizer.h).
// Behaviour follows llama.cpp's tokenizer for the same vocabulary (ids are identical), so that
// GGUF files behave the same here as there.
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
  std::vector<std::string> merges;   // tokenizer.ggml.merges ("left right", rank = index; BPE)
  std::string pre;                   // tokenizer.ggml.pre: the BPE pre-tokenizer ("" if absent)
  TokenId bos = kNoToken;
  TokenId eos = kNoToken;
  TokenId unk = kNoToken;
  TokenId pad = kNoToken;
  bool add_bos = false;              // tokenizer.ggml.add_bos_token (default true for "llama"
                                     // and for Llama-3-style "gpt2" pre-tokenizers)
  bool add_eos = false;
  bool add_space_prefix = true;      // tokenizer.ggml.add_space_prefix (SentencePiece dummy prefix)

  size_t size() const { return tokens.size(); }
  // Reads and validates the tokenizer keys (kFormat naming the key on bad or missing data).
  // Absent scores read as 0 (an int32 array is accepted besides float32 and converted, as
  // llama.cpp does), absent types as kNormal, absent merges as none, absent or 0xFFFFFFFF
  // special ids as kNoToken (the tokenizers' from_gguf then apply llama.cpp's defaults).
  // Empty token texts become "[EMPTY_<id>]" and unknown type numbers kUndefined, as llama.cpp
  // does, so text lookups agree with it.
  static Vocab from_gguf(const gguf::File& file);
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Text -> ids, as llama.cpp's llama_tokenize(add_special, parse_special). add_special
  // prepends BOS when vocab().add_bos and appends EOS when vocab().add_eos (each only when the
  // vocab has that token). User-defined tokens are always matched in the text; when
  // parse_special is true, control and unknown tokens (e.g. "<s>") are matched too.
  virtual std::vector<TokenId> encode(std::string_view text, bool add_special,
                                      bool parse_special = false) const = 0;
  // The bytes one token stands for when printed (SentencePiece: U+2581 -> ' ', <0xNN> -> byte).
  // Control, unknown, unused and undefined tokens print as "" unless `special`, in which case
  // control and unknown tokens print their text. Concatenating the pieces of a generated
  // sequence gives its text. Throws kInvalidArgument for an id outside the vocab.
  virtual std::string token_to_piece(TokenId id, bool special = false) const = 0;
  // ids -> text: the pieces concatenated, minus the one leading space that the dummy prefix
  // added (removed from the first non-empty piece when vocab().add_space_prefix), so
  // decode(encode(s, add_special)) == s for ordinary text. Unlike llama.cpp, a leading BOS
  // does not stop the space from being removed (when specials print as "").
  virtual std::string decode(const std::vector<TokenId>& ids, bool special = false) const = 0;

  const Vocab& vocab() const { return vocab_; }

  // True for tokens that end generation: EOS plus the end-of-turn tokens the vocabulary
  // declares or llama.cpp recognises by text (e.g. <|eot_id|>, <|im_end|>, <|end|>).
  virtual bool is_eog(TokenId id) const { return id != kNoToken && id == vocab_.eos; }

  // Reads the vocab and picks the implementation from tokenizer.ggml.model: "llama" ->
  // SentencePiece BPE (SpmTokenizer::from_gguf); "gpt2" -> byte-level BPE
  // (BpeTokenizer::from_gguf: kFormat without tokenizer.ggml.merges, kUnsupported naming an
  // unknown tokenizer.ggml.pre); another model -> kUnsupported naming it; no model key ->
  // kFormat. Both read the special-token keys (special_partition.h) besides the Vocab.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& file);

 protected:
  explicit Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}
  Vocab vocab_;
};

}  // namespace llmos
