// Splits text around the special tokens that occur in it, before any model-specific
// tokenization runs (llama.cpp's tokenizer_st_partition). Shared by every tokenizer.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace llmos {

// A piece of the input: either a matched special token, or raw text [begin, end) to tokenize.
struct TextFragment {
  TokenId token = kNoToken;  // kNoToken for raw text
  size_t begin = 0;
  size_t end = 0;
  bool is_text() const { return token == kNoToken; }
};

// The ids of control, user-defined and unknown tokens with non-empty text, longest text first
// (ties by id, so the order is deterministic). This is the order in which they claim text.
std::vector<TokenId> special_tokens_longest_first(const Vocab& vocab);

// Partitions `text`: each special token in `specials` order claims every non-overlapping
// occurrence (leftmost first) in the raw text left over by the tokens before it. User-defined
// tokens always take part; control and unknown tokens only when parse_special. Raw fragments
// are never empty; empty text gives no fragments. Cost is O(specials x text length).
std::vector<TextFragment> partition_special_tokens(std::string_view text, const Vocab& vocab,
                                                   const std::vector<TokenId>& specials,
                                                   bool parse_special);

}  // namespace llmos
