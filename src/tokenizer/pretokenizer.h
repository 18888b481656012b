// Pre-tokenization for byte-level BPE: splits text into the words BPE merges inside, chosen
// by tokenizer.ggml.pre exactly as llama.cpp chooses them (the same regex list per
// pre-tokenizer type, applied one after the other: each regex splits every word the previous
// ones produced, keeping both its matches and the text between them as words).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pretokenizer_fast.h"
#include "tokenizer/regex.h"

namespace llmos {

class PreTokenizer {
 public:
  // `name` is the tokenizer.ggml.pre value; "" (key absent) means "default", as in llama.cpp.
  // An unknown name is Error(kUnsupported) naming it.
  explicit PreTokenizer(std::string_view name);

  static bool is_supported(std::string_view name);
  // Every accepted tokenizer.ggml.pre value.
  static std::vector<std::string_view> supported_names();
  // Whether llama.cpp adds BOS for this pre-tokenizer when tokenizer.ggml.add_bos_token is
  // absent (Llama 3 style vocabularies); false for unknown names.
  static bool default_add_bos(std::string_view name);

  const std::string& name() const { return name_; }
  const std::vector<std::string>& patterns() const { return patterns_; }
  // Llama 3 style: a word that is itself a token is emitted whole, without merging.
  bool ignore_merges() const { return ignore_merges_; }

  // Reusable buffers for split(), so that encoding allocates little.
  struct Scratch {
    std::vector<char32_t> cpts;   // the decoded text (llama.cpp's lossy decoding)
    std::vector<uint16_t> flags;  // unicode_flags() of each code point
    std::vector<uint32_t> ends;   // end offset (in code points) of each word, in order
    std::vector<uint32_t> next;
  };
  // Decodes `text` into s.cpts and fills s.ends with the word boundaries.
  void split(std::string_view text, Scratch& s) const;
  // The words as UTF-8 (re-encoded from the decoded code points), for tests and tools.
  std::vector<std::string> split_words(std::string_view text) const;

 private:
  struct Stage {
    FastSplitter fast = nullptr;  // when set, used instead of the regex
    std::optional<Regex> regex;
  };
  std::string name_;
  std::vector<std::string> patterns_;
  std::vector<Stage> stages_;
  bool ignore_merges_ = false;
};

}  // namespace llmos
