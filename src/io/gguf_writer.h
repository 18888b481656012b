// GGUF v3 writer: metadata in insertion order, tensors aligned to general.alignment (default
// 32). Used by tests, by the embedded default model, and by `llmos quantize`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/gguf_value.h"

namespace llmos::gguf {

class Writer {
 public:
  // Sets (or replaces, keeping its position) a metadata key. Arrays must be homogeneous (every
  // item of element_type) and nested at most kMaxArrayDepth deep. "general.alignment" (uint32)
  // is the same as set_alignment(). Bad input throws kInvalidArgument.
  void set(std::string key, Value value);
  // Adds a tensor. The bytes are copied from `tensor` (host, contiguous, rank 1..4, no empty
  // dimension) when written; the Tensor view keeps them alive until then. Names must be unique.
  // Violations throw kInvalidArgument naming the tensor.
  void add_tensor(std::string name, Tensor tensor);
  // Alignment of the data section and of each tensor (non-zero power of two); also written, as
  // the first key, as general.alignment when not the default 32.
  void set_alignment(uint32_t alignment);

  // The whole file in memory (tests, small files). write_file() streams instead.
  std::vector<uint8_t> to_bytes() const;
  // Writes to a temporary file beside `path` and renames it, so a failed write leaves no
  // partial file. Throws kIo naming the path.
  void write_file(const std::string& path) const;

 private:
  uint32_t alignment_ = 32;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<std::pair<std::string, Tensor>> tensors_;
};

}  // namespace llmos::gguf
