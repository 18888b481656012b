// JSON output for the CLI's line-oriented results: strings escaped so that any bytes give
// valid JSON (control characters as \u00XX, invalid UTF-8 as U+FFFD), plus a small builder for
// one flat object per line.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace llmos::cli {

// Appends `bytes` as a quoted JSON string. Well-formed UTF-8 is kept as is; every byte that
// does not start a well-formed sequence (stray continuation, overlong form, surrogate, beyond
// U+10FFFF, truncated) becomes U+FFFD, so the output is always valid UTF-8 and valid JSON.
void append_json_string(std::string& out, std::string_view bytes);
std::string json_string(std::string_view bytes);

// Builds {"key": value, ...} in insertion order; keys are written as given (escaped).
class JsonObject {
 public:
  JsonObject& add(std::string_view key, std::string_view value);  // a string
  JsonObject& add(std::string_view key, const char* value) {
    return add(key, std::string_view(value));
  }
  JsonObject& add(std::string_view key, int64_t value);
  JsonObject& add(std::string_view key, std::span<const int32_t> values);  // an array of integers
  std::string str() const { return text_ + "}"; }

 private:
  void key(std::string_view k);
  std::string text_ = "{";
};

}  // namespace llmos::cli
