// Every CUDA backend op against the scalar reference backend (kernels/ref, double accumulation)
// on random inputs with ragged shapes. Tolerances by precision: f32 paths within 1e-5 relative
// (to the row's magnitude), paths that round activations to f16/bf16 within 1e-2. Skips, saying
// why, on a machine without a CUDA device.
#include <gtest/gtest.h>

#if LLMOS_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_probe.h"
#include "core/error.h"
#include "kernels/cuda/matmul_cuda.h"
#include "kv/kv_cache.h"
#include "model/batch.h"
#include "quant/quant.h"
#include "cuda_test_support.h"

namespace llmos {
namespace {

using cuda_test::Backends;
using cuda_test::random_f32;
using cuda_test::expect_close_rows;

Tensor random_weight(DType dtype, int64_t n, int64_t k, uint32_t seed) {
  Tensor f = random_f32(n, k, seed, 0.2f);
  if (dtype == DType::kF32) return f;
  Tensor w = Tensor::empty({n, k}, dtype);
  for (int64_t r = 0; r < n; ++r) quantize_row(dtype, static_cast<const float*>(f.row(r)), w.row(r), k);
  return w;
}

// |got - want| <= tol * scale_of_row + tiny, element by element.
// For outputs of the q8 math (activations rounded to int8 blocks, d = amax / 127 per 32 values,
// so |x - d q| <= d / 2): |got - want| <= sum_t |w[t]| * amax(block of t) / 254 (the rounding of
// x) + 1e-5 * (sum_t |w[t] x[t]| + |bias|) (f32 arithmetic), element by element.
void expect_within_q8_rounding(const Tensor& got, const Tensor& want, const Tensor& w,
                               const Tensor& x, const Tensor* bias, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const int64_t n = w.dim(0), k = w.dim(1);
  std::vector<float> wr(static_cast<size_t>(k));
  for (int64_t j = 0; j < n; ++j) {
    dequantize_row(w.dtype(), w.row(j), wr.data(), k);
    for (int64_t i = 0; i < x.dim(0); ++i) {
      const auto* xr = static_cast<const float*>(x.row(i));
      double quant_err = 0.0,
             abs_sum = bias != nullptr ? std::fabs(double{bias->data_as<const float>()[j]}) : 0.0;
      for (int64_t b = 0; b < k; b += 32) {
        double amax = 0.0;
        for (int64_t t = b; t < std::min(k, b + 32); ++t)
          amax = std::max(amax, std::fabs(double{xr[t]}));
        for (int64_t t = b; t < std::min(k, b + 32); ++t) {
          quant_err += std::fabs(double{wr[static_cast<size_t>(t)]}) * amax / 254.0;
          abs_sum += std::fabs(double{wr[static_cast<size_t>(t)]} * xr[t]);
        }
      }
      ASSERT_NEAR(static_cast<const float*>(got.row(i))[j],
                  static_cast<const float*>(want.row(i))[j],
                  quant_err * 1.001 + 1e-5 * abs_sum + 1e-30)
          << what << " at [" << i << ", " << j << "]";
    }
  }
}

TEST(CudaKernels, EmbedDequantizesRowsOfEveryFormat) {
  REQUIRE_CUDA_DEVICE();
  Backends b;
  const std::vector<int32_t> tokens{3, 0, 41, 3, 17};
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0,
                   DType::kQ5_1, DType::kQ8_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    const int64_t dim = dtype_is_quantized(dt) && dtype_block_size(dt) == 256 ? 512 : 96;
    const Tensor table = random_weight(dt, 42, dim, 7);
    Tensor want = Tensor::empty({5, dim}, DType::kF32);
    b.ref->embed(table, tokens, want);
    Tensor out = b.gpu->alloc({5, dim}, DType::kF32);
    b.gpu->embed(b.gpu->upload(table), tokens, out);
    // Dequantization is exact arithmetic on both sides: the same floats.
    expect_close_rows(b.gpu->download(out), want, 0.0, std::string("embed ") + std::string(dtype_name(dt)));
  }
}

struct MatmulCase {
  DType dtype;
  int64_t n, k;
};

class CudaMatmulTest : public ::testing::TestWithParam<MatmulCase> {};

TEST_P(CudaMatmulTest, MatchesReferenceForDecodeAndPrefillRowCounts) {
  REQUIRE_CUDA_DEVICE();
  Backends b;
  const auto [dt, n, k] = GetParam();
  const Tensor w = random_weight(dt, n, k, 11);
  const Tensor bias = random_f32(1, n, 12).reshape({n});
  const Tensor w_gpu = b.gpu->upload(w), bias_gpu = b.gpu->upload(bias);
  for (int64_t m : {1, 3, 8, 9, 37}) {
    const Tensor x = random_f32(m, k, static_cast<uint32_t>(20 + m));
    for (bool with_bias : {false, true}) {
      Tensor want = Tensor::empty({m, n}, DType::kF32);
      b.ref->matmul(w, with_bias ? &bias : nullptr, x, want);
      Tensor y = b.gpu->alloc({m, n}, DType::kF32);
      b.gpu->matmul(w_gpu, with_bias ? &bias_gpu : nullptr, b.gpu->upload(x), y);
      const std::string what =
          std::string("matmul ") + std::string(dtype_name(dt)) + " m=" + std::to_string(m);
      // Rows <= kGemvMaxRows run a GEMV: for Q4_0 / Q8_0 the int8 one, which quantizes the
      // activations to int8 blocks (the q8 math), so its bound is that rounding's (see
      // expect_within_q8_rounding); for the other formats the f32 one (1e-5). More rows run
      // cuBLAS, which rounds activations to the weight's 16-bit type (f16 for quantized weights)
      // unless the weight is f32.
      if (m <= kernels::cuda::kGemvMaxRows && (dt == DType::kQ4_0 || dt == DType::kQ8_0)) {
        expect_within_q8_rounding(b.gpu->download(y), want, w, x, with_bias ? &bias : nullptr,
                                  what);
        continue;
      }
      const bool rounded = m > kernels::cuda::kGemvMaxRows && dt != DType::kF32;
      expect_close_rows(b.gpu->download(y), want, rounded ? 1e-2 : 1e-5, what);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaMatmulTest,
                         ::testing::Values(MatmulCase{DType::kF32, 37, 77}, MatmulCase{DType::kF16, 45, 96},
                                           MatmulCase{DType::kBF16, 33, 130}, MatmulCase{DType::kQ4_0, 61, 160},
                                           MatmulCase{DType::kQ4_1, 19, 96}, MatmulCase{DType::kQ5_0, 23, 64},
                                           MatmulCase{DType::kQ5_1, 17, 128}, MatmulCase{DType::kQ8_0, 70, 224},
                                           MatmulCase{DType::kQ4_K, 29, 512}, MatmulCase{DType::kQ5_K, 9, 256},
                                           MatmulCase{DType::kQ6_K, 41, 768}),
                         [](const ::testing::TestParamInfo<MatmulCase>& param_info) {
                           return std::string(dtype_name(param_info.param.dtype)) + "_n" + std::to_string(param_info.param.n) +
                                  "_k" + std::to_string(param_info.param.k);
                         });

TEST(CudaKernels, UnsupportedWeightFormatsAreReportedByName) {
  REQUIRE_CUDA_DEVICE();
  Backends b;
  const Tensor w = b.gpu->upload(random_weight(DType::kQ2_K, 4, 256, 1));
  const Tensor x = b.gpu->upload(random_f32(1, 256, 2));
  Tensor y = b.gpu->alloc({1, 4}, DType::kF32);
  try {
    b.gpu->matmul(w, nullptr, x, y);
    FAIL() << "expected an error for q2_K";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("q2_K"), std::string::npos) << e.message();
  }
}

TEST(CudaKernels, RmsNormMatchesReference) {
  REQUIRE_CUDA_DEVICE();
  Backends b;
  for (int64_t dim : {1, 77, 288, 4099}) {
    const Tensor x = random_f32(5, dim, static_cast<uint32_t>(dim), 3.0f);
    const Tensor w = random_f32(1, dim, 99).reshape({dim});
    Tensor want = Tensor::empty({5, dim}, DType::kF32);
    b.ref->rms_norm(x, w, 1e-5f, want);
    Tensor xg = b.gpu->upload(x);
    b.gpu->rms_norm(xg, b.gpu->upload(w), 1e-5f, xg);  // in place
    expect_close_rows(b.gpu->download(xg), want, 1e-5, "rms_norm dim=" + std::to_string(dim));
  }
}

TEST(CudaKernels, RopeMatchesReferenceForBothPairings) {
  REQUIRE_CUDA_DEVICE();
  Backends b;
  const int heads = 3, head_dim = 40;
  for (bool neox : {false, true}) {
    for (int rot_dim : {40, 24}) {
      RopeSpec rope;
      rope.rot_dim = rot_dim;
      rope.neox = neox;
      rope.attn_factor = 0.9f;
      for (int i = 0; i < rot_dim / 2; ++i) rope.inv_freq.push_back(std::pow(10000.0f, -2.0f * i / rot_dim));
      const std::vector<int32_t> positions{0, 1, 7, 4000, 123457, 9};
      Tensor want = random_f32(6, heads * head_dim, 5);
      Tensor x = b.gpu->upload(want);
      b.ref->rope(want, heads, head_dim, rope, positions);
      b.gpu->rope(x, heads, head_dim, rope, positions);
      expect_close_rows(b.gpu->download(x), want, 1e-5,
                        std::string("rope neox=") + (neox ? "1" : "0") + " rot=" + std::to_string(rot_dim));
    }
  }
}

TEST(CudaKernels, SwigluAddAndGatherMatchReference) {
  REQUIRE_CUDA_DEVICE();
  Backends b;
  const Tensor gate = random_f32(7, 333, 1, 4.0f), up = random_f32(7, 333, 2);
  Tensor want = Tensor::empty({7, 333}, DType::kF32);
  b.ref->swiglu(gate, up, want);
  Tensor g = b.gpu->upload(gate);
  b.gpu->swiglu(g, b.gpu->upload(up), g);
  expect_close_rows(b.gpu->download(g), want, 1e-5, "swiglu");

  Tensor sum = gate.clone();
  b.ref->add(sum, up);
  Tensor s = b.gpu->upload(gate);
  b.gpu->add(s, b.gpu->upload(up));
  expect_close_rows(b.gpu->download(s), sum, 0.0, "add");

  const std::vector<int32_t> rows{6, 0, 6, 3};
  Tensor gathered = Tensor::empty({4, 333}, DType::kF32);
  b.ref->gather_rows(up, rows, gathered);
  Tensor gg = b.gpu->alloc({4, 333}, DType::kF32);
  b.gpu->gather_rows(b.gpu->upload(up), rows, gg);
  expect_close_rows(b.gpu->download(gg), gathered, 0.0, "gather_rows");
}

struct AttentionCase {
  DType kv_dtype;
  int num_heads, num_kv_heads, head_dim, block_size;
};

class CudaAttentionTest : public ::testing::TestWithParam<AttentionCase> {};

// Three sequences in one step: a prefill chunk behind a cached prefix, a fresh prompt and a
// single-token decode, with shuffled block tables. K/V of every position are written through
// write_kv first (the cached prefix in an earlier step), then attention runs on both backends.
TEST_P(CudaAttentionTest, WriteKvAndPagedAttentionMatchReference) {
  REQUIRE_CUDA_DEVICE();
  Backends b;
  const AttentionCase c = GetParam();
  KvCacheSpec spec;
  spec.num_layers = 2;
  spec.num_kv_heads = c.num_kv_heads;
  spec.head_dim = c.head_dim;
  spec.block_size = c.block_size;
  spec.num_blocks = 64;
  spec.dtype = c.kv_dtype;
  KvCache ref_cache(spec, *b.ref), gpu_cache(spec, *b.gpu);

  const std::vector<int32_t> cached{21, 0, 40};  // tokens already in the cache per sequence
  const std::vector<int32_t> fresh{9, 13, 1};    // tokens computed in this step
  std::vector<int32_t> free_blocks(spec.num_blocks);
  for (int i = 0; i < spec.num_blocks; ++i) free_blocks[i] = i;
  std::shuffle(free_blocks.begin(), free_blocks.end(), std::mt19937(3));
  Batch step, history;
  size_t next_block = 0;
  for (size_t s = 0; s < cached.size(); ++s) {
    const int total = cached[s] + fresh[s];
    std::vector<int32_t> table;
    for (int t = 0; t < total; t += c.block_size) table.push_back(free_blocks[next_block++]);
    std::vector<int32_t> old_tokens(static_cast<size_t>(cached[s]), 1), new_tokens(static_cast<size_t>(fresh[s]), 1);
    if (cached[s] > 0) history.add_sequence(old_tokens, 0, table, c.block_size, Batch::Logits::kNone);
    step.add_sequence(new_tokens, cached[s], table, c.block_size, Batch::Logits::kNone);
  }
  const int kv_dim = c.num_kv_heads * c.head_dim;
  const int layer = 1;
  for (const Batch* batch : {&history, &step}) {
    const int64_t t = batch->num_tokens();
    const Tensor k = random_f32(t, kv_dim, static_cast<uint32_t>(t), 2.0f), v = random_f32(t, kv_dim, 77);
    b.ref->write_kv(ref_cache, layer, k, v, batch->slots);
    b.gpu->write_kv(gpu_cache, layer, b.gpu->upload(k), b.gpu->upload(v), batch->slots);
  }
  // The written slots hold the same bytes (same round-to-nearest-even conversions).
  const Tensor k_dev = b.gpu->download(gpu_cache.k(layer)), v_dev = b.gpu->download(gpu_cache.v(layer));
  const int64_t elem = dtype_block_bytes(spec.dtype);
  for (const Batch* batch : {&history, &step}) {
    for (int64_t slot : batch->slots) {
      const int64_t block = slot / c.block_size, off = slot % c.block_size;
      for (int h = 0; h < c.num_kv_heads; ++h) {
        const int64_t at = (((block * c.num_kv_heads + h) * c.block_size + off) * c.head_dim) * elem;
        const size_t n = static_cast<size_t>(c.head_dim * elem);
        ASSERT_EQ(std::memcmp(static_cast<const char*>(k_dev.data()) + at,
                              static_cast<const char*>(ref_cache.k(layer).data()) + at, n), 0) << "K slot " << slot;
        ASSERT_EQ(std::memcmp(static_cast<const char*>(v_dev.data()) + at,
                              static_cast<const char*>(ref_cache.v(layer).data()) + at, n), 0) << "V slot " << slot;
      }
    }
  }
  const Tensor q = random_f32(step.num_tokens(), c.num_heads * c.head_dim, 8);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  Tensor want = Tensor::empty(q.shape(), DType::kF32);
  b.ref->attention(q, ref_cache, layer, step, c.num_heads, scale, want);
  Tensor out = b.gpu->alloc(q.shape(), DType::kF32);
  b.gpu->attention(b.gpu->upload(q), gpu_cache, layer, step, c.num_heads, scale, out);
  // Same cache contents on both sides: only f32 vs double softmax arithmetic differs.
  expect_close_rows(b.gpu->download(out), want, 1e-5, "attention");
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaAttentionTest,
                         ::testing::Values(AttentionCase{DType::kF32, 4, 4, 64, 16},
                                           AttentionCase{DType::kF16, 8, 2, 128, 16},
                                           AttentionCase{DType::kBF16, 6, 1, 40, 5},
                                           AttentionCase{DType::kF32, 32, 1, 256, 7},
                                           AttentionCase{DType::kF16, 12, 4, 80, 32}),
                         [](const ::testing::TestParamInfo<AttentionCase>& param_info) {
                           const AttentionCase& c = param_info.param;
                           return std::string(dtype_name(c.kv_dtype)) + "_h" + std::to_string(c.num_heads) + "_kv" +
                                  std::to_string(c.num_kv_heads) + "_d" + std::to_string(c.head_dim) + "_b" +
                                  std::to_string(c.block_size);
                         });

}  // namespace
}  // namespace llmos

#else

TEST(CudaKernels, Skipped) { GTEST_SKIP() << "built without CUDA"; }

#endif
