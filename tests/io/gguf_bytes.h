// Hand-assembles GGUF images byte by byte, independently of gguf::Writer, so reader tests can
// craft files the writer would refuse to produce (other versions, malformed fields) and know
// the exact byte offset of every field they corrupt.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

// Substring check that prints the whole message on failure.
#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

namespace llmos::test {

class GgufBytes {
 public:
  std::vector<uint8_t> bytes;

  size_t size() const { return bytes.size(); }

  GgufBytes& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  GgufBytes& u8(uint8_t v) { return le(v, 1); }
  GgufBytes& u16(uint16_t v) { return le(v, 2); }
  GgufBytes& u32(uint32_t v) { return le(v, 4); }
  GgufBytes& u64(uint64_t v) { return le(v, 8); }
  GgufBytes& f32(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    return u32(bits);
  }
  GgufBytes& f64(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    return u64(bits);
  }
  GgufBytes& str(std::string_view s) {
    u64(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  GgufBytes& raw(std::string_view s) {
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  GgufBytes& zeros(size_t n) {
    bytes.insert(bytes.end(), n, 0);
    return *this;
  }
  GgufBytes& pad_to(size_t alignment) {
    while (bytes.size() % alignment != 0) bytes.push_back(0);
    return *this;
  }

  void set_u32_at(size_t offset, uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes[offset + i] = static_cast<uint8_t>(v >> (8 * i));
  }
  void set_u64_at(size_t offset, uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes[offset + i] = static_cast<uint8_t>(v >> (8 * i));
  }

  // "GGUF", version, tensor_count, kv_count (offsets 0, 4, 8, 16).
  GgufBytes& header(uint32_t version, uint64_t tensor_count, uint64_t kv_count) {
    raw("GGUF");
    u32(version);
    u64(tensor_count);
    return u64(kv_count);
  }
  // key + type tag uint32 (4) + value.
  GgufBytes& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(4).u32(v); }
  GgufBytes& kv_str(std::string_view key, std::string_view v) { return str(key).u32(8).str(v); }
  // A tensor table entry; ne is in file order (ne[0] is the row length).
  GgufBytes& tensor(std::string_view name, std::initializer_list<uint64_t> ne, uint32_t ggml_type,
                    uint64_t offset) {
    str(name);
    u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) u64(d);
    u32(ggml_type);
    return u64(offset);
  }
};

}  // namespace llmos::test
