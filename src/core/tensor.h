// Tensor: a typed, shaped view of bytes on a device. Shapes are row-major (the last dimension
// is contiguous, as in C); GGUF's ne[] order is reversed when a file is read. Strides are in
// bytes, so block-quantized rows are addressed the same way as plain ones (a quantized tensor's
// last dimension is always contiguous and a whole number of blocks).
//
// Storage is shared and reference-counted: a view (slice, reshape, a tensor borrowed from an
// mmap'd file) keeps its owner alive and costs no copy. Copying a Tensor copies the view, not
// the data; clone() is the explicit deep copy.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"

namespace llmos {

inline constexpr int kMaxDims = 4;

class Tensor {
 public:
  Tensor() = default;

  // Allocates an owned, contiguous, 64-byte aligned host tensor (contents uninitialised).
  static Tensor empty(std::initializer_list<int64_t> shape, DType dtype);
  static Tensor empty(const std::vector<int64_t>& shape, DType dtype);
  static Tensor zeros(const std::vector<int64_t>& shape, DType dtype);
  // Wraps existing bytes without copying. `owner` keeps them alive (may be null when the caller
  // guarantees the lifetime). The layout is contiguous.
  static Tensor borrow(void* data, const std::vector<int64_t>& shape, DType dtype,
                       std::shared_ptr<const void> owner, Device device = Device::cpu());

  bool defined() const { return data_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  int ndim() const { return ndim_; }
  int64_t dim(int i) const;                   // negative i counts from the end
  int64_t stride_bytes(int i) const;          // negative i counts from the end
  std::vector<int64_t> shape() const;
  int64_t numel() const;
  int64_t nbytes() const;                     // bytes of a contiguous tensor of this shape
  int64_t rows() const;                       // product of all but the last dimension
  int64_t row_bytes() const { return dtype_row_bytes(dtype_, ndim_ ? dim(-1) : 1); }
  bool is_contiguous() const;

  void* data() const { return data_; }
  template <typename T>
  T* data_as() const { return static_cast<T*>(data_); }
  // Pointer to the start of row r of a tensor viewed as [rows(), dim(-1)].
  void* row(int64_t r) const;

  // Views (no copy). slice_rows works on dimension 0.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // [begin, end) along dimension `dim` (negative counts from the end). Narrowing an inner
  // dimension gives a strided (non-contiguous) view, e.g. the k part of a fused qkv row; on the
  // last dimension of a block-quantized tensor both ends must fall on block boundaries.
  Tensor narrow(int dim, int64_t begin, int64_t end) const;
  Tensor reshape(const std::vector<int64_t>& shape) const;  // contiguous tensors only

  // Deep copy into owned host memory.
  Tensor clone() const;

  std::string describe() const;  // "f32[512, 64]"

 private:
  void* data_ = nullptr;
  std::shared_ptr<const void> owner_;
  DType dtype_ = DType::kF32;
  Device device_;
  int ndim_ = 0;
  std::array<int64_t, kMaxDims> shape_{};
  std::array<int64_t, kMaxDims> strides_{};  // bytes

  void set_contiguous_layout(const std::vector<int64_t>& shape);
};

}  // namespace llmos
