// Properties of quantize_row -> dequantize_row on random data (error bounds per format, zeros,
// exact cases) and the argument checks of quant.h.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/quant.h"

namespace llmos {
namespace {

constexpr DType kBlockTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                                 DType::kQ8_0, DType::kQ2_K, DType::kQ3_K, DType::kQ4_K,
                                 DType::kQ5_K, DType::kQ6_K};

// Standard normal samples from a fixed seed (Box-Muller on mt19937, whose output is specified by
// the standard, so the data are the same with every standard library).
std::vector<float> gaussian(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  auto unit = [&rng] { return (static_cast<double>(rng()) + 0.5) / 4294967296.0; };
  std::vector<float> out(n);
  for (size_t i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(unit()));
    const double t = 6.283185307179586 * unit();
    out[i] = static_cast<float>(r * std::cos(t));
    if (i + 1 < n) out[i + 1] = static_cast<float>(r * std::sin(t));
  }
  return out;
}

std::vector<float> round_trip(DType dtype, const std::vector<float>& x) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(static_cast<size_t>(dtype_row_bytes(dtype, n)));
  quantize_row(dtype, x.data(), q.data(), n);
  std::vector<float> y(x.size());
  dequantize_row(dtype, q.data(), y.data(), n);
  return y;
}

// RMS(y - x) / RMS(x).
double relative_rms_error(const std::vector<float>& x, const std::vector<float>& y) {
  double err = 0.0;
  double ref = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(y[i]) - static_cast<double>(x[i]);
    err += d * d;
    ref += static_cast<double>(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

struct ErrorBound {
  DType dtype;
  double max_relative_rms;  // a little above what the reference algorithm measures
};

// Measured on 64 super-blocks of N(0, 1) data (seed 7; each run prints its numbers), output
// bit-identical to the GGUF reference quantizers: q8_0 0.533%, q6_K 1.772%, q5_0 4.266%,
// q5_1 3.799%, q5_K 3.617%, q4_0 8.619%, q4_1 7.808%, q4_K 7.141%, q3_K 15.087%,
// q2_K 29.753%, f16 0.0207%, bf16 0.1666%. Bounds are ~10% above.
constexpr ErrorBound kBounds[] = {
    {DType::kQ8_0, 0.0059}, {DType::kQ6_K, 0.0195}, {DType::kQ5_0, 0.047},
    {DType::kQ5_1, 0.042},  {DType::kQ5_K, 0.040},  {DType::kQ4_0, 0.095},
    {DType::kQ4_1, 0.086},  {DType::kQ4_K, 0.079},  {DType::kQ3_K, 0.166},
    {DType::kQ2_K, 0.33},   {DType::kF16, 0.00023}, {DType::kBF16, 0.0019},
};

TEST(QuantRoundTrip, RelativeRmsErrorWithinBounds) {
  const std::vector<float> x = gaussian(64 * 256, 7);
  for (const auto& bound : kBounds) {
    const double err = relative_rms_error(x, round_trip(bound.dtype, x));
    std::printf("[ measured ] %-5s relative RMS error %.4f%%\n",
                std::string(dtype_name(bound.dtype)).c_str(), 100.0 * err);
    EXPECT_LT(err, bound.max_relative_rms) << dtype_name(bound.dtype);
    // Far below the bound would mean the data or the measure broke, not a better quantizer.
    EXPECT_GT(err, bound.max_relative_rms / 20) << dtype_name(bound.dtype);
  }
}

TEST(QuantRoundTrip, PowerOfTwoScalingCommutesExactly) {
  // Multiplying the input by 2^k scales every step of the reference algorithms exactly (as long
  // as the f16 scale fields stay normal), so the decoded output must scale by exactly 2^k too.
  // A quantizer that mixed in an absolute constant or lost precision would break this.
  const std::vector<float> x = gaussian(16 * 256, 11);
  for (DType dtype : kBlockTypes) {
    const std::vector<float> y = round_trip(dtype, x);
    for (float s : {0.25f, 4.0f, 64.0f}) {
      std::vector<float> xs(x);
      for (float& v : xs) v *= s;
      const std::vector<float> ys = round_trip(dtype, xs);
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_EQ(ys[i], y[i] * s) << dtype_name(dtype) << " scale " << s << " element " << i;
      }
    }
  }
}

TEST(QuantRoundTrip, ZerosStayZero) {
  for (DType dtype : kBlockTypes) {
    const std::vector<float> zeros(512, 0.0f);
    for (float v : round_trip(dtype, zeros)) {
      ASSERT_EQ(v, 0.0f) << dtype_name(dtype);
    }
  }
}

TEST(QuantRoundTrip, PartlyZeroSuperBlocksKeepZeroGroupsExact) {
  // A K super-block whose first groups are all zero: those must decode to exactly zero while the
  // rest keeps the format's usual accuracy.
  std::vector<float> x = gaussian(256, 3);
  std::fill(x.begin(), x.begin() + 64, 0.0f);
  for (DType dtype : kBlockTypes) {
    const std::vector<float> y = round_trip(dtype, x);
    for (int i = 0; i < 64; ++i) ASSERT_EQ(y[i], 0.0f) << dtype_name(dtype) << " element " << i;
  }
}

TEST(QuantRoundTrip, SymmetricFormatsHitTheLargestValueExactly) {
  // Q4_0 and Q5_0 map the value of largest magnitude onto their most negative code; with a
  // power-of-two maximum d is exact in f16, so that value and every multiple of d come back
  // exactly.
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>((i % 7) - 3) * 0.5f;
  x[5] = -4.0f;
  for (DType dtype : {DType::kQ4_0, DType::kQ5_0}) {
    EXPECT_EQ(round_trip(dtype, x), x) << dtype_name(dtype);
  }
  // Q8_0's d = 4 / 127 is rounded to f16, so only half a step of error is promised.
  const std::vector<float> y = round_trip(DType::kQ8_0, x);
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(y[i], x[i], 4.0f / 127 / 2 * 1.01f) << i;
}

TEST(QuantRoundTrip, PlainTypesConvertEachValue) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {1.0f, -2.5f, 65504.0f, 1e-8f, inf};
  EXPECT_EQ(round_trip(DType::kF32, x), x);
  const std::vector<float> h = round_trip(DType::kF16, x);
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.5f);
  EXPECT_EQ(h[2], 65504.0f);
  EXPECT_EQ(h[3], 0.0f);  // below half the smallest f16 subnormal
  EXPECT_TRUE(std::isinf(h[4]));
  const std::vector<float> b = round_trip(DType::kBF16, x);
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -2.5f);
  EXPECT_EQ(b[2], 65536.0f);  // 8 significant bits
  EXPECT_TRUE(std::isinf(b[4]));
}

// ---- argument checks ----

StatusCode code_of(const std::function<void()>& fn, std::string* message = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (message) *message = e.message();
    return e.code();
  }
  return StatusCode::kOk;
}

TEST(QuantArgs, PartialBlockIsInvalidArgument) {
  std::vector<float> x(300, 1.0f);
  std::vector<uint8_t> q(1024);
  std::string msg;
  EXPECT_EQ(code_of([&] { quantize_row(DType::kQ4_K, x.data(), q.data(), 300); }, &msg),
            StatusCode::kInvalidArgument);
  EXPECT_NE(msg.find("q4_K"), std::string::npos) << msg;
  EXPECT_NE(msg.find("300"), std::string::npos) << msg;
  EXPECT_NE(msg.find("256"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { dequantize_row(DType::kQ8_0, q.data(), x.data(), 33); }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { dequantize_row(DType::kQ4_0, q.data(), x.data(), -32); }),
            StatusCode::kInvalidArgument);
}

TEST(QuantArgs, IntegerAndUnknownDtypesAreUnsupported) {
  std::vector<float> x(32, 1.0f);
  std::vector<uint8_t> q(256);
  for (DType dtype : {DType::kI8, DType::kI16, DType::kI32}) {
    EXPECT_FALSE(can_quantize(dtype)) << dtype_name(dtype);
    EXPECT_EQ(code_of([&] { quantize_row(dtype, x.data(), q.data(), 32); }),
              StatusCode::kUnsupported);
    EXPECT_EQ(code_of([&] { dequantize_row(dtype, q.data(), x.data(), 32); }),
              StatusCode::kUnsupported);
  }
  const auto bogus = static_cast<DType>(99);
  EXPECT_FALSE(can_quantize(bogus));
  EXPECT_EQ(code_of([&] { dequantize_row(bogus, q.data(), x.data(), 32); }),
            StatusCode::kUnsupported);
}

TEST(QuantArgs, EveryFloatAndBlockTypeIsQuantizable) {
  for (DType dtype : kBlockTypes) EXPECT_TRUE(can_quantize(dtype)) << dtype_name(dtype);
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) EXPECT_TRUE(can_quantize(dtype));
}

TEST(QuantArgs, NullPointersOnlyForEmptyRows) {
  std::vector<float> x(32, 1.0f);
  EXPECT_EQ(code_of([&] { quantize_row(DType::kQ8_0, nullptr, nullptr, 0); }), StatusCode::kOk);
  EXPECT_EQ(code_of([&] { dequantize_row(DType::kQ8_0, nullptr, nullptr, 0); }), StatusCode::kOk);
  EXPECT_EQ(code_of([&] { dequantize_row(DType::kQ8_0, nullptr, x.data(), 32); }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { quantize_row(DType::kQ8_0, x.data(), nullptr, 32); }),
            StatusCode::kInvalidArgument);
}

TEST(QuantArgs, NonFiniteInputIsRejectedForBlockTypes) {
  std::vector<uint8_t> q(256);
  for (DType dtype : kBlockTypes) {
    for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                      std::numeric_limits<float>::infinity()}) {
      std::vector<float> x(256, 0.5f);
      x[77] = bad;
      std::string msg;
      EXPECT_EQ(code_of([&] { quantize_row(dtype, x.data(), q.data(), 256); }, &msg),
                StatusCode::kInvalidArgument)
          << dtype_name(dtype);
      EXPECT_NE(msg.find("src[77]"), std::string::npos) << msg;
    }
  }
}

TEST(QuantRoundTrip, ExtremeFiniteInputsDoNotMisbehave) {
  // Huge, tiny and subnormal magnitudes give degenerate scales (f16 overflow, or 1/d = inf);
  // the result may be poor but must come out without undefined behaviour (the sanitizer build
  // checks that) and must decode.
  const std::vector<float> base = gaussian(256, 5);
  std::vector<std::vector<float>> inputs;
  for (float extreme : {3e38f, -3e38f, 7e4f, 1e-40f, 1e-45f}) {
    inputs.push_back(base);
    inputs.back()[3] = extreme;
  }
  for (float tiny : {1e-38f, 1e-40f, 1e-45f}) {
    inputs.push_back(base);
    for (float& v : inputs.back()) v *= tiny;
  }
  inputs.emplace_back(256);
  for (size_t i = 0; i < 256; ++i) inputs.back()[i] = i % 2 ? 3e38f : -3e38f;  // range overflows
  for (DType dtype : kBlockTypes) {
    for (const auto& x : inputs) {
      std::vector<uint8_t> q(static_cast<size_t>(dtype_row_bytes(dtype, 256)));
      quantize_row(dtype, x.data(), q.data(), 256);
      std::vector<float> y(256);
      dequantize_row(dtype, q.data(), y.data(), 256);
    }
  }
}

}  // namespace
}  // namespace llmos
