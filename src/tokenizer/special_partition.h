// Special tokens as llama.cpp settles them when it loads a vocab, shared by every tokenizer:
// per-token attributes (its llama_token_attr bits, derived from the token types and then
// adjusted by token text and model name), the end-of-generation ids, and the split of input
// text around special tokens before any model-specific tokenization runs (its
// tokenizer_st_partition).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/gguf_reader.h"
#include "tokenizer/tokenizer.h"

namespace llmos {

// ---- Attributes -------------------------------------------------------------------------------

// Token attribute bits, with llama.cpp's llama_token_attr values.
using TokenAttrs = uint32_t;
inline constexpr TokenAttrs kAttrUndefined = 0;
inline constexpr TokenAttrs kAttrUnknown = 1u << 0;
inline constexpr TokenAttrs kAttrUnused = 1u << 1;
inline constexpr TokenAttrs kAttrNormal = 1u << 2;
inline constexpr TokenAttrs kAttrControl = 1u << 3;
inline constexpr TokenAttrs kAttrUserDefined = 1u << 4;
inline constexpr TokenAttrs kAttrByte = 1u << 5;
inline constexpr TokenAttrs kAttrNormalized = 1u << 6;
inline constexpr TokenAttrs kAttrLstrip = 1u << 7;  // swallows ASCII whitespace before it
inline constexpr TokenAttrs kAttrRstrip = 1u << 8;  // swallows ASCII whitespace after it
inline constexpr TokenAttrs kAttrSingleWord = 1u << 9;
// Tokens with any of these bits are matched in raw text by the partition.
inline constexpr TokenAttrs kAttrSpecial = kAttrControl | kAttrUserDefined | kAttrUnknown;

// The attribute a token type maps to (unknown type numbers read as kUndefined -> 0).
TokenAttrs attrs_from_type(TokenType type);

// The GGUF metadata besides the Vocab that llama.cpp consults to settle special tokens.
struct SpecialTokenKeys {
  std::string model_name;    // general.name (the Phi-3 rule matches it, lower-cased)
  std::string architecture;  // general.architecture
  std::string pre;           // tokenizer.ggml.pre
  // tokenizer.ggml.{eot,eom,fim_pre,fim_suf,fim_mid,fim_pad,fim_rep,fim_sep}_token_id (the
  // deprecated prefix/suffix/middle_token_id override fim_pre/suf/mid, as in llama.cpp). Absent
  // keys, and values that are no token id, are kNoToken: the id is then looked up by text.
  TokenId eot = kNoToken;
  TokenId eom = kNoToken;
  TokenId fim_pre = kNoToken;
  TokenId fim_suf = kNoToken;
  TokenId fim_mid = kNoToken;
  TokenId fim_pad = kNoToken;
  TokenId fim_rep = kNoToken;
  TokenId fim_sep = kNoToken;

  // Reads the keys above; a key of the wrong type is kFormat naming it.
  static SpecialTokenKeys from_gguf(const gguf::File& file);
};

// The settled special tokens of one vocab.
struct SpecialTokens {
  std::vector<TokenAttrs> attrs;  // id -> attributes
  TokenId eot = kNoToken;         // end of turn
  TokenId eom = kNoToken;         // end of message (tool call)
  TokenId fim_pre = kNoToken;
  TokenId fim_suf = kNoToken;
  TokenId fim_mid = kNoToken;
  TokenId fim_pad = kNoToken;
  TokenId fim_rep = kNoToken;
  TokenId fim_sep = kNoToken;
  std::vector<TokenId> eog;  // ids that end generation, ascending
  // Tokens with kAttrSpecial and non-empty text, longest text first (ties by id): the order
  // in which they claim text.
  std::vector<TokenId> partition_order;

  bool is_eog(TokenId id) const;
};

// Settles the special tokens of `vocab` (types, texts and eos must be consistent, as
// SpmTokenizer checks) the way llama.cpp's vocab loader does:
//  - attributes start from the token types;
//  - eot, eom and the FIM ids come from `keys`, else from the first text in llama.cpp's list for
//    each (e.g. "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>" ... for
//    eot); a token found by text becomes control. llama.cpp takes whichever candidate its hash
//    map yields first; this takes the first in list order, so Phi-3's eot is "<|end|>";
//  - control tokens whose text contains "unused" are also marked unused;
//  - every token whose text is in llama.cpp's end-of-generation list ("<|eot_id|>", "<|end|>",
//    "<end_of_turn>", "<|endoftext|>", "</s>", ...) ends generation and becomes control, as do
//    eos, eot, eom, fim_pad, fim_rep and fim_sep;
//  - "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>" become user-defined only;
//    "<|end|>" stops ending generation and becomes user-defined when "<|return|>" and
//    "<|call|>" (or "<|calls|>" and "<|flush|>") also end it; "</s>" becomes normal and stops
//    ending generation when "<|tool_response>" ends it;
//  - by name: "<mask>" gets lstrip for the jina-v2-{de,es,code} pre-tokenizers and the
//    nomic-bert-moe / jina-bert-v3 architectures; for a model name containing "phi-3" or
//    "phi3" every special token gets rstrip, "</s>" too, but "<unk>", "<s>" and
//    "<|endoftext|>" do not (llama.cpp fails to load when one of those four is missing; here it
//    is skipped); for "modern-bert", "[MASK]" gets lstrip.
SpecialTokens resolve_special_tokens(const Vocab& vocab, const SpecialTokenKeys& keys);

// ---- Partition --------------------------------------------------------------------------------

// A piece of the input: either a matched special token, or raw text [begin, end) to tokenize.
struct TextFragment {
  TokenId token = kNoToken;  // kNoToken for raw text
  size_t begin = 0;
  size_t end = 0;
  bool is_text() const { return token == kNoToken; }
};

// The ids of control, user-defined and unknown tokens (by type) with non-empty text, longest
// text first (ties by id, so the order is deterministic).
std::vector<TokenId> special_tokens_longest_first(const Vocab& vocab);

// Partitions `text`: each special token in `specials` order claims every non-overlapping
// occurrence (leftmost first) in the raw text left over by the tokens before it. Tokens with
// kAttrUserDefined always take part; those with kAttrControl or kAttrUnknown only when
// parse_special. A token with kAttrLstrip drops the ASCII whitespace (" \t\n\v\f\r") that
// directly precedes it within the raw fragment it was found in, kAttrRstrip the whitespace
// that follows it. Raw fragments are never empty; empty text gives no fragments. Cost is
// O(specials x text length).
std::vector<TextFragment> partition_special_tokens(std::string_view text,
                                                   const std::vector<std::string>& tokens,
                                                   const std::vector<TokenAttrs>& attrs,
                                                   const std::vector<TokenId>& specials,
                                                   bool parse_special);

// The same with attributes taken from the token types alone (no whitespace stripping).
std::vector<TextFragment> partition_special_tokens(std::string_view text, const Vocab& vocab,
                                                   const std::vector<TokenId>& specials,
                                                   bool parse_special);

}  // namespace llmos
