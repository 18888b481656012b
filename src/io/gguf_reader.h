// GGUF reader (versions 2 and 3). open() maps the file and validates everything before any of
// it is used: magic, version, counts and string lengths against the bytes left, value types,
// nesting depth, alignment, tensor dims (no overflow), dtypes, tensor data in bounds and not
// overlapping. Every failure is an Error(kFormat) whose message names the file, the field and
// the byte offset, e.g. "model.gguf: tensor 'blk.0.attn_q.weight' data [1024, 5120) of the data
// section at byte offset 4096 extends past the end of the file (4500 bytes) (at byte offset
// 312)", the last offset being the tensor's table entry. See docs/formats.md for every rule.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "io/gguf_value.h"

namespace llmos::gguf {

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian uint32
inline constexpr uint32_t kDefaultAlignment = 32;
// Upper bound on the elements of all metadata arrays of one file together. The largest real
// vocabularies (262k tokens with scores and types, plus ~500k merges) need about 1.3M.
inline constexpr uint64_t kMaxMetadataArrayElements = uint64_t{1} << 22;
// Versions this reader accepts (v1 used 32-bit counts and is rejected with a clear message).
inline constexpr uint32_t kMinVersion = 2;
inline constexpr uint32_t kMaxVersion = 3;

// Transparent hashing so the name indexes can be searched with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // row-major (the file's ne[] reversed): shape.back() == ne[0]
  DType dtype = DType::kF32;
  uint64_t data_offset = 0;  // from the start of the tensor data section
  uint64_t nbytes = 0;
  uint64_t info_offset = 0;  // file offset of this tensor's table entry (for messages)
};

class File {
 public:
  // Maps and validates a file.
  static File open(const std::string& path);
  // Validates an in-memory image; `owner` keeps `data` alive for borrowed tensors.
  static File parse(std::shared_ptr<const void> owner, const uint8_t* data, size_t size,
                    std::string display_name);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_section_offset() const { return data_offset_; }
  size_t file_size() const { return size_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return metadata_; }
  const Value* find(std::string_view key) const;

  // Typed getters for required keys: throw kFormat naming the file and the key when the key is
  // missing ("missing required key 'llama.block_count'") or has an incompatible type.
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;
  const Array& get_array(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  // Optional variants return the fallback when the key is absent (still throw on a bad type).
  int64_t get_int_or(std::string_view key, int64_t fallback) const;
  double get_float_or(std::string_view key, double fallback) const;
  std::string get_string_or(std::string_view key, std::string fallback) const;
  bool get_bool_or(std::string_view key, bool fallback) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  // A zero-copy view of a tensor's bytes; throws kNotFound naming the file and tensor.
  Tensor tensor(std::string_view name) const;
  Tensor tensor(const TensorInfo& info) const;
  const uint8_t* tensor_data(const TensorInfo& info) const {
    return base_ + data_offset_ + info.data_offset;
  }

 private:
  std::shared_ptr<const void> owner_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<TensorInfo> tensors_;
  // key -> index in metadata_, name -> index in tensors_
  std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> metadata_index_;
  std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> tensor_index_;

  friend class Parser;
};

}  // namespace llmos::gguf
