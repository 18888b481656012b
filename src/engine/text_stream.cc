#include "engine/text_stream.h"

#include <algorithm>

namespace llmos {
namespace {

// Length of the longest prefix of `s` that does not end inside a UTF-8
// sequence.
size_t complete_utf8_prefix(const std::string& s, size_t end) {
  // Walk back over at most 3 continuation bytes to the lead byte of the last
  // sequence.
  size_t i = end;
  int back = 0;
  while (i > 0 && back < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++back;
  }
  if (i == 0) return end;  // only continuation bytes: nothing to wait for
  const auto lead = static_cast<unsigned char>(s[i - 1]);
  size_t need = 1;
  if (lead >= 0xF0) {
    need = 4;
  } else if (lead >= 0xE0) {
    need = 3;
  } else if (lead >= 0xC0) {
    need = 2;
  }
  if (need == 1) return end;  // ASCII (or stray continuation bytes before it)
  const size_t have = end - (i - 1);
  return have >= need ? end : i - 1;
}

size_t longest(const std::vector<std::string>& strings) {
  size_t n = 0;
  for (const auto& s : strings) n = std::max(n, s.size());
  return n;
}

}  // namespace

void TextStream::update(const Tokenizer& tokenizer, std::span<const int32_t> generated) {
  // The continuation's text is its tokens' pieces, appended as they come: unlike decode(), no
  // dummy-prefix space is removed from the first one, so prompt + text reads as one text.
  for (size_t i = num_decoded_; i < generated.size(); ++i) {
    text_ += tokenizer.token_to_piece(generated[i]);
  }
  num_decoded_ = std::max(num_decoded_, generated.size());
}

bool TextStream::find_stop(const std::vector<std::string>& stop_strings) {
  if (stop_at_ != std::string::npos) return true;
  const size_t longest_stop = longest(stop_strings);
  if (longest_stop == 0) return false;
  // A match may straddle what was searched before and what is new.
  const size_t from = checked_ >= longest_stop ? checked_ - longest_stop + 1 : 0;
  for (const auto& stop : stop_strings) {
    const size_t at = text_.find(stop, from);
    if (at != std::string::npos) stop_at_ = std::min(stop_at_, at);
  }
  checked_ = text_.size();
  return stop_at_ != std::string::npos;
}

std::string TextStream::take_ready(const std::vector<std::string>& stop_strings) {
  size_t end = text_.size();
  const size_t hold = longest(stop_strings);
  if (hold > 0) end = end >= hold - 1 ? end - (hold - 1) : 0;
  if (stop_at_ != std::string::npos) end = std::min(end, stop_at_);
  end = complete_utf8_prefix(text_, end);
  if (end <= emitted_) return {};
  std::string out = text_.substr(emitted_, end - emitted_);
  emitted_ = end;
  return out;
}

size_t TextStream::end_for(bool stopped) const {
  return stopped && stop_at_ != std::string::npos ? stop_at_ : text_.size();
}

std::string TextStream::take_rest(bool stopped) {
  const size_t end = end_for(stopped);
  if (end <= emitted_) return {};
  std::string out = text_.substr(emitted_, end - emitted_);
  emitted_ = end;
  return out;
}

std::string TextStream::final_text(bool stopped) const { return text_.substr(0, end_for(stopped)); }

}  // namespace llmos
