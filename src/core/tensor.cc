#include "core/tensor.h"

#include <cstring>
#include <limits>

#include "core/allocator.h"
#include "core/error.h"

namespace llmos {

void Tensor::set_contiguous_layout(const std::vector<int64_t>& shape) {
  LLMOS_CHECK_ARG(shape.size() <= static_cast<size_t>(kMaxDims), "tensor rank ", shape.size(),
                  " exceeds the maximum of ", kMaxDims);
  LLMOS_CHECK_ARG(!shape.empty() || !dtype_is_quantized(dtype_), "a ", dtype_name(dtype_),
                  " tensor needs at least one dimension (a row of whole blocks)");
  int64_t elements = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    LLMOS_CHECK_ARG(shape[i] >= 0, "negative tensor dimension ", shape[i]);
    if (shape[i] != 0 && elements > std::numeric_limits<int64_t>::max() / shape[i])
      throw_error(StatusCode::kInvalidArgument, "tensor element count overflows int64");
    elements *= shape[i];
  }
  ndim_ = static_cast<int>(shape.size());
  for (int i = 0; i < ndim_; ++i) shape_[i] = shape[i];
  if (ndim_ == 0) return;
  // The last dimension is contiguous: one element apart, or for block types one block apart
  // (its per-element stride is not meaningful); rows are row_bytes apart.
  strides_[ndim_ - 1] = dtype_block_bytes(dtype_);
  int64_t acc = dtype_row_bytes(dtype_, shape_[ndim_ - 1]);
  for (int i = ndim_ - 2; i >= 0; --i) {
    strides_[i] = acc;
    if (shape_[i] != 0 && acc > std::numeric_limits<int64_t>::max() / shape_[i])
      throw_error(StatusCode::kInvalidArgument, "tensor byte size overflows int64");
    acc *= shape_[i];
  }
}

Tensor Tensor::empty(std::initializer_list<int64_t> shape, DType dtype) {
  return empty(std::vector<int64_t>(shape), dtype);
}

Tensor Tensor::empty(const std::vector<int64_t>& shape, DType dtype) {
  Tensor t;
  t.dtype_ = dtype;
  t.set_contiguous_layout(shape);
  auto buffer = std::shared_ptr<void>(host_alloc(static_cast<size_t>(t.nbytes())), HostDeleter{});
  t.data_ = buffer.get();
  t.owner_ = std::move(buffer);
  return t;
}

Tensor Tensor::zeros(const std::vector<int64_t>& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.data_, 0, static_cast<size_t>(t.nbytes()));
  return t;
}

Tensor Tensor::borrow(void* data, const std::vector<int64_t>& shape, DType dtype,
                      std::shared_ptr<const void> owner, Device device) {
  LLMOS_CHECK_ARG(data != nullptr, "Tensor::borrow: data pointer is null");
  Tensor t;
  t.dtype_ = dtype;
  t.device_ = device;
  t.set_contiguous_layout(shape);
  t.data_ = data;
  t.owner_ = std::move(owner);
  return t;
}

int64_t Tensor::dim(int i) const {
  if (i < 0) i += ndim_;
  LLMOS_CHECK_ARG(i >= 0 && i < ndim_, "dimension index ", i, " out of range for rank ", ndim_);
  return shape_[i];
}

int64_t Tensor::stride_bytes(int i) const {
  if (i < 0) i += ndim_;
  LLMOS_CHECK_ARG(i >= 0 && i < ndim_, "dimension index ", i, " out of range for rank ", ndim_);
  return strides_[i];
}

std::vector<int64_t> Tensor::shape() const { return {shape_.begin(), shape_.begin() + ndim_}; }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim_; ++i) n *= shape_[i];
  return n;
}

int64_t Tensor::rows() const {
  int64_t n = 1;
  for (int i = 0; i + 1 < ndim_; ++i) n *= shape_[i];
  return n;
}

int64_t Tensor::nbytes() const {
  if (ndim_ == 0) return dtype_block_bytes(dtype_);
  return rows() * row_bytes();
}

bool Tensor::is_contiguous() const {
  if (ndim_ == 0) return true;
  int64_t acc = row_bytes();
  for (int i = ndim_ - 2; i >= 0; --i) {
    if (shape_[i] > 1 && strides_[i] != acc) return false;
    acc *= shape_[i];
  }
  return true;
}

void* Tensor::row(int64_t r) const {
  LLMOS_CHECK_ARG(r >= 0 && r < rows(), "row ", r, " out of range [0, ", rows(), ")");
  // Decompose r over the leading dimensions so strided views are honoured.
  int64_t offset = 0;
  int64_t rem = r;
  for (int i = ndim_ - 2; i >= 0; --i) {
    const int64_t idx = rem % shape_[i];
    rem /= shape_[i];
    offset += idx * strides_[i];
  }
  return static_cast<char*>(data_) + offset;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  LLMOS_CHECK_ARG(ndim_ >= 1, "slice_rows on a scalar tensor");
  LLMOS_CHECK_ARG(0 <= begin && begin <= end && end <= shape_[0], "slice [", begin, ", ", end,
                  ") out of range for dimension of size ", shape_[0]);
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.data_ = static_cast<char*>(data_) + begin * (ndim_ == 1 ? 0 : strides_[0]);
  if (ndim_ == 1) {
    LLMOS_CHECK_ARG(!dtype_is_quantized(dtype_) || (begin % dtype_block_size(dtype_) == 0 &&
                                                    end % dtype_block_size(dtype_) == 0),
                    "slice [", begin, ", ", end, ") of a ", dtype_name(dtype_),
                    " vector must start and end on a block boundary");
    t.data_ = static_cast<char*>(data_) + dtype_row_bytes(dtype_, begin);
  }
  return t;
}

Tensor Tensor::narrow(int dim, int64_t begin, int64_t end) const {
  if (dim < 0) dim += ndim_;
  LLMOS_CHECK_ARG(dim >= 0 && dim < ndim_, "narrow: dimension ", dim, " out of range for rank ", ndim_);
  LLMOS_CHECK_ARG(0 <= begin && begin <= end && end <= shape_[dim], "narrow [", begin, ", ", end,
                  ") out of range for dimension ", dim, " of size ", shape_[dim]);
  Tensor t = *this;
  t.shape_[dim] = end - begin;
  if (dim == ndim_ - 1) {
    const int64_t block = dtype_block_size(dtype_);
    LLMOS_CHECK_ARG(begin % block == 0 && end % block == 0, "narrow [", begin, ", ", end, ") of a ",
                    dtype_name(dtype_), " row must start and end on a block boundary");
    t.data_ = static_cast<char*>(data_) + dtype_row_bytes(dtype_, begin);
  } else {
    t.data_ = static_cast<char*>(data_) + begin * strides_[dim];
  }
  return t;
}

Tensor Tensor::reshape(const std::vector<int64_t>& shape) const {
  LLMOS_CHECK_ARG(is_contiguous(), "reshape of a non-contiguous tensor ", describe());
  Tensor t = *this;
  t.set_contiguous_layout(shape);
  LLMOS_CHECK_ARG(t.numel() == numel(), "reshape of ", describe(), " to a shape with ", t.numel(),
                  " elements");
  return t;
}

Tensor Tensor::clone() const {
  if (!defined()) return Tensor();
  LLMOS_CHECK_ARG(device_.is_cpu(), "clone() of a ", device_name(device_), " tensor");
  Tensor out = empty(shape(), dtype_);
  const int64_t rb = row_bytes();
  for (int64_t r = 0; r < rows(); ++r) {
    std::memcpy(static_cast<char*>(out.data_) + r * rb, row(r), static_cast<size_t>(rb));
  }
  return out;
}

std::string Tensor::describe() const {
  std::string s(dtype_name(dtype_));
  s += '[';
  for (int i = 0; i < ndim_; ++i) {
    if (i) s += ", ";
    s += std::to_string(shape_[i]);
  }
  s += ']';
  if (!device_.is_cpu()) s += "@" + device_name(device_);
  return s;
}

}  // namespace llmos
