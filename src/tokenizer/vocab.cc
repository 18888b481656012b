// Vocab::from_gguf: reads and validates the tokenizer.ggml.* keys.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace llmos {
namespace {

constexpr std::string_view kModelKey = "tokenizer.ggml.model";
constexpr std::string_view kTokensKey = "tokenizer.ggml.tokens";
constexpr std::string_view kScoresKey = "tokenizer.ggml.scores";
constexpr std::string_view kTypesKey = "tokenizer.ggml.token_type";
constexpr std::string_view kMergesKey = "tokenizer.ggml.merges";
constexpr std::string_view kPreKey = "tokenizer.ggml.pre";

// The array of `element` under `key`, or null when the key is absent; kFormat otherwise.
const gguf::Array* find_array(const gguf::File& file, std::string_view key,
                              gguf::ValueType element) {
  const gguf::Value* value = file.find(key);
  if (value == nullptr) return nullptr;
  const gguf::Array* array = value->as_array();
  if (array == nullptr) {
    throw_error(StatusCode::kFormat, file.path(), ": key '", key, "' has type ",
                gguf::value_type_name(value->type()), ", expected an array of ",
                gguf::value_type_name(element));
  }
  if (array->element_type != element) {
    throw_error(StatusCode::kFormat, file.path(), ": key '", key, "' is an array of ",
                gguf::value_type_name(array->element_type), ", expected an array of ",
                gguf::value_type_name(element));
  }
  return array;
}

// Like find_array, and the array must hold one entry per token.
const gguf::Array* find_token_array(const gguf::File& file, std::string_view key,
                                    gguf::ValueType element, size_t n_tokens) {
  const gguf::Array* array = find_array(file, key, element);
  if (array != nullptr && array->items.size() != n_tokens) {
    throw_error(StatusCode::kFormat, file.path(), ": key '", key, "' has ",
                array->items.size(), " entries, expected one per token (", n_tokens, ")");
  }
  return array;
}

// tokenizer.ggml.scores, one per token, or null when absent. llama.cpp accepts an array of
// int32 as well as of float32 (it converts each integer to float), and nothing else; so does
// this.
const gguf::Array* find_scores(const gguf::File& file, size_t n_tokens) {
  const gguf::Value* value = file.find(kScoresKey);
  const gguf::Array* array = value != nullptr ? value->as_array() : nullptr;
  const auto type = gguf::ValueType::kInt32;
  const bool ints = array != nullptr && array->element_type == type;
  return find_token_array(file, kScoresKey, ints ? type : gguf::ValueType::kFloat32, n_tokens);
}

// Item i of an array whose element type was checked; a stray item of another type (which the
// reader never produces) is still an error rather than a crash.
template <typename T>
T entry(const gguf::File& file, std::string_view key, const gguf::Array& array, size_t i) {
  const T* value = array.items[i].as<T>();
  if (value == nullptr) {
    throw_error(StatusCode::kFormat, file.path(), ": key '", key, "' entry ", i,
                " has type ", gguf::value_type_name(array.items[i].type()));
  }
  return *value;
}

// A special token id: absent or 0xFFFFFFFF (the converters' "none") -> kNoToken.
TokenId read_token_id(const gguf::File& file, std::string_view key, size_t n_tokens) {
  const gguf::Value* value = file.find(key);
  if (value == nullptr) return kNoToken;
  if (!value->is_integer()) {
    throw_error(StatusCode::kFormat, file.path(), ": key '", key, "' has type ",
                gguf::value_type_name(value->type()), ", expected an integer token id");
  }
  int64_t id = 0;
  if (!value->to_int64(&id)) {  // a uint64 beyond int64: certainly outside the vocab
    throw_error(StatusCode::kFormat, file.path(), ": key '", key, "' = ",
                value->to_display_string(), " is outside the vocab (", n_tokens, " tokens)");
  }
  if (id == 0xFFFFFFFFll || id == -1) return kNoToken;
  if (id < 0 || static_cast<uint64_t>(id) >= n_tokens) {
    throw_error(StatusCode::kFormat, file.path(), ": key '", key, "' = ", id,
                " is outside the vocab (", n_tokens, " tokens)");
  }
  return static_cast<TokenId>(id);
}

}  // namespace

Vocab Vocab::from_gguf(const gguf::File& file) {
  Vocab vocab;
  vocab.model = file.get_string(kModelKey);

  const gguf::Array* tokens = find_array(file, kTokensKey, gguf::ValueType::kString);
  if (tokens == nullptr) {
    throw_error(StatusCode::kFormat, file.path(), ": missing required key '", kTokensKey, "'");
  }
  const size_t n = tokens->items.size();
  if (n == 0) throw_error(StatusCode::kFormat, file.path(), ": key '", kTokensKey, "' is empty");
  if (n > static_cast<size_t>(INT32_MAX)) {
    throw_error(StatusCode::kFormat, file.path(), ": key '", kTokensKey, "' has ", n,
                " tokens, more than a token id can index");
  }

  vocab.tokens.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string* text = tokens->items[i].as_string();
    if (text == nullptr) {
      throw_error(StatusCode::kFormat, file.path(), ": key '", kTokensKey, "' entry ", i,
                  " is not a string");
    }
    // llama.cpp names empty tokens so that no text lookup can ever match them.
    vocab.tokens.push_back(text->empty() ? "[EMPTY_" + std::to_string(i) + "]" : *text);
  }

  vocab.scores.assign(n, 0.0f);
  if (const gguf::Array* scores = find_scores(file, n)) {
    for (size_t i = 0; i < n; ++i) {
      vocab.scores[i] = scores->element_type == gguf::ValueType::kInt32
                            ? static_cast<float>(entry<int32_t>(file, kScoresKey, *scores, i))
                            : entry<float>(file, kScoresKey, *scores, i);
    }
  }

  vocab.types.assign(n, TokenType::kNormal);
  const gguf::Array* types = find_token_array(file, kTypesKey, gguf::ValueType::kInt32, n);
  if (types != nullptr) {
    for (size_t i = 0; i < n; ++i) {
      const int32_t type = entry<int32_t>(file, kTypesKey, *types, i);
      // Numbers this reader does not know are kept as "undefined" (as llama.cpp does) rather
      // than rejected, so files from newer converters still load.
      vocab.types[i] = type >= 0 && type <= static_cast<int32_t>(TokenType::kByte)
                           ? static_cast<TokenType>(type)
                           : TokenType::kUndefined;
    }
  }

  const gguf::Array* merges = find_array(file, kMergesKey, gguf::ValueType::kString);
  if (merges != nullptr) {
    vocab.merges.reserve(merges->items.size());
    for (size_t i = 0; i < merges->items.size(); ++i) {
      vocab.merges.push_back(entry<std::string>(file, kMergesKey, *merges, i));
    }
  }
  vocab.pre = file.get_string_or(kPreKey, "");

  vocab.bos = read_token_id(file, "tokenizer.ggml.bos_token_id", n);
  vocab.eos = read_token_id(file, "tokenizer.ggml.eos_token_id", n);
  vocab.unk = read_token_id(file, "tokenizer.ggml.unknown_token_id", n);
  vocab.pad = read_token_id(file, "tokenizer.ggml.padding_token_id", n);

  const bool is_spm = vocab.model == "llama";
  // llama.cpp adds BOS by default for SentencePiece and for Llama-3-style BPE vocabularies.
  const bool bos_default =
      is_spm || (vocab.model == "gpt2" && PreTokenizer::default_add_bos(vocab.pre));
  vocab.add_bos = file.get_bool_or("tokenizer.ggml.add_bos_token", bos_default);
  vocab.add_eos = file.get_bool_or("tokenizer.ggml.add_eos_token", false);
  vocab.add_space_prefix = file.get_bool_or("tokenizer.ggml.add_space_prefix", is_spm);
  return vocab;
}

}  // namespace llmos
