#include "tokenizer/special_partition.h"

#include <algorithm>

namespace llmos {

std::vector<TokenId> special_tokens_longest_first(const Vocab& vocab) {
  std::vector<TokenId> ids;
  for (size_t i = 0; i < vocab.size(); ++i) {
    const TokenType type = vocab.types[i];
    if ((type == TokenType::kControl || type == TokenType::kUserDefined ||
         type == TokenType::kUnknown) &&
        !vocab.tokens[i].empty()) {
      ids.push_back(static_cast<TokenId>(i));
    }
  }
  // Longer tokens first so that e.g. "<|im_start|>" wins over a token "<|" inside it.
  std::stable_sort(ids.begin(), ids.end(), [&](TokenId a, TokenId b) {
    return vocab.tokens[a].size() > vocab.tokens[b].size();
  });
  return ids;
}

std::vector<TextFragment> partition_special_tokens(std::string_view text, const Vocab& vocab,
                                                   const std::vector<TokenId>& specials,
                                                   bool parse_special) {
  std::vector<TextFragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({kNoToken, 0, text.size()});

  std::vector<TextFragment> next;
  for (const TokenId id : specials) {
    const TokenType type = vocab.types[id];
    if (!parse_special && type != TokenType::kUserDefined) continue;
    const std::string_view needle = vocab.tokens[id];
    if (needle.empty()) continue;

    next.clear();
    bool matched = false;
    for (const TextFragment& fragment : fragments) {
      if (!fragment.is_text()) {
        next.push_back(fragment);
        continue;
      }
      // Search only inside this fragment: a match must not run into the next one.
      const std::string_view window = text.substr(0, fragment.end);
      size_t pos = fragment.begin;
      while (pos < fragment.end) {
        const size_t match = window.find(needle, pos);
        if (match == std::string_view::npos) break;
        matched = true;
        if (match > pos) next.push_back({kNoToken, pos, match});
        next.push_back({id, match, match + needle.size()});
        pos = match + needle.size();
      }
      if (pos < fragment.end) next.push_back({kNoToken, pos, fragment.end});
    }
    if (matched) fragments.swap(next);
  }
  return fragments;
}

}  // namespace llmos
