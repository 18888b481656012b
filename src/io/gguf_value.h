// GGUF metadata values: every scalar type, strings, and (nested) arrays.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace llmos::gguf {

// Deepest array nesting accepted by the reader and the writer (an array of arrays is depth 2);
// deeper files are rejected rather than recursed into, so a crafted file cannot exhaust the stack.
inline constexpr int kMaxArrayDepth = 4;

// On-disk type tags (GGUF v2/v3).
enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

std::string_view value_type_name(ValueType type);

class Value;

struct Array {
  ValueType element_type = ValueType::kUint8;
  std::vector<Value> items;
  bool operator==(const Array&) const = default;
};

class Value {
 public:
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool,
                               std::string, Array, uint64_t, int64_t, double>;

  Value() : storage_(uint8_t{0}) {}
  // Any type the storage variant accepts (int -> int32, size_t -> uint64, ...). Constrained so
  // that copying a non-const Value picks the copy constructor, not this template.
  template <typename T>
  requires(!std::is_same_v<std::remove_cvref_t<T>, Value> && std::is_constructible_v<Storage, T>)
      Value(T v)
      : storage_(std::move(v)) {}                     // NOLINT(google-explicit-constructor)
  Value(const char* s) : storage_(std::string(s)) {}  // NOLINT(google-explicit-constructor)

  ValueType type() const { return static_cast<ValueType>(storage_.index()); }
  const Storage& storage() const { return storage_; }

  bool is_integer() const;
  bool is_float() const { return type() == ValueType::kFloat32 || type() == ValueType::kFloat64; }
  bool is_string() const { return type() == ValueType::kString; }
  bool is_array() const { return type() == ValueType::kArray; }

  // Conversions return false (leaving *out untouched) when the value is not of a compatible
  // type or does not fit: integers convert between widths only when the value is in range.
  bool to_int64(int64_t* out) const;
  bool to_uint64(uint64_t* out) const;
  bool to_double(double* out) const;  // any integer or float
  const std::string* as_string() const { return std::get_if<std::string>(&storage_); }
  const Array* as_array() const { return std::get_if<Array>(&storage_); }
  const bool* as_bool() const { return std::get_if<bool>(&storage_); }
  // The scalar of exactly type T, or null (e.g. as<uint32_t>() for general.alignment).
  template <typename T>
  const T* as() const {
    return std::get_if<T>(&storage_);
  }

  // Short human-readable rendering (arrays abbreviated), used by `llmos info`.
  std::string to_display_string(size_t max_items = 8) const;

  // Same type and same value (NaN != NaN, as for floats).
  bool operator==(const Value&) const = default;

 private:
  Storage storage_;
};

}  // namespace llmos::gguf
