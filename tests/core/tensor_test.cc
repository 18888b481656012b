#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"

namespace llmos {
namespace {

bool aligned64(const void* p) { return reinterpret_cast<uintptr_t>(p) % kHostAlignment == 0; }

// Fills a f32 tensor with 0, 1, 2, ... in row-major order.
void iota_f32(const Tensor& t) {
  float* p = t.data_as<float>();
  std::iota(p, p + t.numel(), 0.0f);
}

StatusCode code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  }
  return StatusCode::kOk;
}

TEST(Tensor, DefaultIsUndefined) {
  Tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_EQ(t.ndim(), 0);
  EXPECT_EQ(t.data(), nullptr);
  // Cloning nothing gives nothing (it used to memcpy from a null pointer).
  EXPECT_FALSE(t.clone().defined());
}

TEST(Tensor, EmptyHasContiguousLayout) {
  Tensor t = Tensor::empty({2, 3, 5}, DType::kF32);
  ASSERT_TRUE(t.defined());
  EXPECT_EQ(t.ndim(), 3);
  EXPECT_EQ(t.shape(), (std::vector<int64_t>{2, 3, 5}));
  EXPECT_EQ(t.dim(0), 2);
  EXPECT_EQ(t.dim(-1), 5);
  EXPECT_EQ(t.dim(-3), 2);
  EXPECT_EQ(t.numel(), 30);
  EXPECT_EQ(t.rows(), 6);
  EXPECT_EQ(t.row_bytes(), 20);
  EXPECT_EQ(t.nbytes(), 120);
  EXPECT_EQ(t.stride_bytes(2), 4);
  EXPECT_EQ(t.stride_bytes(1), 20);
  EXPECT_EQ(t.stride_bytes(0), 60);
  EXPECT_EQ(t.stride_bytes(-1), 4);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_TRUE(t.device().is_cpu());
  EXPECT_EQ(t.dtype(), DType::kF32);
  // A zero-length last dimension still has an element stride.
  EXPECT_EQ(Tensor::empty({4, 0}, DType::kF16).stride_bytes(-1), 2);
}

TEST(Tensor, ScalarAndEmptyShapes) {
  Tensor s = Tensor::empty(std::vector<int64_t>{}, DType::kF32);
  EXPECT_EQ(s.ndim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.nbytes(), 4);
  EXPECT_EQ(s.row(0), s.data());
  Tensor z = Tensor::zeros({3, 0}, DType::kF32);
  EXPECT_TRUE(z.defined());  // a zero-byte tensor still has a (valid, aligned) pointer
  EXPECT_EQ(z.numel(), 0);
  EXPECT_EQ(z.nbytes(), 0);
  EXPECT_EQ(z.clone().shape(), (std::vector<int64_t>{3, 0}));
  Tensor none = Tensor::empty({0, 8}, DType::kF32);
  EXPECT_EQ(none.rows(), 0);
  EXPECT_THROW(none.row(0), Error);
}

TEST(Tensor, AllocationsAre64ByteAligned) {
  std::vector<Tensor> keep;  // keep them alive so addresses are not reused
  for (int64_t n : {1, 3, 7, 17, 63, 64, 65, 1000, 4097}) {
    for (DType dt : {DType::kF32, DType::kF16, DType::kI8, DType::kBF16}) {
      keep.push_back(Tensor::empty({n}, dt));
      EXPECT_TRUE(aligned64(keep.back().data())) << n << " " << dtype_name(dt);
      keep.push_back(Tensor::zeros({2, n}, dt));
      EXPECT_TRUE(aligned64(keep.back().data())) << n << " " << dtype_name(dt);
    }
  }
  Tensor q = Tensor::empty({3, 256}, DType::kQ4_K);
  EXPECT_TRUE(aligned64(q.data()));
  EXPECT_TRUE(aligned64(q.clone().data()));
  HostBuffer b(5);
  EXPECT_TRUE(aligned64(b.data()));
  EXPECT_EQ(b.size(), 5u);
}

TEST(Tensor, ZerosAreZero) {
  Tensor t = Tensor::zeros({7, 33}, DType::kF32);
  const float* p = t.data_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(p[i], 0.0f) << i;
  Tensor q = Tensor::zeros({2, 64}, DType::kQ8_0);
  const auto* b = q.data_as<uint8_t>();
  for (int64_t i = 0; i < q.nbytes(); ++i) ASSERT_EQ(b[i], 0) << i;
}

TEST(Tensor, BorrowWrapsWithoutCopyAndKeepsOwnerAlive) {
  auto storage = std::make_shared<std::vector<float>>(12);
  std::iota(storage->begin(), storage->end(), 0.0f);
  std::weak_ptr<std::vector<float>> watch = storage;
  Tensor t = Tensor::borrow(storage->data(), {3, 4}, DType::kF32, storage);
  EXPECT_EQ(t.data(), storage->data());
  storage.reset();
  ASSERT_FALSE(watch.expired()) << "the tensor must keep its owner alive";
  EXPECT_EQ(t.data_as<float>()[5], 5.0f);
  {
    Tensor view = t.slice_rows(1, 2);  // a view shares the owner too
    t = Tensor();
    EXPECT_FALSE(watch.expired());
    EXPECT_EQ(view.data_as<float>()[0], 4.0f);
  }
  EXPECT_TRUE(watch.expired());

  float raw[6] = {};
  Tensor r = Tensor::borrow(raw, {6}, DType::kF32, nullptr);  // caller guarantees lifetime
  EXPECT_EQ(r.data(), raw);
  EXPECT_THROW(Tensor::borrow(nullptr, {2}, DType::kF32, nullptr), Error);

  Tensor gpu = Tensor::borrow(raw, {2, 3}, DType::kF32, nullptr, Device::cuda(1));
  EXPECT_EQ(gpu.device(), Device::cuda(1));
  EXPECT_EQ(code_of([&] { gpu.clone(); }), StatusCode::kInvalidArgument);
}

TEST(Tensor, CopyIsAViewCloneIsDeep) {
  Tensor a = Tensor::empty({4, 4}, DType::kF32);
  iota_f32(a);
  Tensor view = a;  // copies the view, not the data
  view.data_as<float>()[0] = 100.0f;
  EXPECT_EQ(a.data_as<float>()[0], 100.0f);
  Tensor deep = a.clone();
  EXPECT_NE(deep.data(), a.data());
  EXPECT_EQ(deep.shape(), a.shape());
  EXPECT_EQ(std::memcmp(deep.data(), a.data(), static_cast<size_t>(a.nbytes())), 0);
  deep.data_as<float>()[1] = -1.0f;
  EXPECT_EQ(a.data_as<float>()[1], 1.0f);
}

TEST(Tensor, SliceRowsIsAView) {
  Tensor t = Tensor::empty({5, 3, 4}, DType::kF32);
  iota_f32(t);
  Tensor s = t.slice_rows(1, 4);
  EXPECT_EQ(s.shape(), (std::vector<int64_t>{3, 3, 4}));
  EXPECT_EQ(s.data(), static_cast<char*>(t.data()) + 1 * 3 * 4 * 4);
  EXPECT_TRUE(s.is_contiguous());
  EXPECT_EQ(s.rows(), 9);
  // row() decomposes over both leading dimensions.
  for (int64_t r = 0; r < s.rows(); ++r) {
    const float* row = static_cast<const float*>(s.row(r));
    EXPECT_EQ(row[0], static_cast<float>((r + 3) * 4)) << r;
  }
  Tensor empty_slice = t.slice_rows(2, 2);
  EXPECT_EQ(empty_slice.dim(0), 0);
  EXPECT_EQ(empty_slice.numel(), 0);
  // 1-D: slices elements.
  Tensor v = Tensor::empty({10}, DType::kF16);
  Tensor vs = v.slice_rows(3, 7);
  EXPECT_EQ(vs.dim(0), 4);
  EXPECT_EQ(vs.data(), static_cast<char*>(v.data()) + 6);
  // A slice of a slice.
  Tensor ss = s.slice_rows(1, 3).slice_rows(1, 2);
  EXPECT_EQ(static_cast<const float*>(ss.data())[0], 36.0f);
}

TEST(Tensor, SliceRowsRejectsBadRanges) {
  Tensor t = Tensor::empty({5, 2}, DType::kF32);
  EXPECT_EQ(code_of([&] { t.slice_rows(-1, 2); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { t.slice_rows(3, 2); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { t.slice_rows(0, 6); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { Tensor::empty(std::vector<int64_t>{}, DType::kF32).slice_rows(0, 0); }),
            StatusCode::kInvalidArgument);
  // A quantized vector slices on block boundaries only, at both ends.
  Tensor q = Tensor::empty({128}, DType::kQ8_0);
  Tensor qs = q.slice_rows(32, 96);
  EXPECT_EQ(qs.dim(0), 64);
  EXPECT_EQ(qs.data(), static_cast<char*>(q.data()) + 34);
  EXPECT_EQ(qs.row_bytes(), 68);
  EXPECT_THROW(q.slice_rows(1, 33), Error);
  EXPECT_THROW(q.slice_rows(32, 40), Error);
}

TEST(Tensor, QuantizedRowBytes) {
  Tensor q = Tensor::empty({3, 512}, DType::kQ4_K);
  EXPECT_EQ(q.row_bytes(), 2 * 144);
  EXPECT_EQ(q.nbytes(), 3 * 2 * 144);
  EXPECT_EQ(q.stride_bytes(0), 288);
  EXPECT_EQ(q.stride_bytes(1), 144);  // one block
  EXPECT_EQ(q.numel(), 3 * 512);
  EXPECT_EQ(q.row(2), static_cast<char*>(q.data()) + 576);
  Tensor q4 = Tensor::empty({2, 2, 64}, DType::kQ4_0);
  EXPECT_EQ(q4.row_bytes(), 36);
  EXPECT_EQ(q4.nbytes(), 4 * 36);
  EXPECT_EQ(q4.row(3), static_cast<char*>(q4.data()) + 108);
  // A slice of a quantized matrix, cloned, carries the right bytes.
  auto* b = q.data_as<uint8_t>();
  for (int64_t i = 0; i < q.nbytes(); ++i) b[i] = static_cast<uint8_t>(i * 7);
  Tensor c = q.slice_rows(1, 3).clone();
  EXPECT_EQ(c.shape(), (std::vector<int64_t>{2, 512}));
  EXPECT_EQ(std::memcmp(c.data(), b + 288, 576), 0);
  // Partial blocks and quantized scalars are rejected.
  EXPECT_EQ(code_of([] { Tensor::empty({2, 100}, DType::kQ4_0); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([] { Tensor::empty(std::vector<int64_t>{}, DType::kQ8_0); }),
            StatusCode::kInvalidArgument);
  float raw[64];
  EXPECT_THROW(Tensor::borrow(raw, {31}, DType::kQ8_0, nullptr), Error);
}

TEST(Tensor, ReshapeKeepsDataAndChecksCount) {
  Tensor t = Tensor::empty({2, 3, 4}, DType::kF32);
  iota_f32(t);
  Tensor r = t.reshape({6, 4});
  EXPECT_EQ(r.data(), t.data());
  EXPECT_EQ(r.shape(), (std::vector<int64_t>{6, 4}));
  EXPECT_EQ(r.stride_bytes(0), 16);
  EXPECT_EQ(static_cast<const float*>(r.row(5))[3], 23.0f);
  Tensor flat = t.reshape({24});
  EXPECT_EQ(flat.rows(), 1);
  EXPECT_EQ(flat.row_bytes(), 96);
  EXPECT_EQ(t.reshape({1, 1, 1, 24}).ndim(), 4);
  // A contiguous slice can be reshaped.
  Tensor s = t.slice_rows(1, 2).reshape({3, 4});
  EXPECT_EQ(static_cast<const float*>(s.data())[0], 12.0f);
  EXPECT_EQ(code_of([&] { t.reshape({5, 5}); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { t.reshape({-2, -12}); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { t.reshape({1, 2, 3, 2, 2}); }), StatusCode::kInvalidArgument);
  // Quantized: the new last dimension must be whole blocks.
  Tensor q = Tensor::empty({4, 64}, DType::kQ4_0);
  EXPECT_EQ(q.reshape({2, 128}).row_bytes(), 72);
  EXPECT_THROW(q.reshape({16, 16}), Error);
}

TEST(Tensor, BadShapesAndIndices) {
  EXPECT_EQ(code_of([] { Tensor::empty({2, -1}, DType::kF32); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([] {
              Tensor::empty({1, 1, 1, 1, 1}, DType::kF32);
            }),
            StatusCode::kInvalidArgument);
  // Byte and element counts that overflow int64 are rejected before any allocation.
  const int64_t big = int64_t{1} << 40;
  EXPECT_EQ(code_of([&] { Tensor::empty({big, big}, DType::kF32); }), StatusCode::kInvalidArgument);
  float raw[4];
  EXPECT_EQ(code_of([&] {
              Tensor::borrow(raw, {int64_t{1} << 30, int64_t{1} << 33}, DType::kQ4_0, nullptr);
            }),
            StatusCode::kInvalidArgument);
  Tensor t = Tensor::empty({2, 3}, DType::kF32);
  EXPECT_THROW(t.dim(2), Error);
  EXPECT_THROW(t.dim(-3), Error);
  EXPECT_THROW(t.stride_bytes(5), Error);
  EXPECT_THROW(t.row(-1), Error);
  EXPECT_THROW(t.row(2), Error);
  EXPECT_NO_THROW(t.row(1));
}

TEST(Tensor, RowOfBorrowedMatrix) {
  std::vector<float> data(4 * 6);
  std::iota(data.begin(), data.end(), 0.0f);
  Tensor t = Tensor::borrow(data.data(), {2, 2, 6}, DType::kF32, nullptr);
  for (int64_t r = 0; r < 4; ++r) {
    EXPECT_EQ(t.row(r), data.data() + r * 6) << r;
  }
  Tensor tail = t.slice_rows(1, 2);
  EXPECT_EQ(tail.row(1), data.data() + 18);
}

TEST(Tensor, NarrowInnerDimensionGivesAStridedView) {
  Tensor t = Tensor::empty({3, 4, 6}, DType::kF32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = static_cast<float>(i);
  Tensor v = t.narrow(2, 2, 5);  // columns 2..4 of every row
  EXPECT_EQ(v.shape(), (std::vector<int64_t>{3, 4, 3}));
  EXPECT_FALSE(v.is_contiguous());
  EXPECT_EQ(v.data(), t.data_as<float>() + 2);
  // Row r of the view is row r of the original, shifted by two elements.
  for (int64_t r = 0; r < v.rows(); ++r) {
    EXPECT_EQ(static_cast<const float*>(v.row(r))[0], static_cast<float>(r * 6 + 2)) << r;
  }
  Tensor c = v.clone();
  EXPECT_TRUE(c.is_contiguous());
  for (int64_t r = 0; r < c.rows(); ++r) {
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(c.data_as<float>()[r * 3 + j], static_cast<float>(r * 6 + 2 + j));
  }
  EXPECT_THROW(v.reshape({36}), Error);

  Tensor m = t.narrow(1, 1, 3);  // a middle dimension: rows 1 and 2 of each 4-row slab
  EXPECT_FALSE(m.is_contiguous());
  EXPECT_EQ(static_cast<const float*>(m.row(2))[0], static_cast<float>(1 * 24 + 1 * 6));
  EXPECT_EQ(t.narrow(-3, 1, 2).shape(), (std::vector<int64_t>{1, 4, 6}));
  EXPECT_TRUE(t.narrow(0, 1, 2).is_contiguous());

  EXPECT_THROW(t.narrow(3, 0, 1), Error);
  EXPECT_THROW(t.narrow(2, 4, 7), Error);
  EXPECT_THROW(t.narrow(2, 3, 2), Error);
  Tensor q = Tensor::empty({2, 64}, DType::kQ8_0);
  EXPECT_EQ(q.narrow(1, 32, 64).data(), static_cast<char*>(q.data()) + 34);
  EXPECT_THROW(q.narrow(1, 16, 64), Error);
}

TEST(Tensor, Describe) {
  EXPECT_EQ(Tensor::empty({512, 64}, DType::kF32).describe(), "f32[512, 64]");
  EXPECT_EQ(Tensor::empty({2, 256}, DType::kQ4_K).describe(), "q4_K[2, 256]");
  EXPECT_EQ(Tensor::empty({7}, DType::kBF16).describe(), "bf16[7]");
  EXPECT_EQ(Tensor::empty(std::vector<int64_t>{}, DType::kI32).describe(), "i32[]");
  float raw[3];
  EXPECT_EQ(Tensor::borrow(raw, {3}, DType::kF32, nullptr, Device::cuda(1)).describe(),
            "f32[3]@cuda:1");
  // Error messages name the tensor.
  try {
    Tensor::empty({2, 3}, DType::kF16).reshape({7});
    ADD_FAILURE() << "reshape accepted a wrong element count";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("f16[2, 3]"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace llmos
