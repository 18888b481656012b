#include "tokenizer/special_partition.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>

#include "core/error.h"
#include "tokenizer/token_table.h"

namespace llmos {
namespace {

using TextList = std::span<const std::string_view>;

// The token texts llama.cpp's loader looks for (llama-vocab.cpp, "auto-detect special tokens
// by text"), in its order. The DeepSeek texts use U+FF5C and U+2581, spelled out in UTF-8.
#define LLMOS_FW_BAR "\xEF\xBD\x9C"  // U+FF5C FULLWIDTH VERTICAL LINE
#define LLMOS_SP "\xE2\x96\x81"      // U+2581
#define LLMOS_DEEPSEEK_EOS "<" LLMOS_FW_BAR "end" LLMOS_SP "of" LLMOS_SP "sentence" LLMOS_FW_BAR ">"
// clang-format off
constexpr std::string_view kEotTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", LLMOS_DEEPSEEK_EOS, "<end_of_utterance>"};
constexpr std::string_view kEomTexts[] = {"<|eom_id|>"};
constexpr std::string_view kFimPreTexts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<" LLMOS_FW_BAR "fim" LLMOS_SP "begin"
    LLMOS_FW_BAR ">", "<PRE>", LLMOS_SP "<PRE>", "<|code_prefix|>", "<|prefix|>"};
constexpr std::string_view kFimSufTexts[] = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<" LLMOS_FW_BAR "fim" LLMOS_SP "hole"
    LLMOS_FW_BAR ">", "<SUF>", LLMOS_SP "<SUF>", "<|code_suffix|>", "<|suffix|>"};
constexpr std::string_view kFimMidTexts[] = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<" LLMOS_FW_BAR "fim" LLMOS_SP "end"
    LLMOS_FW_BAR ">", "<MID>", LLMOS_SP "<MID>", "<|code_middle|>", "<|middle|>"};
constexpr std::string_view kFimPadTexts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
                                             "[PAD]"};
constexpr std::string_view kFimRepTexts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                             "<REPO>", "<reponame>"};
constexpr std::string_view kFimSepTexts[] = {"<|file_sep|>"};
// Tokens that end generation (and are forced to control).
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    LLMOS_DEEPSEEK_EOS, "[e~["};
// gpt-oss tokens that llama.cpp always renders (forced to user-defined only).
constexpr std::string_view kAlwaysRenderedTexts[] = {"<|channel|>", "<|message|>", "<|start|>",
                                                     "<|constrain|>"};
// clang-format on
#undef LLMOS_DEEPSEEK_EOS
#undef LLMOS_FW_BAR
#undef LLMOS_SP

bool contains_any(std::string_view text, std::initializer_list<std::string_view> needles) {
  return std::any_of(needles.begin(), needles.end(), [&](std::string_view needle) {
    return text.find(needle) != std::string_view::npos;
  });
}

// isspace() in the C locale, which is what llama.cpp's partition calls.
bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

const std::string* string_key(const gguf::File& file, std::string_view key) {
  const gguf::Value* value = file.find(key);
  if (value == nullptr) return nullptr;
  const std::string* text = value->as_string();
  if (text == nullptr) {
    throw_error(StatusCode::kFormat, file.path(), ": key '", key, "' has type ",
                gguf::value_type_name(value->type()), ", expected string");
  }
  return text;
}

// An optional token id key. Like llama.cpp, a value that is no id of the vocab's n_tokens
// (negative, the converters' 0xFFFFFFFF "none", too large) is ignored rather than rejected.
TokenId id_key(const gguf::File& file, std::string_view key, size_t n_tokens, TokenId fallback) {
  const gguf::Value* value = file.find(key);
  if (value == nullptr) return fallback;
  if (!value->is_integer()) {
    throw_error(StatusCode::kFormat, file.path(), ": key '", key, "' has type ",
                gguf::value_type_name(value->type()), ", expected an integer token id");
  }
  int64_t id = -1;
  if (!value->to_int64(&id) || id < 0 || static_cast<uint64_t>(id) >= n_tokens ||
      id >= std::numeric_limits<TokenId>::max()) {
    return fallback;
  }
  return static_cast<TokenId>(id);
}

// The id of a key if it is in the vocab, else kNoToken.
TokenId in_vocab(TokenId id, size_t n) {
  return id >= 0 && static_cast<size_t>(id) < n ? id : kNoToken;
}

// eot, eom and the FIM ids: from the keys, else the first text of llama.cpp's list that the
// vocab has, which then becomes control.
void find_special_ids(const SpecialTokenKeys& keys, const TokenTable& table, SpecialTokens& st) {
  const struct {
    TokenId* id;
    TokenId key;
    TextList texts;
  } categories[] = {
      {&st.eot, keys.eot, kEotTexts},
      {&st.eom, keys.eom, kEomTexts},
      {&st.fim_pre, keys.fim_pre, kFimPreTexts},
      {&st.fim_suf, keys.fim_suf, kFimSufTexts},
      {&st.fim_mid, keys.fim_mid, kFimMidTexts},
      {&st.fim_pad, keys.fim_pad, kFimPadTexts},
      {&st.fim_rep, keys.fim_rep, kFimRepTexts},
      {&st.fim_sep, keys.fim_sep, kFimSepTexts},
  };
  for (const auto& category : categories) {
    *category.id = in_vocab(category.key, st.attrs.size());
    if (*category.id != kNoToken) continue;
    for (const std::string_view text : category.texts) {
      const TokenId id = table.find(text);
      if (id == kNoToken) continue;
      *category.id = id;
      st.attrs[id] |= kAttrControl;
      break;
    }
  }
}

// The end-of-generation set, with the attribute changes llama.cpp makes on the way.
void settle_end_of_generation(const Vocab& vocab, const TokenTable& table, SpecialTokens& st) {
  const size_t n = vocab.size();
  std::vector<bool> eog(n, false);
  const auto mark = [&](TokenId id) {
    if (in_vocab(id, n) != kNoToken) eog[id] = true;
  };
  mark(st.fim_pad);
  mark(st.fim_rep);
  mark(st.fim_sep);
  for (const std::string_view text : kEogTexts) {
    const TokenId id = table.find(text);
    if (id == kNoToken) continue;
    eog[id] = true;
    st.attrs[id] |= kAttrControl;
  }
  for (const std::string_view text : kAlwaysRenderedTexts) {
    const TokenId id = table.find(text);
    if (id != kNoToken) st.attrs[id] = kAttrUserDefined;
  }
  mark(vocab.eos);
  mark(st.eot);
  mark(st.eom);

  // gpt-oss / solar-open: "<|end|>" ends a message there, not generation.
  bool has_return = false, has_call = false, has_flush = false;
  TokenId end_id = kNoToken;
  // gemma4 / paddleocr: "</s>" is ordinary text there.
  bool has_tool_response = false;
  TokenId eos_text_id = kNoToken;
  for (size_t i = 0; i < n; ++i) {
    if (!eog[i]) continue;
    const std::string& text = vocab.tokens[i];
    has_return |= text == "<|return|>";
    has_call |= text == "<|call|>" || text == "<|calls|>";
    has_flush |= text == "<|flush|>";
    has_tool_response |= text == "<|tool_response>";
    if (text == "<|end|>") end_id = static_cast<TokenId>(i);
    if (text == "</s>") eos_text_id = static_cast<TokenId>(i);
  }
  if (end_id != kNoToken && has_call && (has_return || has_flush)) {
    eog[end_id] = false;
    st.attrs[end_id] = kAttrUserDefined;
  }
  if (has_tool_response && eos_text_id != kNoToken) {
    eog[eos_text_id] = false;
    st.attrs[eos_text_id] = kAttrNormal;
  }
  for (size_t i = 0; i < n; ++i) {
    if (eog[i]) st.eog.push_back(static_cast<TokenId>(i));
  }
}

// Whitespace stripping by model name, which llama.cpp sets last of all ("Handle per token
// attributes"); needs partition_order.
void set_strip_by_name(const SpecialTokenKeys& keys, const TokenTable& table, SpecialTokens& st) {
  std::string name = keys.model_name;
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  const auto set_attr = [&](std::string_view text, TokenAttrs attr, bool on) {
    const TokenId id = table.find(text);
    if (id == kNoToken) return;
    st.attrs[id] = on ? (st.attrs[id] | attr) : (st.attrs[id] & ~attr);
  };
  if (contains_any(keys.pre, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
      contains_any(keys.architecture, {"nomic-bert-moe", "jina-bert-v3"})) {
    set_attr("<mask>", kAttrLstrip, true);
  } else if (contains_any(name, {"phi-3", "phi3"})) {
    for (const TokenId id : st.partition_order) st.attrs[id] |= kAttrRstrip;
    set_attr("</s>", kAttrRstrip, true);
    for (const std::string_view text : {"<unk>", "<s>", "<|endoftext|>"}) {
      set_attr(text, kAttrRstrip, false);
    }
  } else if (contains_any(name, {"modern-bert"})) {
    set_attr("[MASK]", kAttrLstrip, true);
  }
}

// The partition itself; attrs_of(id) gives a token's attributes.
template <typename AttrsOf>
std::vector<TextFragment> partition(std::string_view text, const std::vector<std::string>& tokens,
                                    const std::vector<TokenId>& specials, bool parse_special,
                                    const AttrsOf& attrs_of) {
  std::vector<TextFragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({kNoToken, 0, text.size()});

  std::vector<TextFragment> next;
  for (const TokenId id : specials) {
    const TokenAttrs attrs = attrs_of(id);
    if ((attrs & kAttrSpecial) == 0) continue;
    if (!parse_special && (attrs & (kAttrControl | kAttrUnknown)) != 0) continue;
    const std::string_view needle = tokens[id];
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
        size_t left_end = match;
        if ((attrs & kAttrLstrip) != 0) {
          while (left_end > pos && is_ascii_space(text[left_end - 1])) --left_end;
        }
        if (left_end > pos) next.push_back({kNoToken, pos, left_end});
        next.push_back({id, match, match + needle.size()});
        pos = match + needle.size();
        if ((attrs & kAttrRstrip) != 0) {
          while (pos < fragment.end && is_ascii_space(text[pos])) ++pos;
        }
      }
      if (pos < fragment.end) next.push_back({kNoToken, pos, fragment.end});
    }
    if (matched) fragments.swap(next);
  }
  return fragments;
}

}  // namespace

TokenAttrs attrs_from_type(TokenType type) {
  switch (type) {
    case TokenType::kNormal:
      return kAttrNormal;
    case TokenType::kUnknown:
      return kAttrUnknown;
    case TokenType::kControl:
      return kAttrControl;
    case TokenType::kUserDefined:
      return kAttrUserDefined;
    case TokenType::kUnused:
      return kAttrUnused;
    case TokenType::kByte:
      return kAttrByte;
    case TokenType::kUndefined:
      break;
  }
  return kAttrUndefined;
}

SpecialTokenKeys SpecialTokenKeys::from_gguf(const gguf::File& file) {
  SpecialTokenKeys keys;
  if (const std::string* s = string_key(file, "general.name")) keys.model_name = *s;
  if (const std::string* s = string_key(file, "general.architecture")) keys.architecture = *s;
  if (const std::string* s = string_key(file, "tokenizer.ggml.pre")) keys.pre = *s;
  // Ids are checked against the token count when there is a token list (Vocab::from_gguf
  // reports a bad one); otherwise later, by resolve_special_tokens.
  size_t n = std::numeric_limits<size_t>::max();
  if (const gguf::Value* tokens = file.find("tokenizer.ggml.tokens")) {
    if (const gguf::Array* array = tokens->as_array()) n = array->items.size();
  }
  keys.eot = id_key(file, "tokenizer.ggml.eot_token_id", n, kNoToken);
  keys.eom = id_key(file, "tokenizer.ggml.eom_token_id", n, kNoToken);
  keys.fim_pre = id_key(file, "tokenizer.ggml.fim_pre_token_id", n, kNoToken);
  keys.fim_suf = id_key(file, "tokenizer.ggml.fim_suf_token_id", n, kNoToken);
  keys.fim_mid = id_key(file, "tokenizer.ggml.fim_mid_token_id", n, kNoToken);
  keys.fim_pad = id_key(file, "tokenizer.ggml.fim_pad_token_id", n, kNoToken);
  keys.fim_rep = id_key(file, "tokenizer.ggml.fim_rep_token_id", n, kNoToken);
  keys.fim_sep = id_key(file, "tokenizer.ggml.fim_sep_token_id", n, kNoToken);
  // llama.cpp reads the deprecated keys after the new ones, so they win when both are set.
  keys.fim_pre = id_key(file, "tokenizer.ggml.prefix_token_id", n, keys.fim_pre);
  keys.fim_suf = id_key(file, "tokenizer.ggml.suffix_token_id", n, keys.fim_suf);
  keys.fim_mid = id_key(file, "tokenizer.ggml.middle_token_id", n, keys.fim_mid);
  return keys;
}

bool SpecialTokens::is_eog(TokenId id) const {
  return std::binary_search(eog.begin(), eog.end(), id);
}

SpecialTokens resolve_special_tokens(const Vocab& vocab, const SpecialTokenKeys& keys) {
  SpecialTokens st;
  st.attrs.resize(vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) {
    st.attrs[i] = i < vocab.types.size() ? attrs_from_type(vocab.types[i]) : kAttrNormal;
  }
  const TokenTable table(vocab.tokens);
  // The steps run in the order of llama.cpp's loader, since later ones override earlier ones.
  find_special_ids(keys, table, st);
  for (size_t i = 0; i < vocab.size(); ++i) {
    if ((st.attrs[i] & kAttrControl) != 0 && vocab.tokens[i].find("unused") != std::string::npos) {
      st.attrs[i] |= kAttrUnused;
    }
  }
  settle_end_of_generation(vocab, table, st);
  for (size_t i = 0; i < vocab.size(); ++i) {
    if ((st.attrs[i] & kAttrSpecial) != 0 && !vocab.tokens[i].empty()) {
      st.partition_order.push_back(static_cast<TokenId>(i));
    }
  }
  std::stable_sort(st.partition_order.begin(), st.partition_order.end(), [&](TokenId a, TokenId b) {
    return vocab.tokens[a].size() > vocab.tokens[b].size();
  });
  set_strip_by_name(keys, table, st);
  return st;
}

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

std::vector<TextFragment> partition_special_tokens(std::string_view text,
                                                   const std::vector<std::string>& tokens,
                                                   const std::vector<TokenAttrs>& attrs,
                                                   const std::vector<TokenId>& specials,
                                                   bool parse_special) {
  return partition(text, tokens, specials, parse_special, [&](TokenId id) { return attrs[id]; });
}

std::vector<TextFragment> partition_special_tokens(std::string_view text, const Vocab& vocab,
                                                   const std::vector<TokenId>& specials,
                                                   bool parse_special) {
  return partition(text, vocab.tokens, specials, parse_special,
                   [&](TokenId id) { return attrs_from_type(vocab.types[id]); });
}

}  // namespace llmos
