// A minimal JSON reader for test fixtures (objects, arrays, strings with escapes, numbers,
// true/false/null). Throws std::runtime_error on malformed input.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace llmos::test {

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = Kind::kNull;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<JsonValue> array;
  std::map<std::string, JsonValue> object;

  const JsonValue& at(const std::string& key) const;
};

JsonValue parse_json(const std::string& text);
std::string read_file(const std::string& path);

}  // namespace llmos::test
