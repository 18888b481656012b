// GGUF v3 writer: metadata in insertion order, tensors aligned to general.alignment (default
// 32). Used by tests, by the embedded default model, and by `llmos quantize`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/gguf_value.h"

namespace llmos::gguf {

// Receives a tensor's bytes, in order, while the file is written.
using ByteSink = std::function<void(const void* data, size_t size)>;
// Produces a tensor's bytes on demand: it must pass exactly the declared byte size to the sink,
// in any number of pieces. It runs once per to_bytes()/write_file() call, in tensor order, so a
// large tensor can be computed piecewise and never held whole in memory (llmos quantize).
using TensorProducer = std::function<void(const ByteSink& sink)>;

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
  // Adds a tensor of the given row-major shape and dtype whose bytes `producer` generates when
  // the file is written (see TensorProducer). The shape is checked as above and its last
  // dimension must be a whole number of blocks. Writing fails with kInternal naming the tensor
  // when the producer passes more or fewer bytes than the shape needs; an exception thrown by
  // the producer propagates (write_file() then leaves no file behind).
  void add_tensor(std::string name, std::vector<int64_t> shape, DType dtype,
                  TensorProducer producer);
  // Alignment of the data section and of each tensor (non-zero power of two); also written, as
  // the first key, as general.alignment when not the default 32.
  void set_alignment(uint32_t alignment);

  // The whole file in memory (tests, small files). write_file() streams instead.
  std::vector<uint8_t> to_bytes() const;
  // Writes to a temporary file beside `path` and renames it, so a failed write leaves no
  // partial file. Throws kIo naming the path.
  void write_file(const std::string& path) const;

 private:
  // A tensor entry: either `tensor` (bytes copied when written) or `producer` is set.
  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    DType dtype = DType::kF32;
    uint64_t nbytes = 0;
    Tensor tensor;
    TensorProducer producer;
  };
  void check_new_name(const std::string& name) const;

  uint32_t alignment_ = 32;
  std::vector<std::pair<std::string, Value>> metadata_;
  std::vector<Entry> tensors_;
};

}  // namespace llmos::gguf
