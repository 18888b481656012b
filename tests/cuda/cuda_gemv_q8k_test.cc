// The K-quant int8 GEMV of the CUDA backend (kernels/cuda/gemv_q8k_cuda.h) against the q8_K
// references of kernels/matmul_q8k.h on random data:
//  - quantize_q8k_act_cuda writes the blocks quantize_row_q8k_ref writes, bit for bit (d, codes,
//    bsums), for m = 1..8 strided rows, including an all-zero block and a magnitude tie;
//  - gemv_q8k_cuda (Q4_K, Q5_K, Q6_K) equals matmul_q8k_ref within 1e-5 of the output's
//    magnitude (the sum of |d_w d_a S| + |dmin_w d_a M| over the blocks): both compute the same
//    exact integers and round the block steps the same way, only the order of the f32 additions
//    differs; ragged n, shapes that split k across warps, padded weight rows at both 2-byte
//    phases, strided y (padding untouched), with and without bias;
//  - CudaBackend::matmul takes that path for K-quant decode rows;
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
#include "kernels/cuda/gemv_q8k_cuda.h"
#include "kernels/matmul_q8k.h"
#include "cuda_test_support.h"
#include "support/blockwise_activations.h"

namespace llmos::kernels::cuda {
namespace {

using cuda_test::DeviceBuffer;

// m rows x_stride floats apart, 256-blocks of magnitudes 1e-6 .. 1e6; the padding between rows
// holds NaN, which must never be read.
std::vector<float> random_x(int64_t m, int64_t k, int64_t x_stride, std::mt19937& rng) {
  return test::blockwise_activations(m, k, x_stride, kQ8KBlock, -6, 6, 1.0f, rng);
}

// n GGUF rows row_bytes apart: random code and scale bytes under random positive f16 d / dmin
// (signed d for Q6_K); row padding random too.
std::vector<uint8_t> random_weight(DType dt, int64_t n, int64_t k, int64_t row_bytes, std::mt19937& rng) {
  std::vector<uint8_t> w(static_cast<size_t>(n * row_bytes));
  for (auto& byte : w) byte = static_cast<uint8_t>(rng());
  const int block_bytes = kquant_block_bytes(dt);
  std::uniform_real_distribution<float> u(1e-4f, 1e-2f);
  std::normal_distribution<float> normal(0.0f, 0.01f);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t b = 0; b < k / kQ8KBlock; ++b) {
      uint8_t* blk = w.data() + j * row_bytes + b * block_bytes;
      if (dt == DType::kQ6_K) {
        const uint16_t d = f32_to_f16(normal(rng));
        std::memcpy(blk + 208, &d, 2);
      } else {
        const uint16_t d = f32_to_f16(u(rng)), dmin = f32_to_f16(u(rng));
        std::memcpy(blk, &d, 2);
        std::memcpy(blk + 2, &dmin, 2);
      }
    }
  }
  return w;
}

std::vector<Q8KBlock> cpu_blocks(const std::vector<float>& x, int64_t m, int64_t k, int64_t x_stride) {
  std::vector<Q8KBlock> act(static_cast<size_t>(m * (k / kQ8KBlock)));
  for (int64_t i = 0; i < m; ++i) quantize_row_q8k_ref(x.data() + i * x_stride, k, act.data() + i * (k / kQ8KBlock));
  return act;
}

// Sum over blocks of |d_w d_a S| + |dmin_w d_a M| of one output, from the per-block functions the
// CPU test proves against the reference.
template <DType DT>
double magnitude(const uint8_t* row, const Q8KActBlockCuda* a, int64_t nb) {
  double mag = 0.0;
  for (int64_t b = 0; b < nb; ++b) {
    KPartSums total{0, 0};
    KWeightPart w;
    for (int p = 0; p < kKParts; ++p) {
      Q8KActPart x;
      load_weight_part<DT>(row + b * kquant_block_bytes(DT), p, &w);
      load_act_part<DT>(a + b, p, &x);
      const KPartSums s = kquant_part_sums<DT>(w, x);
      total.s += s.s;
      total.m += s.m;
    }
    mag += std::fabs(static_cast<double>(w.d) * a[b].d * total.s) +
           std::fabs(static_cast<double>(w.dmin) * a[b].d * total.m);
  }
  return mag;
}

double magnitude_of(DType dt, const uint8_t* row, const Q8KActBlockCuda* a, int64_t nb) {
  switch (dt) {
    case DType::kQ4_K: return magnitude<DType::kQ4_K>(row, a, nb);
    case DType::kQ5_K: return magnitude<DType::kQ5_K>(row, a, nb);
    default: return magnitude<DType::kQ6_K>(row, a, nb);
  }
}

std::vector<Q8KActBlockCuda> host_device_blocks(const std::vector<float>& x, int64_t m, int64_t k, int64_t x_stride) {
  std::vector<Q8KActBlockCuda> act(static_cast<size_t>(m * (k / kQ8KBlock)));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t b = 0; b < k / kQ8KBlock; ++b)
      quantize_q8k_block(x.data() + i * x_stride + b * kQ8KBlock, &act[static_cast<size_t>(i * (k / kQ8KBlock) + b)]);
  }
  return act;
}

TEST(CudaGemvQ8K, QuantizedActivationsMatchTheCpuQuantizerBitForBit) {
  REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(1);
  for (int64_t m = 1; m <= 8; ++m) {
    for (int64_t k : {256, 1024, 4096}) {
      const int64_t x_stride = k + 3 * m;
      std::vector<float> x = random_x(m, k, x_stride, rng);
      for (int t = 0; t < kQ8KBlock; ++t) x[static_cast<size_t>(t)] = 0.0f;  // an all-zero block
      if (k > kQ8KBlock) {  // a tie of magnitude: the first element (negative) must win
        x[kQ8KBlock + 5] = -1e7f;
        x[kQ8KBlock + 77] = 1e7f;
      }
      const std::vector<Q8KBlock> want = cpu_blocks(x, m, k, x_stride);
      DeviceBuffer dx(x), dact(q8k_act_bytes(m, k));
      ASSERT_EQ(quantize_q8k_act_cuda(dx.as<float>(), x_stride, m, k, dact.as<Q8KActBlockCuda>(), nullptr),
                cudaSuccess);
      const std::vector<Q8KActBlockCuda> got = dact.download<Q8KActBlockCuda>();
      ASSERT_EQ(got.size(), want.size());
      for (size_t b = 0; b < got.size(); ++b) {
        const std::string what = "m=" + std::to_string(m) + " k=" + std::to_string(k) + " block " + std::to_string(b);
        ASSERT_EQ(f32_to_bits(got[b].d), f32_to_bits(want[b].d)) << what;
        for (int g = 0; g < 16; ++g) ASSERT_EQ(got[b].bsums[g], want[b].bsums[g]) << what << " bsum " << g;
        for (int t = 0; t < kQ8KBlock; ++t) {
          ASSERT_EQ(static_cast<int8_t>(static_cast<uint32_t>(got[b].qs[t / 4]) >> (8 * (t % 4))), want[b].qs[t])
              << what << " code " << t;
        }
      }
    }
  }
}

TEST(CudaGemvQ8K, GemvMatchesTheQ8KReferenceUpToSummationOrder) {
  REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  struct Shape {
    int64_t n, k;
  };
  // Wide and narrow n (narrow ones split k over several warps per tile), ragged tails.
  const Shape shapes[] = {{1, 256}, {7, 8192}, {33, 2048}, {300, 1024}, {1027, 4096}, {5, 768}};
  for (DType dt : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    for (const Shape& s : shapes) {
      for (int64_t m : {1, 2, 5, 8}) {
        for (int64_t pad : {0, 2}) {  // row padding 2 bytes: odd rows start 2 bytes off a word
          const int64_t n = s.n, k = s.k, nb = k / kQ8KBlock;
          const int64_t row_bytes = dtype_row_bytes(dt, k) + pad;
          const int64_t y_stride = n + 5;
          const bool with_bias = (m + pad) % 2 == 0;
          const std::string what = std::string(dtype_name(dt)) + " n=" + std::to_string(n) + " k=" +
                                   std::to_string(k) + " m=" + std::to_string(m) + " pad=" + std::to_string(pad);
          const std::vector<uint8_t> w = random_weight(dt, n, k, row_bytes, rng);
          const std::vector<float> x = random_x(m, k, k, rng);
          std::vector<float> bias(static_cast<size_t>(n));
          for (float& v : bias) v = normal(rng);
          const std::vector<Q8KBlock> act = cpu_blocks(x, m, k, k);
          const std::vector<Q8KActBlockCuda> hact = host_device_blocks(x, m, k, k);
          std::vector<float> want(static_cast<size_t>(m * n));
          ASSERT_EQ(matmul_q8k_ref(dt, w.data(), row_bytes, k, with_bias ? bias.data() : nullptr, act.data(), m,
                                   want.data(), n, 0, n),
                    StatusCode::kOk);

          DeviceBuffer dw(w), dx(x), db(bias), dact(q8k_act_bytes(m, k));
          const float sentinel = -12345.0f;
          DeviceBuffer dy(std::vector<float>(static_cast<size_t>(m * y_stride), sentinel));
          ASSERT_EQ(quantize_q8k_act_cuda(dx.as<float>(), k, m, k, dact.as<Q8KActBlockCuda>(), nullptr), cudaSuccess);
          MatmulParams p;
          p.weight = dw.as<uint8_t>();
          p.weight_dtype = dt;
          p.weight_row_bytes = row_bytes;
          p.bias = with_bias ? db.as<float>() : nullptr;
          p.x = dx.as<float>();
          p.x_stride = k;
          p.y = dy.as<float>();
          p.y_stride = y_stride;
          p.m = m;
          p.n = n;
          p.k = k;
          ASSERT_TRUE(gemv_q8k_serves(p)) << what;
          ASSERT_EQ(gemv_q8k_cuda(p, dact.as<Q8KActBlockCuda>(), nullptr), cudaSuccess) << what;
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
          const std::vector<float> y = dy.download<float>();
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < y_stride; ++j) {
              const float got = y[static_cast<size_t>(i * y_stride + j)];
              if (j >= n) {
                ASSERT_EQ(f32_to_bits(got), f32_to_bits(sentinel)) << what << ": padding written at " << i << "," << j;
                continue;
              }
              const double mag = magnitude_of(dt, w.data() + j * row_bytes, hact.data() + i * nb, nb) +
                                 (with_bias ? std::fabs(bias[static_cast<size_t>(j)]) : 0.0);
              const float ref = want[static_cast<size_t>(i * n + j)];
              ASSERT_LE(std::fabs(static_cast<double>(got) - ref), 1e-5 * mag + 1e-30)
                  << what << " y[" << i << "][" << j << "] = " << got << " vs " << ref << " (magnitude " << mag << ")";
            }
          }
        }
      }
    }
  }
}

TEST(CudaGemvQ8K, BackendMatmulUsesTheQ8KMathForDecodeRows) {
  REQUIRE_CUDA_DEVICE();
  std::unique_ptr<Backend> gpu = create_backend({Device::cuda(0)});
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (DType dt : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    for (int64_t m : {1, 4, 8}) {
      const int64_t n = 300, k = 1024, nb = k / kQ8KBlock;
      const std::string what = std::string(dtype_name(dt)) + " m=" + std::to_string(m);
      Tensor w = Tensor::empty({n, k}, dt);
      const std::vector<uint8_t> wbytes = random_weight(dt, n, k, dtype_row_bytes(dt, k), rng);
      std::memcpy(w.data(), wbytes.data(), wbytes.size());
      Tensor x = Tensor::empty({m, k}, DType::kF32), bias = Tensor::empty({n}, DType::kF32);
      const std::vector<float> xs = random_x(m, k, k, rng);
      std::memcpy(x.data(), xs.data(), xs.size() * sizeof(float));
      for (int64_t j = 0; j < n; ++j) bias.data_as<float>()[j] = normal(rng);
      const std::vector<Q8KBlock> act = cpu_blocks(xs, m, k, k);
      const std::vector<Q8KActBlockCuda> hact = host_device_blocks(xs, m, k, k);
      std::vector<float> want(static_cast<size_t>(m * n));
      ASSERT_EQ(matmul_q8k_ref(dt, w.data(), dtype_row_bytes(dt, k), k, bias.data_as<const float>(), act.data(), m,
                               want.data(), n, 0, n),
                StatusCode::kOk);
      const Tensor wg = gpu->upload(w), bg = gpu->upload(bias);
      Tensor y = gpu->alloc({m, n}, DType::kF32);
      gpu->matmul(wg, &bg, gpu->upload(x), y);
      const Tensor got = gpu->download(y);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          const double mag = magnitude_of(dt, wbytes.data() + j * dtype_row_bytes(dt, k), hact.data() + i * nb, nb) +
                             std::fabs(bias.data_as<float>()[j]);
          const float g = got.data_as<float>()[i * n + j];
          ASSERT_LE(std::fabs(static_cast<double>(g) - want[static_cast<size_t>(i * n + j)]), 1e-5 * mag)
              << what << " y[" << i << "][" << j << "]";
        }
      }
    }
  }
}

TEST(CudaGemvQ8K, RefusesShapesItDoesNotServe) {
  // Argument checks only: nothing is launched, so this runs without a device too.
  alignas(16) static uint8_t weight[2 * 210 + 2];
  alignas(16) static Q8KActBlockCuda act[2];
  alignas(16) static float y[16];
  MatmulParams p;
  p.weight = weight;
  p.weight_dtype = DType::kQ6_K;
  p.weight_row_bytes = 210;
  p.y = y;
  p.y_stride = 1;
  p.m = 1;
  p.n = 1;
  p.k = 256;
  EXPECT_TRUE(gemv_q8k_serves(p));
  MatmulParams q = p;
  q.k = 128;  // not a multiple of 256
  EXPECT_FALSE(gemv_q8k_serves(q));
  EXPECT_EQ(gemv_q8k_cuda(q, act, nullptr), cudaErrorInvalidValue);
  q = p;
  q.m = kGemvMaxRows + 1;
  EXPECT_FALSE(gemv_q8k_serves(q));
  q = p;
  q.weight = weight + 1;  // odd address
  EXPECT_FALSE(gemv_q8k_serves(q));
  q.weight = weight + 2;  // Q6_K's first codes would be read from 2 bytes before the tensor
  EXPECT_FALSE(gemv_q8k_serves(q));
  q = p;
  q.weight_row_bytes = 209;  // shorter than a block
  EXPECT_FALSE(gemv_q8k_serves(q));
  q = p;
  q.weight_dtype = DType::kQ4_0;
  EXPECT_FALSE(gemv_q8k_serves(q));
  EXPECT_FALSE(gemv_q8k_supported(DType::kQ3_K));
  EXPECT_EQ(gemv_q8k_cuda(p, reinterpret_cast<const Q8KActBlockCuda*>(reinterpret_cast<const uint8_t*>(act) + 4), nullptr),
            cudaErrorInvalidValue);  // misaligned activations
  EXPECT_EQ(gemv_q8k_cuda(p, nullptr, nullptr), cudaErrorInvalidValue);
  static float x[512];
  EXPECT_EQ(quantize_q8k_act_cuda(x, 256, 1, 200, act, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(quantize_q8k_act_cuda(x, 256, kGemvMaxRows + 1, 256, act, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(quantize_q8k_act_cuda(x, 100, 2, 256, act, nullptr), cudaErrorInvalidValue);  // rows overlap
  EXPECT_EQ(q8k_act_bytes(2, 512), 4 * sizeof(Q8KActBlockCuda));
  EXPECT_EQ(q8k_act_bytes(0, 512), size_t{0});
}

}  // namespace
}  // namespace llmos::kernels::cuda

#else

TEST(CudaGemvQ8K, Skipped) { GTEST_SKIP() << "built without CUDA"; }

#endif
