// Test activations whose quantization blocks differ wildly in magnitude, for the kernels that
// quantize activations per block (q8 and q8_K math, on the CPU and on CUDA).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace llmos::test {

// `rows` rows of k values, x_stride floats apart (the padding between rows is NaN, which a
// kernel must never read). Each `block` consecutive values of a row are normal(0, 1) times
// 10^(e / exponent_divisor), e drawn uniformly from [exponent_min, exponent_max] once per block.
inline std::vector<float> blockwise_activations(int64_t rows, int64_t k, int64_t x_stride,
                                                int block, int exponent_min, int exponent_max,
                                                float exponent_divisor, std::mt19937& rng) {
  std::vector<float> x(static_cast<size_t>(rows * x_stride),
                       std::numeric_limits<float>::quiet_NaN());
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(exponent_min, exponent_max);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t b = 0; b < k / block; ++b) {
      const float scale =
          std::pow(10.0f, static_cast<float>(exponent(rng)) / exponent_divisor);
      for (int t = 0; t < block; ++t)
        x[static_cast<size_t>(i * x_stride + b * block + t)] = normal(rng) * scale;
    }
  }
  return x;
}

}  // namespace llmos::test
