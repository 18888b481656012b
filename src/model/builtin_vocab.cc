#include "model/builtin_vocab.h"

#include <cstdio>
#include <set>
#include <string>
#include <vector>

namespace llmos {
namespace {

const char* const kWords[] = {
    "the", "and", "was", "she", "he", "they", "it", "to", "a", "of", "in", "on", "with", "her",
    "his", "said", "one", "day", "little", "big", "girl", "boy", "dog", "cat", "sun", "tree",
    "once", "upon", "time", "there", "play", "happy", "friend", "park", "ball", "mom", "saw",
    "went", "wanted", "very", "kernel", "model", "token", "memory", "llm", "os", "run", "fast"};

}  // namespace

int64_t add_builtin_vocab(gguf::Writer& writer) {
  const std::string space = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space
  std::vector<std::string> tokens{"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types{2, 3, 3};  // unknown, control, control
  // Byte-fallback tokens only for tab, newline and printable ASCII: whatever a random-weight
  // model samples then prints as readable text, never invalid UTF-8 or terminal escapes.
  // Other characters in a prompt fall back to <unk>.
  for (int b = 0; b < 128; ++b) {
    if (b != '\t' && b != '\n' && (b < 0x20 || b == 0x7F)) continue;
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    tokens.emplace_back(buf);
    types.push_back(6);  // byte
  }
  std::set<std::string> seen(tokens.begin(), tokens.end());
  auto add_normal = [&](const std::string& piece) {
    if (seen.insert(piece).second) {
      tokens.push_back(piece);
      types.push_back(1);
    }
  };
  add_normal(space);
  for (char c = 33; c < 127; ++c) add_normal(std::string(1, c));
  for (const char* word : kWords) {
    const std::string full = space + word;
    for (size_t len = space.size() + 1; len <= full.size(); ++len) add_normal(full.substr(0, len));
  }
  // Scores: longer pieces merge first, as in trained SentencePiece vocabularies.
  std::vector<float> scores(tokens.size(), 0.0f);
  const size_t first_piece = 3 + 97;  // after the control and byte tokens
  for (size_t i = first_piece; i < tokens.size(); ++i) {
    scores[i] = static_cast<float>(tokens[i].size()) - static_cast<float>(i) * 1e-4f;
  }
  gguf::Array token_array{gguf::ValueType::kString, {}};
  gguf::Array score_array{gguf::ValueType::kFloat32, {}};
  gguf::Array type_array{gguf::ValueType::kInt32, {}};
  for (size_t i = 0; i < tokens.size(); ++i) {
    token_array.items.emplace_back(tokens[i]);
    score_array.items.emplace_back(scores[i]);
    type_array.items.emplace_back(types[i]);
  }
  writer.set("tokenizer.ggml.model", gguf::Value(std::string("llama")));
  writer.set("tokenizer.ggml.tokens", gguf::Value(std::move(token_array)));
  writer.set("tokenizer.ggml.scores", gguf::Value(std::move(score_array)));
  writer.set("tokenizer.ggml.token_type", gguf::Value(std::move(type_array)));
  writer.set("tokenizer.ggml.bos_token_id", gguf::Value(uint32_t{1}));
  writer.set("tokenizer.ggml.eos_token_id", gguf::Value(uint32_t{2}));
  writer.set("tokenizer.ggml.unknown_token_id", gguf::Value(uint32_t{0}));
  return static_cast<int64_t>(tokens.size());
}

}  // namespace llmos
