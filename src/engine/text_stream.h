// TextStream: the generated text of one request as it streams. Token pieces do
// not map 1:1 to characters (a byte-level token can end inside a UTF-8
// character, a SentencePiece vocabulary drops the leading space of the first
// piece), so the text is re-derived from all generated tokens and handed out in
// deltas that end on character boundaries. With stop strings, text that could
// still become the start of a stop string is held back, and nothing from the
// first stop string on is ever handed out.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace llmos {

class TextStream {
 public:
  // Appends the pieces of generated tokens not seen yet (the span only ever grows).
  void update(const Tokenizer& tokenizer, std::span<const int32_t> generated);
  // True once any stop string occurs in the text; remembers the earliest
  // position.
  bool find_stop(const std::vector<std::string>& stop_strings);
  // The next delta that is safe to show now.
  std::string take_ready(const std::vector<std::string>& stop_strings);
  // Everything not yet handed out, cut before the stop string when `stopped`.
  std::string take_rest(bool stopped);
  // The whole text, cut before the stop string when `stopped`.
  std::string final_text(bool stopped) const;

 private:
  size_t end_for(bool stopped) const;

  std::string text_;
  size_t num_decoded_ = 0;  // tokens that text_ reflects
  size_t emitted_ = 0;      // bytes handed out
  size_t checked_ = 0;      // bytes already searched for stop strings
  size_t stop_at_ = std::string::npos;
};

}  // namespace llmos
