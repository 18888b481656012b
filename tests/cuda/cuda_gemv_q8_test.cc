// The int8 GEMV of the CUDA backend (kernels/cuda/gemv_q8_cuda.h) against the q8 references of
// kernels/matmul_q8.h on random data:
//  - quantize_q8_act_cuda writes the blocks quantize_row_q8_act writes, bit for bit;
//  - gemv_q8_cuda equals matmul_q8_ref within 1e-5 of the output's magnitude (the sum of the
//    |d_w d_x isum| block terms): both compute the same exact block terms and round them the
//    same way, only the order of the f32 additions differs (split across lanes and warps);
//    ragged n, padded weight rows, strided x and y (padding untouched), with and without bias;
//  - CudaBackend::matmul takes that path for Q4_0 / Q8_0 decode rows;
//  - shapes the kernel does not serve are refused with cudaErrorInvalidValue (runs without a
//    device: nothing is launched).
// The GPU cases skip, saying why, on a machine without a CUDA device.
#include <gtest/gtest.h>

#if LLMOS_HAVE_CUDA

#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_probe.h"
#include "core/error.h"
#include "core/half.h"
#include "kernels/cuda/gemv_q8_cuda.h"
#include "kernels/matmul_q8.h"
#include "cuda_test_support.h"
#include "support/blockwise_activations.h"

namespace llmos::kernels::cuda {
namespace {

using cuda_test::DeviceBuffer;

// Rows of activations, x_stride floats apart, blocks of magnitudes 1e-6 .. 1e6; the padding
// between rows holds NaN, which must never be read.
std::vector<float> random_x(int64_t m, int64_t k, int64_t x_stride, std::mt19937& rng) {
  return test::blockwise_activations(m, k, x_stride, 32, -6, 6, 1.0f, rng);
}

// n GGUF rows row_bytes apart: random code bytes (every nibble, every int8) under random signed
// f16 scales; row padding random too.
std::vector<uint8_t> random_weight(DType dt, int64_t n, int64_t k, int64_t row_bytes,
                                   std::mt19937& rng) {
  std::vector<uint8_t> w(static_cast<size_t>(n * row_bytes));
  for (auto& byte : w) byte = static_cast<uint8_t>(rng());
  const int64_t block_bytes = dt == DType::kQ4_0 ? kQ4_0Bytes : kQ8_0Bytes;
  std::normal_distribution<float> normal(0.0f, 0.05f);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t b = 0; b < k / 32; ++b) {
      const uint16_t d = f32_to_f16(normal(rng));
      std::memcpy(w.data() + j * row_bytes + b * block_bytes, &d, 2);
    }
  }
  return w;
}

std::vector<Q8ActBlock> cpu_blocks(const std::vector<float>& x, int64_t m, int64_t k,
                                   int64_t x_stride) {
  std::vector<Q8ActBlock> act(static_cast<size_t>(m * (k / 32)));
  for (int64_t i = 0; i < m; ++i)
    quantize_row_q8_act(x.data() + i * x_stride, k, act.data() + i * (k / 32));
  return act;
}

// Sum over blocks of |d_w d_x isum| of one output, from the per-block functions the CPU
// test proves against matmul_q8_ref.
double magnitude(DType dt, const uint8_t* row, const Q8ActBlock* a, int64_t nb) {
  double mag = 0.0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t w[kQ8Words], x[kQ8Words];
    std::memcpy(x, a[b].qs, sizeof(x));
    const float dw = dt == DType::kQ4_0 ? load_weight_block<DType::kQ4_0>(row, b, w)
                                        : load_weight_block<DType::kQ8_0>(row, b, w);
    const int32_t isum = dt == DType::kQ4_0 ? block_isum<DType::kQ4_0>(w, x, a[b].sum)
                                            : block_isum<DType::kQ8_0>(w, x, a[b].sum);
    mag += std::fabs(static_cast<double>(dw) * a[b].d * isum);
  }
  return mag;
}

TEST(CudaGemvQ8, QuantizedActivationsMatchTheCpuQuantizerBitForBit) {
  REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(1);
  for (int64_t m : {1, 2, 3, 5, 8}) {
    for (int64_t k : {32, 96, 1024, 4128}) {
      const int64_t x_stride = k + 3 * m;
      std::vector<float> x = random_x(m, k, x_stride, rng);
      x[static_cast<size_t>(k / 2)] =
          std::numeric_limits<float>::infinity();  // one non-finite block
      const std::vector<Q8ActBlock> want = cpu_blocks(x, m, k, x_stride);
      DeviceBuffer dx(x), dact(q8_act_bytes(m, k));
      ASSERT_EQ(
          quantize_q8_act_cuda(dx.as<float>(), x_stride, m, k, dact.as<Q8ActBlockCuda>(), nullptr),
          cudaSuccess);
      const std::vector<Q8ActBlockCuda> got = dact.download<Q8ActBlockCuda>();
      ASSERT_EQ(got.size(), want.size());
      for (size_t b = 0; b < got.size(); ++b) {
        const std::string what =
            "m=" + std::to_string(m) + " k=" + std::to_string(k) + " block " + std::to_string(b);
        ASSERT_EQ(f32_to_bits(got[b].d), f32_to_bits(want[b].d)) << what;
        ASSERT_EQ(got[b].sum, want[b].sum) << what;
        for (int t = 0; t < 32; ++t) {
          ASSERT_EQ(static_cast<int8_t>(static_cast<uint32_t>(got[b].qs[t / 4]) >> (8 * (t % 4))),
                    want[b].qs[t])
              << what << " code " << t;
        }
      }
    }
  }
}

TEST(CudaGemvQ8, GemvMatchesTheQ8ReferenceUpToSummationOrder) {
  REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  constexpr float kSentinel = -12345.5f;
  int case_index = 0;
  for (DType dt : {DType::kQ4_0, DType::kQ8_0}) {
    for (int64_t m : {1, 2, 3, 5, 8}) {
      for (int64_t k : {32, 96, 1024, 4128}) {
        for (int64_t n : {1, 17, 300, 1031}) {
          ++case_index;
          const bool with_bias = case_index % 2 == 0;
          const int64_t row_bytes = dtype_row_bytes(dt, k) + (case_index % 3 == 0 ? 6 : 0);
          const int64_t x_stride = k + (case_index % 4) * 8, y_stride = n + 1 + case_index % 5;
          const std::string what = std::string(dtype_name(dt)) + " m=" + std::to_string(m) +
                                   " k=" + std::to_string(k) + " n=" + std::to_string(n) +
                                   " bias=" + std::to_string(with_bias);
          const std::vector<uint8_t> w = random_weight(dt, n, k, row_bytes, rng);
          const std::vector<float> x = random_x(m, k, x_stride, rng);
          std::vector<float> bias(static_cast<size_t>(n));
          for (float& v : bias) v = normal(rng);
          const std::vector<Q8ActBlock> act = cpu_blocks(x, m, k, x_stride);

          MatmulQ8Params r;
          r.weight = w.data();
          r.weight_dtype = dt;
          r.weight_row_bytes = row_bytes;
          r.bias = with_bias ? bias.data() : nullptr;
          r.act = act.data();
          std::vector<float> want(static_cast<size_t>(m * y_stride), kSentinel);
          r.y = want.data();
          r.y_stride = y_stride;
          r.m = m;
          r.n = n;
          r.k = k;
          ASSERT_EQ(matmul_q8_ref(r, 0, n), StatusCode::kOk) << what;

          DeviceBuffer dw(w), dx(x), db(bias), dact(q8_act_bytes(m, k)),
              dy(std::vector<float>(static_cast<size_t>(m * y_stride), kSentinel));
          MatmulParams p;
          p.weight = dw.as<void>();
          p.weight_dtype = dt;
          p.weight_row_bytes = row_bytes;
          p.bias = with_bias ? db.as<float>() : nullptr;
          p.x = dx.as<float>();
          p.x_stride = x_stride;
          p.y = dy.as<float>();
          p.y_stride = y_stride;
          p.m = m;
          p.n = n;
          p.k = k;
          ASSERT_TRUE(gemv_q8_serves(p)) << what;
          ASSERT_EQ(quantize_q8_act_cuda(p.x, x_stride, m, k, dact.as<Q8ActBlockCuda>(), nullptr),
                    cudaSuccess)
              << what;
          ASSERT_EQ(gemv_q8_cuda(p, dact.as<Q8ActBlockCuda>(), nullptr), cudaSuccess) << what;
          const std::vector<float> got = dy.download<float>();
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < y_stride; ++j) {
              const size_t e = static_cast<size_t>(i * y_stride + j);
              if (j >= n) {
                ASSERT_EQ(f32_to_bits(got[e]), f32_to_bits(kSentinel))
                    << what << " wrote padding at (" << i << ", " << j << ")";
                continue;
              }
              // |bias| too: the final acc + bias rounds at the sum's scale.
              const double mag =
                  magnitude(dt, w.data() + j * row_bytes, act.data() + i * (k / 32), k / 32) +
                  (with_bias ? std::fabs(bias[static_cast<size_t>(j)]) : 0.0);
              ASSERT_NEAR(got[e], want[e], 1e-5 * mag + 1e-30)
                  << what << " at (" << i << ", " << j << ")";
            }
          }
        }
      }
    }
  }
}

TEST(CudaGemvQ8, BackendMatmulUsesTheQ8MathForDecodeRows) {
  REQUIRE_CUDA_DEVICE();
  std::unique_ptr<Backend> gpu = create_backend({Device::cuda(0)});
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (DType dt : {DType::kQ4_0, DType::kQ8_0}) {
    for (int64_t m : {1, 4, 8}) {
      const int64_t n = 300, k = 1024;
      const std::string what = std::string(dtype_name(dt)) + " m=" + std::to_string(m);
      Tensor w = Tensor::empty({n, k}, dt);
      const std::vector<uint8_t> wbytes = random_weight(dt, n, k, dtype_row_bytes(dt, k), rng);
      std::memcpy(w.data(), wbytes.data(), wbytes.size());
      Tensor x = Tensor::empty({m, k}, DType::kF32), bias = Tensor::empty({n}, DType::kF32);
      const std::vector<float> xs = random_x(m, k, k, rng);
      std::memcpy(x.data(), xs.data(), xs.size() * sizeof(float));
      for (int64_t j = 0; j < n; ++j) bias.data_as<float>()[j] = normal(rng);
      const std::vector<Q8ActBlock> act = cpu_blocks(xs, m, k, k);
      std::vector<float> want(static_cast<size_t>(m * n));
      MatmulQ8Params r;
      r.weight = w.data();
      r.weight_dtype = dt;
      r.weight_row_bytes = dtype_row_bytes(dt, k);
      r.bias = bias.data_as<const float>();
      r.act = act.data();
      r.y = want.data();
      r.y_stride = n;
      r.m = m;
      r.n = n;
      r.k = k;
      ASSERT_EQ(matmul_q8_ref(r, 0, n), StatusCode::kOk);
      const Tensor wg = gpu->upload(w), bg = gpu->upload(bias);
      Tensor y = gpu->alloc({m, n}, DType::kF32);
      gpu->matmul(wg, &bg, gpu->upload(x), y);
      const Tensor got = gpu->download(y);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          const double mag = magnitude(dt, wbytes.data() + j * r.weight_row_bytes,
                                       act.data() + i * (k / 32), k / 32) +
                             std::fabs(bias.data_as<const float>()[j]);
          ASSERT_NEAR(static_cast<const float*>(got.row(i))[j],
                      want[static_cast<size_t>(i * n + j)], 1e-5 * mag + 1e-30)
              << what << " at (" << i << ", " << j << ")";
        }
      }
    }
  }
}

// Argument checks run before any launch, so they hold without a device.
TEST(CudaGemvQ8, RefusesShapesItDoesNotServe) {
  alignas(16) static uint8_t weight[64 * 34] = {};
  alignas(16) static Q8ActBlockCuda act[16] = {};
  alignas(16) static float x[16 * 64] = {}, y[16 * 64] = {};
  MatmulParams p;
  p.weight = weight;
  p.weight_dtype = DType::kQ8_0;
  p.weight_row_bytes = 2 * 34;
  p.x = x;
  p.x_stride = 64;
  p.y = y;
  p.y_stride = 4;
  p.m = 2;
  p.n = 4;
  p.k = 64;
  EXPECT_TRUE(gemv_q8_serves(p));
  MatmulParams bad = p;
  bad.m = kGemvMaxRows + 1;
  EXPECT_FALSE(gemv_q8_serves(bad));
  EXPECT_EQ(gemv_q8_cuda(bad, act, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(quantize_q8_act_cuda(x, 64, bad.m, 64, act, nullptr), cudaErrorInvalidValue);
  bad = p;
  bad.k = 48;
  EXPECT_FALSE(gemv_q8_serves(bad));
  EXPECT_EQ(gemv_q8_cuda(bad, act, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(quantize_q8_act_cuda(x, 64, 2, 48, act, nullptr), cudaErrorInvalidValue);
  for (DType dt : {DType::kF32, DType::kF16, DType::kQ4_1, DType::kQ4_K}) {
    bad = p;
    bad.weight_dtype = dt;
    EXPECT_FALSE(gemv_q8_serves(bad)) << dtype_name(dt);
    EXPECT_EQ(gemv_q8_cuda(bad, act, nullptr), cudaErrorInvalidValue) << dtype_name(dt);
  }
  bad = p;
  bad.weight_row_bytes = 34;  // shorter than a row of k = 64
  EXPECT_FALSE(gemv_q8_serves(bad));
  bad = p;
  bad.weight = weight + 1;  // blocks must be 2-byte aligned
  EXPECT_FALSE(gemv_q8_serves(bad));
  EXPECT_EQ(
      gemv_q8_cuda(
          p, reinterpret_cast<const Q8ActBlockCuda*>(reinterpret_cast<const uint8_t*>(act) + 4),
          nullptr),
      cudaErrorInvalidValue);  // activation blocks must be 16-byte aligned
  EXPECT_EQ(quantize_q8_act_cuda(x, 32, 2, 64, act, nullptr),
            cudaErrorInvalidValue);  // rows overlap
  bad = p;
  bad.m = 0;
  EXPECT_EQ(gemv_q8_cuda(bad, act, nullptr), cudaSuccess);  // nothing to do
  EXPECT_EQ(q8_act_bytes(3, 96), size_t{3 * 3 * sizeof(Q8ActBlockCuda)});
}

}  // namespace
}  // namespace llmos::kernels::cuda

#else

TEST(CudaGemvQ8, Skipped) { GTEST_SKIP() << "built without CUDA"; }

#endif
