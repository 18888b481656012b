// RoPE, RMSNorm, SwiGLU and matmul reference kernels against direct formulas on random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <random>

#include "kernels/activation.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "quant/quant.h"

namespace llmos::kernels {
namespace {

std::vector<float> random_vector(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

// Rotating pair (a, b) by theta is multiplying the complex number a + ib by e^{i theta}.
void check_rope(bool neox) {
  const int heads = 3, head_dim = 12, rot_dim = 8, rows = 4;
  auto x = random_vector(static_cast<size_t>(rows * heads * head_dim), neox ? 1 : 2);
  const auto original = x;
  const std::vector<int32_t> positions{0, 1, 7, 1000};
  std::vector<float> inv_freq;
  for (int i = 0; i < rot_dim / 2; ++i) inv_freq.push_back(std::pow(10000.0f, -2.0f * i / rot_dim));
  RopeParams p;
  p.x = x.data();
  p.x_stride = heads * head_dim;
  p.rows = rows;
  p.heads = heads;
  p.head_dim = head_dim;
  p.rot_dim = rot_dim;
  p.positions = positions.data();
  p.inv_freq = inv_freq.data();
  p.neox = neox;
  ASSERT_EQ(rope_ref(p, 0, rows), StatusCode::kOk);
  for (int r = 0; r < rows; ++r) {
    for (int h = 0; h < heads; ++h) {
      const size_t base = static_cast<size_t>((r * heads + h) * head_dim);
      for (int i = 0; i < rot_dim / 2; ++i) {
        const size_t a = base + static_cast<size_t>(neox ? i : 2 * i);
        const size_t b = base + static_cast<size_t>(neox ? i + rot_dim / 2 : 2 * i + 1);
        const std::complex<double> z(original[a], original[b]);
        const std::complex<double> rotated = z * std::polar(1.0, static_cast<double>(positions[r]) * inv_freq[i]);
        EXPECT_NEAR(x[a], rotated.real(), 1e-5);
        EXPECT_NEAR(x[b], rotated.imag(), 1e-5);
      }
      for (int d = rot_dim; d < head_dim; ++d) EXPECT_EQ(x[base + d], original[base + d]) << "unrotated tail";
    }
  }
  // Position 0 is the identity.
  for (int i = 0; i < heads * head_dim; ++i) EXPECT_NEAR(x[i], original[i], 1e-7);
}

TEST(RopeRef, AdjacentPairsMatchComplexRotation) { check_rope(false); }
TEST(RopeRef, NeoxHalvesMatchComplexRotation) { check_rope(true); }

TEST(RmsNormRef, MatchesFormula) {
  const int rows = 3, dim = 37;
  auto x = random_vector(rows * dim, 3);
  auto w = random_vector(dim, 4);
  std::vector<float> y(x.size());
  RmsNormParams p;
  p.x = x.data();
  p.x_stride = dim;
  p.weight = w.data();
  p.y = y.data();
  p.y_stride = dim;
  p.rows = rows;
  p.dim = dim;
  p.eps = 1e-6f;
  ASSERT_EQ(rms_norm_ref(p, 0, rows), StatusCode::kOk);
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
    const double inv = 1.0 / std::sqrt(ss / dim + 1e-6);
    for (int i = 0; i < dim; ++i) EXPECT_NEAR(y[r * dim + i], x[r * dim + i] * inv * w[i], 1e-5);
  }
}

TEST(SwigluRef, MatchesFormula) {
  auto g = random_vector(100, 5), u = random_vector(100, 6);
  std::vector<float> out(100);
  ASSERT_EQ(swiglu_ref(g.data(), u.data(), out.data(), 0, 100), StatusCode::kOk);
  for (int i = 0; i < 100; ++i) EXPECT_NEAR(out[i], g[i] / (1.0 + std::exp(-g[i])) * u[i], 1e-6);
}

class MatmulRefTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulRefTest, MatchesDequantizedDotProducts) {
  const DType dtype = GetParam();
  const int64_t m = 3, n = 7, k = 512;
  const auto wf = random_vector(static_cast<size_t>(n * k), 7);
  const int64_t row_bytes = dtype_row_bytes(dtype, k);
  std::vector<uint8_t> w(static_cast<size_t>(n * row_bytes));
  for (int64_t j = 0; j < n; ++j) quantize_row(dtype, wf.data() + j * k, w.data() + j * row_bytes, k);
  const auto x = random_vector(static_cast<size_t>(m * k), 8);
  const auto bias = random_vector(static_cast<size_t>(n), 9);
  std::vector<float> y(static_cast<size_t>(m * (n + 2)), 123.0f);  // padded rows: stride n + 2
  MatmulParams p;
  p.weight = w.data();
  p.weight_dtype = dtype;
  p.weight_row_bytes = row_bytes;
  p.bias = bias.data();
  p.x = x.data();
  p.x_stride = k;
  p.y = y.data();
  p.y_stride = n + 2;
  p.m = m;
  p.n = n;
  p.k = k;
  std::vector<float> scratch(static_cast<size_t>(k));
  ASSERT_EQ(matmul_ref(p, 0, 4, scratch.data()), StatusCode::kOk);
  ASSERT_EQ(matmul_ref(p, 4, n, scratch.data()), StatusCode::kOk);
  std::vector<float> deq(static_cast<size_t>(k));
  for (int64_t j = 0; j < n; ++j) {
    dequantize_row(dtype, w.data() + j * row_bytes, deq.data(), k);
    for (int64_t i = 0; i < m; ++i) {
      double acc = bias[j];
      for (int64_t t = 0; t < k; ++t) acc += static_cast<double>(x[i * k + t]) * deq[t];
      EXPECT_NEAR(y[i * (n + 2) + j], acc, 1e-4 * (1.0 + std::abs(acc)));
    }
  }
  for (int64_t i = 0; i < m; ++i) EXPECT_EQ(y[i * (n + 2) + n], 123.0f) << "wrote past the row";
}

INSTANTIATE_TEST_SUITE_P(WeightDTypes, MatmulRefTest,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                                           DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ2_K, DType::kQ3_K,
                                           DType::kQ4_K, DType::kQ5_K, DType::kQ6_K),
                         [](const auto& param_info) { return std::string(dtype_name(param_info.param)); });

}  // namespace
}  // namespace llmos::kernels
