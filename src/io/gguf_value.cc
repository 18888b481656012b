#include "io/gguf_value.h"

#include <charconv>
#include <cstdio>
#include <limits>

namespace llmos::gguf {

std::string_view value_type_name(ValueType type) {
  switch (type) {
    case ValueType::kUint8:
      return "uint8";
    case ValueType::kInt8:
      return "int8";
    case ValueType::kUint16:
      return "uint16";
    case ValueType::kInt16:
      return "int16";
    case ValueType::kUint32:
      return "uint32";
    case ValueType::kInt32:
      return "int32";
    case ValueType::kFloat32:
      return "float32";
    case ValueType::kBool:
      return "bool";
    case ValueType::kString:
      return "string";
    case ValueType::kArray:
      return "array";
    case ValueType::kUint64:
      return "uint64";
    case ValueType::kInt64:
      return "int64";
    case ValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

bool Value::is_integer() const {
  switch (type()) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kUint16:
    case ValueType::kInt16:
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kUint64:
    case ValueType::kInt64:
      return true;
    default:
      return false;
  }
}

namespace {

// Integer payload widened without loss: signed types to int64, unsigned to uint64.
struct WideInt {
  bool is_signed;
  int64_t s;
  uint64_t u;
};

bool widen(const Value::Storage& st, WideInt* out) {
  return std::visit(
      [out](const auto& v) -> bool {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool> || !std::is_integral_v<T>) {
          return false;
        } else if constexpr (std::is_signed_v<T>) {
          *out = {true, static_cast<int64_t>(v), 0};
          return true;
        } else {
          *out = {false, 0, static_cast<uint64_t>(v)};
          return true;
        }
      },
      st);
}

template <typename T>
void append_number(std::string& out, T v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, res.ptr);
}

void append_quoted(std::string& out, const std::string& s, size_t max_chars) {
  out += '"';
  const size_t n = s.size() < max_chars ? s.size() : max_chars;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);  // UTF-8 bytes pass through
        }
    }
  }
  if (n < s.size()) out += "...";
  out += '"';
}

void append_display(std::string& out, const Value& value, size_t max_items) {
  constexpr size_t kMaxStringChars = 64;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) {
          out += v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          append_quoted(out, v, kMaxStringChars);
        } else if constexpr (std::is_same_v<T, Array>) {
          out += '[';
          const size_t n = v.items.size() < max_items ? v.items.size() : max_items;
          for (size_t i = 0; i < n; ++i) {
            if (i) out += ", ";
            append_display(out, v.items[i], max_items);
          }
          if (n < v.items.size()) {
            out += ", ... (";
            append_number(out, v.items.size());
            out += ' ';
            out += value_type_name(v.element_type);
            out += " items)";
          }
          out += ']';
        } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
          append_number(out, static_cast<int>(v));  // not as characters
        } else {
          append_number(out, v);
        }
      },
      value.storage());
}

}  // namespace

bool Value::to_int64(int64_t* out) const {
  WideInt w{};
  if (!widen(storage_, &w)) return false;
  if (w.is_signed) {
    *out = w.s;
    return true;
  }
  if (w.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  *out = static_cast<int64_t>(w.u);
  return true;
}

bool Value::to_uint64(uint64_t* out) const {
  WideInt w{};
  if (!widen(storage_, &w)) return false;
  if (w.is_signed) {
    if (w.s < 0) return false;
    *out = static_cast<uint64_t>(w.s);
    return true;
  }
  *out = w.u;
  return true;
}

bool Value::to_double(double* out) const {
  if (const float* f = std::get_if<float>(&storage_)) {
    *out = *f;
    return true;
  }
  if (const double* d = std::get_if<double>(&storage_)) {
    *out = *d;
    return true;
  }
  WideInt w{};
  if (!widen(storage_, &w)) return false;
  *out = w.is_signed ? static_cast<double>(w.s) : static_cast<double>(w.u);
  return true;
}

std::string Value::to_display_string(size_t max_items) const {
  std::string out;
  append_display(out, *this, max_items);
  return out;
}

}  // namespace llmos::gguf
