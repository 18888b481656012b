// The backend front ends reject malformed operands with a message naming the op and operand,
// and device selection reports what this build and machine lack.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_probe.h"
#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/batch.h"

namespace llmos {
namespace {

template <typename Fn>
void expect_invalid(Fn&& fn, const std::string& fragment) {
  try {
    fn();
    FAIL() << "expected an error mentioning '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument) << e.message();
    EXPECT_NE(e.message().find(fragment), std::string::npos) << e.message();
  }
}

TEST(BackendFrontEnd, RejectsMalformedOperands) {
  auto backend = create_backend({Device::cpu(), 2});
  Tensor w = Tensor::zeros({8, 32}, DType::kF32);
  Tensor x = Tensor::zeros({3, 32}, DType::kF32);
  Tensor y = Tensor::zeros({3, 8}, DType::kF32);
  backend->matmul(w, nullptr, x, y);  // well-formed

  Tensor x_bad = Tensor::zeros({3, 16}, DType::kF32);
  expect_invalid([&] { backend->matmul(w, nullptr, x_bad, y); }, "inner dimension");
  Tensor y_bad = Tensor::zeros({3, 9}, DType::kF32);
  expect_invalid([&] { backend->matmul(w, nullptr, x, y_bad); }, "matmul: y");
  Tensor bias_bad = Tensor::zeros({7}, DType::kF32);
  expect_invalid([&] { backend->matmul(w, &bias_bad, x, y); }, "bias");
  Tensor x_f16 = Tensor::zeros({3, 32}, DType::kF16);
  expect_invalid([&] { backend->matmul(w, nullptr, x_f16, y); }, "f32");

  Tensor norm_w = Tensor::zeros({31}, DType::kF32);
  expect_invalid([&] { backend->rms_norm(x, norm_w, 1e-5f, x); }, "rms_norm: weight");
  Tensor norm_ok = Tensor::zeros({32}, DType::kF32);
  expect_invalid([&] { backend->rms_norm(x, norm_ok, 0.0f, x); }, "eps");

  Tensor table = Tensor::zeros({10, 32}, DType::kF32);
  const std::vector<int32_t> tokens{1, 10, 2};
  expect_invalid([&] { backend->embed(table, tokens, x); }, "token id 10");

  RopeSpec rope;
  rope.rot_dim = 8;
  rope.inv_freq.assign(3, 1.0f);
  const std::vector<int32_t> positions{0, 1, 2};
  expect_invalid([&] { backend->rope(x, 4, 8, rope, positions); }, "frequencies");
  rope.rot_dim = 10;
  expect_invalid([&] { backend->rope(x, 4, 8, rope, positions); }, "rotated dimension");

  Tensor gate = Tensor::zeros({3, 8}, DType::kF32);
  Tensor up = Tensor::zeros({2, 8}, DType::kF32);
  expect_invalid([&] { backend->swiglu(gate, up, gate); }, "shape mismatch");
  expect_invalid([&] { backend->add(gate, up); }, "shape mismatch");
  const std::vector<int32_t> rows{0, 3};
  Tensor dst = Tensor::zeros({2, 8}, DType::kF32);
  expect_invalid([&] { backend->gather_rows(gate, rows, dst); }, "row 3");
}

TEST(BackendOps, StridedActivationsGiveTheSameResultAsContiguousCopies) {
  auto backend = create_backend({Device::cpu(), 2});
  Tensor w = Tensor::empty({5, 16}, DType::kF32);
  Tensor wide = Tensor::empty({3, 40}, DType::kF32);
  for (int64_t i = 0; i < w.numel(); ++i) w.data_as<float>()[i] = static_cast<float>((i * 7) % 11) - 5.0f;
  for (int64_t i = 0; i < wide.numel(); ++i) wide.data_as<float>()[i] = static_cast<float>((i * 5) % 13) - 6.0f;
  Tensor x = wide.narrow(1, 8, 24);  // [3, 16] with a row stride of 40
  ASSERT_FALSE(x.is_contiguous());
  Tensor y_wide = Tensor::zeros({3, 9}, DType::kF32);
  Tensor y = y_wide.narrow(1, 2, 7);   // [3, 5] with a row stride of 9
  backend->matmul(w, nullptr, x, y);
  Tensor y_ref = Tensor::zeros({3, 5}, DType::kF32);
  backend->matmul(w, nullptr, x.clone(), y_ref);
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t j = 0; j < 5; ++j) {
      EXPECT_EQ(static_cast<const float*>(y.row(r))[j], y_ref.data_as<float>()[r * 5 + j]);
    }
    EXPECT_EQ(static_cast<const float*>(y_wide.row(r))[0], 0.0f) << "wrote outside the view";
    EXPECT_EQ(static_cast<const float*>(y_wide.row(r))[8], 0.0f) << "wrote outside the view";
  }
  Tensor norm_w = Tensor::empty({16}, DType::kF32);
  for (int64_t i = 0; i < 16; ++i) norm_w.data_as<float>()[i] = 1.0f + 0.1f * static_cast<float>(i);
  Tensor n1 = Tensor::zeros({3, 16}, DType::kF32), n2 = Tensor::zeros({3, 16}, DType::kF32);
  backend->rms_norm(x, norm_w, 1e-5f, n1);
  backend->rms_norm(x.clone(), norm_w, 1e-5f, n2);
  for (int64_t i = 0; i < n1.numel(); ++i) EXPECT_EQ(n1.data_as<float>()[i], n2.data_as<float>()[i]);
}

TEST(BackendFrontEnd, RejectsKvWritesOutsideTheCache) {
  auto backend = create_backend({Device::cpu(), 1});
  KvCacheSpec spec;
  spec.num_layers = 2;
  spec.num_kv_heads = 2;
  spec.head_dim = 4;
  spec.block_size = 4;
  spec.num_blocks = 2;
  spec.dtype = DType::kF16;
  KvCache cache(spec, *backend);
  Tensor k = Tensor::zeros({1, 8}, DType::kF32);
  const std::vector<int64_t> bad_slot{8};
  expect_invalid([&] { backend->write_kv(cache, 0, k, k, bad_slot); }, "slot 8");
  const std::vector<int64_t> ok_slot{7};
  expect_invalid([&] { backend->write_kv(cache, 2, k, k, ok_slot); }, "layer 2");
  backend->write_kv(cache, 1, k, k, ok_slot);

  KvCacheSpec bad = spec;
  bad.dtype = DType::kQ8_0;
  expect_invalid([&] { KvCache c(bad, *backend); }, "dtype");
  bad = spec;
  bad.num_blocks = 0;
  expect_invalid([&] { KvCache c(bad, *backend); }, "num_blocks");
}

// A CUDA device that this build or machine cannot serve is refused with kUnsupported naming it;
// one that exists gives a working backend.
TEST(BackendSelection, CudaIsCreatedOrReportedAsUnavailableWithAReason) {
  const CudaProbe probe = probe_cuda();
  if (probe.compiled && probe.device_count > 0) {
    auto backend = create_backend({Device::cuda(0), 0});
    EXPECT_EQ(backend->device(), Device::cuda(0));
    const int missing = probe.device_count;  // indices run from 0
    try {
      create_backend({Device::cuda(missing), 0});
      FAIL() << "a backend was created for the absent device cuda:" << missing;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), StatusCode::kUnsupported) << e.message();
    }
    return;
  }
  try {
    create_backend({Device::cuda(0), 0});
    FAIL() << "a CUDA backend was created without a usable device: " << probe.detail;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnsupported);
    EXPECT_NE(e.message().find("cuda:0"), std::string::npos) << e.message();
  }
}

TEST(CudaProbe, ReportsDevicesOrWhyNot) {
  const CudaProbe probe = probe_cuda();
  EXPECT_FALSE(probe.detail.empty());
#ifdef LLMOS_HAVE_CUDA
  EXPECT_TRUE(probe.compiled);
#else
  EXPECT_FALSE(probe.compiled);
#endif
  if (probe.device_count == 0) GTEST_SKIP() << "no CUDA device: " << probe.detail;
  EXPECT_GT(probe.device_count, 0);
}

}  // namespace
}  // namespace llmos
