// The fast RMSNorm, SwiGLU and residual add (kernels/cpu/elementwise_cpu.h) against the scalar
// references, on every ISA path this CPU supports, on random data of ragged lengths.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/activation.h"
#include "kernels/cpu/elementwise_cpu.h"
#include "kernels/norm.h"

namespace llmos::kernels::cpu {
namespace {

constexpr Isa kAllIsas[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx512};
constexpr int64_t kLengths[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 1024, 1031, 2816};

std::vector<float> random_values(int64_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) {
    x = normal(rng);
    if (x == 0.0f) x = 0.5f;
  }
  return v;
}

class ElementwiseTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) {
      GTEST_SKIP() << isa_name(GetParam()) << " is not supported by this CPU (or OS); its kernels are not run";
    }
  }
};

TEST_P(ElementwiseTest, RmsNormWithinAnUlpOfTheReference) {
  for (int64_t dim : kLengths) {
    for (float scale : {1e-3f, 1.0f, 40.0f}) {
      const auto x = random_values(dim, scale, static_cast<uint32_t>(dim * 7 + 1));
      const auto w = random_values(dim, 1.0f, static_cast<uint32_t>(dim * 7 + 2));
      std::vector<float> want(x.size()), got(x.size());
      RmsNormParams p;
      p.x = x.data();
      p.x_stride = dim;
      p.weight = w.data();
      p.y = want.data();
      p.y_stride = dim;
      p.rows = 1;
      p.dim = dim;
      p.eps = 1e-5f;
      ASSERT_EQ(rms_norm_ref(p, 0, 1), StatusCode::kOk);
      rms_norm_row_cpu(GetParam(), x.data(), w.data(), got.data(), dim, 1e-5f);
      for (int64_t i = 0; i < dim; ++i) {
        const float a = want[static_cast<size_t>(i)], b = got[static_cast<size_t>(i)];
        ASSERT_NEAR(b, a, 2.5e-7f * std::fabs(a)) << "dim " << dim << " scale " << scale << " at " << i;
      }
      // In place (y aliases x) gives the same.
      auto inplace = x;
      rms_norm_row_cpu(GetParam(), inplace.data(), w.data(), inplace.data(), dim, 1e-5f);
      ASSERT_EQ(inplace, got) << "dim " << dim;
    }
  }
}

TEST_P(ElementwiseTest, SwigluWithinAFewUlpsOfTheReference) {
  for (int64_t n : kLengths) {
    // Scale 30 reaches the ends of exp's range (|g| up to ~150).
    for (float scale : {0.5f, 3.0f, 30.0f}) {
      const auto gate = random_values(n, scale, static_cast<uint32_t>(n * 11 + 3));
      const auto up = random_values(n, 2.0f, static_cast<uint32_t>(n * 11 + 4));
      std::vector<float> want(gate.size()), got(gate.size());
      ASSERT_EQ(swiglu_ref(gate.data(), up.data(), want.data(), 0, n), StatusCode::kOk);
      swiglu_cpu(GetParam(), gate.data(), up.data(), got.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const float a = want[static_cast<size_t>(i)], b = got[static_cast<size_t>(i)];
        ASSERT_NEAR(b, a, 6e-7f * std::fabs(a) + 1e-30f)
            << "n " << n << " gate " << gate[static_cast<size_t>(i)] << " at " << i;
      }
      auto inplace = gate;  // out aliases gate, as the backend calls it
      swiglu_cpu(GetParam(), inplace.data(), up.data(), inplace.data(), n);
      ASSERT_EQ(inplace, got) << "n " << n;
    }
  }
}

TEST_P(ElementwiseTest, SwigluAtTheEndsOfExpsRange) {
  const std::vector<float> gate{-1000.0f, -120.0f, -89.0f, -87.0f, -20.0f, -1e-20f, 1e-20f,
                                20.0f,    87.0f,   89.0f,  120.0f, 1000.0f};
  const std::vector<float> up(gate.size(), 1.5f);
  std::vector<float> want(gate.size()), got(gate.size());
  ASSERT_EQ(swiglu_ref(gate.data(), up.data(), want.data(), 0, static_cast<int64_t>(gate.size())),
            StatusCode::kOk);
  swiglu_cpu(GetParam(), gate.data(), up.data(), got.data(), static_cast<int64_t>(gate.size()));
  for (size_t i = 0; i < gate.size(); ++i) {
    EXPECT_TRUE(std::isfinite(got[i])) << "gate " << gate[i];
    EXPECT_NEAR(got[i], want[i], 6e-7f * std::fabs(want[i]) + 1e-30f) << "gate " << gate[i];
  }
}

TEST_P(ElementwiseTest, AddIsExact) {
  for (int64_t n : kLengths) {
    auto y = random_values(n, 1.0f, static_cast<uint32_t>(n + 5));
    const auto x = random_values(n, 1.0f, static_cast<uint32_t>(n + 6));
    auto want = y;
    ASSERT_EQ(add_inplace_ref(want.data(), x.data(), 0, n), StatusCode::kOk);
    add_cpu(GetParam(), y.data(), x.data(), n);
    ASSERT_EQ(y, want) << "n " << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, ElementwiseTest, ::testing::ValuesIn(kAllIsas),
                         [](const auto& param_info) { return std::string(isa_name(param_info.param)); });

}  // namespace
}  // namespace llmos::kernels::cpu
