// The per-block math of the CUDA q8 GEMV (kernels/cuda/q8_block_math.cuh) run on the CPU,
// against the q8 references of kernels/matmul_q8.h:
//  - activation blocks bit for bit as quantize_row_q8_act writes them (scale, codes, sum),
//    including zero, huge, tiny and non-finite inputs;
//  - dp4a against products of sign-extended bytes;
//  - Q4_0 / Q8_0 code words (nibble order, unsigned nibbles, 2-byte-aligned rows at both word
//    phases) against the block structs;
//  - whole rows: the blocks of every output combined in block order with these functions give
//    matmul_q8_ref's bits exactly (ragged n, several k, m up to 8, bias), so the kernel differs
//    from the reference only in the order in which it adds block terms.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/cuda/q8_block_math.cuh"
#include "kernels/matmul_q8.h"
#include "quant/block_formats.h"
#include "support/blockwise_activations.h"

namespace llmos::kernels::cuda {
namespace {

int8_t code_of(const Q8ActBlockCuda& a, int t) {
  return static_cast<int8_t>(static_cast<uint32_t>(a.qs[t / 4]) >> (8 * (t % 4)));
}

// Rows of activations whose blocks range over magnitudes 1e-10 .. 1e10.
std::vector<float> random_activations(int64_t rows, int64_t k, std::mt19937& rng) {
  return test::blockwise_activations(rows, k, k, kQ8Block, -30, 30, 3.0f, rng);
}

void expect_same_block(const Q8ActBlockCuda& got, const Q8ActBlock& want, const std::string& what) {
  ASSERT_EQ(f32_to_bits(got.d), f32_to_bits(want.d)) << what << ": d " << got.d << " vs " << want.d;
  ASSERT_EQ(got.sum, want.sum) << what;
  for (int t = 0; t < kQ8Block; ++t)
    ASSERT_EQ(code_of(got, t), want.qs[t]) << what << " code " << t;
}

TEST(Q8BlockMath, ActivationBlocksMatchTheCpuQuantizerBitForBit) {
  std::mt19937 rng(1);
  for (int64_t k : {32, 96, 1024, 4128}) {
    const std::vector<float> x = random_activations(1, k, rng);
    std::vector<Q8ActBlock> want(static_cast<size_t>(k / 32));
    quantize_row_q8_act(x.data(), k, want.data());
    for (int64_t b = 0; b < k / 32; ++b) {
      Q8ActBlockCuda got{};
      quantize_act_block(x.data() + b * 32, &got);
      expect_same_block(got, want[static_cast<size_t>(b)],
                        "k=" + std::to_string(k) + " block " + std::to_string(b));
    }
  }
}

TEST(Q8BlockMath, ActivationEdgeCasesMatchTheCpuQuantizer) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> blocks;
  blocks.emplace_back(32, 0.0f);  // d = 0: all codes 0
  blocks.emplace_back(32, -0.0f);
  std::vector<float> ties(32);  // d = 1 exactly, so every other x * (1 / d) is a .5 tie
  ties[0] = 127.0f;
  for (int t = 1; t < 32; ++t) ties[t] = static_cast<float>(t) - 16.5f;
  blocks.push_back(ties);
  for (float special : {inf, -inf, nan, 3e38f, 1e-40f, -1e-45f}) {
    std::vector<float> v(32);
    for (float& f : v) f = normal(rng);
    v[static_cast<size_t>(rng() % 32)] = special;
    blocks.push_back(v);
  }
  std::vector<float> all_nan(32, nan);
  blocks.push_back(all_nan);
  for (size_t i = 0; i < blocks.size(); ++i) {
    Q8ActBlock want;
    quantize_row_q8_act(blocks[i].data(), 32, &want);
    Q8ActBlockCuda got{};
    quantize_act_block(blocks[i].data(), &got);
    expect_same_block(got, want, "edge block " + std::to_string(i));
  }
}

TEST(Q8BlockMath, Dp4aSumsSignedByteProducts) {
  std::mt19937 rng(3);
  const std::vector<uint32_t> extremes{0x80808080u, 0x7f7f7f7fu, 0xffffffffu, 0x00000000u,
                                       0x807f01ffu};
  for (int i = 0; i < 20000; ++i) {
    const uint32_t a = i < 25 ? extremes[static_cast<size_t>(i / 5)] : static_cast<uint32_t>(rng());
    const uint32_t b = i < 25 ? extremes[static_cast<size_t>(i % 5)] : static_cast<uint32_t>(rng());
    const auto c = static_cast<int32_t>(rng() % 2000001) - 1000000;
    int8_t ab[4], bb[4];
    std::memcpy(ab, &a, 4);  // little-endian: byte 0 is the low byte
    std::memcpy(bb, &b, 4);
    int64_t want = c;
    for (int t = 0; t < 4; ++t) want += static_cast<int64_t>(ab[t]) * bb[t];
    ASSERT_EQ(dp4a(static_cast<int32_t>(a), static_cast<int32_t>(b), c), want)
        << std::hex << a << " " << b;
  }
}

// Random GGUF blocks: random code bytes (every nibble and every int8, -128 included) under
// random signed f16 scales.
std::vector<uint8_t> random_rows(DType dtype, int64_t n, int64_t k, int64_t offset,
                                 std::mt19937& rng) {
  const int64_t block_bytes = dtype == DType::kQ4_0 ? kQ4_0Bytes : kQ8_0Bytes;
  std::vector<uint8_t> buf(static_cast<size_t>(offset + n * (k / 32) * block_bytes));
  for (auto& byte : buf) byte = static_cast<uint8_t>(rng());
  std::normal_distribution<float> normal(0.0f, 0.05f);
  for (int64_t b = 0; b < n * (k / 32); ++b) {
    const uint16_t d = f32_to_f16(normal(rng));
    std::memcpy(buf.data() + offset + b * block_bytes, &d, 2);
  }
  return buf;
}

// Offsets 0 and 2 (mod 4) put the code bytes of even and odd blocks at both word phases.
TEST(Q8BlockMath, WeightCodeWordsFollowTheGgufLayout) {
  std::mt19937 rng(4);
  for (int64_t offset : {0, 2, 6}) {
    const int64_t nb = 37;
    const std::vector<uint8_t> q4 = random_rows(DType::kQ4_0, 1, nb * 32, offset, rng);
    const std::vector<uint8_t> q8 = random_rows(DType::kQ8_0, 1, nb * 32, offset, rng);
    for (int64_t b = 0; b < nb; ++b) {
      const std::string what = "offset " + std::to_string(offset) + " block " + std::to_string(b);
      int32_t w[kQ8Words];
      const auto b4 = quant::load_block<quant::BlockQ4_0>(q4.data() + offset, b);
      const float d4 = load_weight_block<DType::kQ4_0>(q4.data() + offset, b, w);
      ASSERT_EQ(f32_to_bits(d4), f32_to_bits(f16_to_f32(b4.d))) << what;
      for (int t = 0; t < 32; ++t) {
        const int want = t < 16 ? (b4.qs[t] & 0x0F) : (b4.qs[t - 16] >> 4);
        const int got = static_cast<int8_t>(static_cast<uint32_t>(w[t / 4]) >> (8 * (t % 4)));
        ASSERT_EQ(got, want) << what << " q4_0 element " << t;
      }
      const auto b8 = quant::load_block<quant::BlockQ8_0>(q8.data() + offset, b);
      const float d8 = load_weight_block<DType::kQ8_0>(q8.data() + offset, b, w);
      ASSERT_EQ(f32_to_bits(d8), f32_to_bits(f16_to_f32(b8.d))) << what;
      for (int t = 0; t < 32; ++t) {
        const int got = static_cast<int8_t>(static_cast<uint32_t>(w[t / 4]) >> (8 * (t % 4)));
        ASSERT_EQ(got, b8.qs[t]) << what << " q8_0 element " << t;
      }
    }
  }
}

// y[i, j] from the per-block functions, blocks combined in block order: the reference's order.
void block_math_matmul(DType dt, const uint8_t* w, int64_t row_bytes,
                       const std::vector<Q8ActBlockCuda>& act, const float* bias, int64_t m,
                       int64_t n, int64_t k, std::vector<float>& y) {
  const int64_t nb = k / 32;
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        int32_t words[kQ8Words];
        const Q8ActBlockCuda& a = act[static_cast<size_t>(i * nb + b)];
        int32_t isum;
        float dw;
        if (dt == DType::kQ4_0) {
          dw = load_weight_block<DType::kQ4_0>(w + j * row_bytes, b, words);
          isum = block_isum<DType::kQ4_0>(words, a.qs, a.sum);
        } else {
          dw = load_weight_block<DType::kQ8_0>(w + j * row_bytes, b, words);
          isum = block_isum<DType::kQ8_0>(words, a.qs, a.sum);
        }
        acc = accumulate_block(acc, dw, a.d, isum);
      }
      y[static_cast<size_t>(i * n + j)] = bias != nullptr ? acc + bias[j] : acc;
    }
  }
}

TEST(Q8BlockMath, WholeRowsMatchTheQ8ReferenceBitForBit) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (DType dt : {DType::kQ4_0, DType::kQ8_0}) {
    for (int64_t k : {32, 96, 1024, 4128}) {
      for (int64_t n : {1, 17, 31}) {
        for (int64_t m : {1, 3, 8}) {
          const std::string what = std::string(dtype_name(dt)) + " k=" + std::to_string(k) +
                                   " n=" + std::to_string(n) + " m=" + std::to_string(m);
          const int64_t offset = n % 2 == 0 ? 0 : 2;  // row bases at both word phases
          const std::vector<uint8_t> wbuf = random_rows(dt, n, k, offset, rng);
          const uint8_t* w = wbuf.data() + offset;
          const int64_t row_bytes = dtype_row_bytes(dt, k);
          const std::vector<float> x = random_activations(m, k, rng);
          std::vector<float> bias(static_cast<size_t>(n));
          for (float& v : bias) v = normal(rng);
          const int64_t nb = k / 32;
          std::vector<Q8ActBlock> cpu_act(static_cast<size_t>(m * nb));
          std::vector<Q8ActBlockCuda> act(static_cast<size_t>(m * nb));
          for (int64_t i = 0; i < m; ++i) {
            quantize_row_q8_act(x.data() + i * k, k, cpu_act.data() + i * nb);
            for (int64_t b = 0; b < nb; ++b)
              quantize_act_block(x.data() + i * k + b * 32, &act[static_cast<size_t>(i * nb + b)]);
          }
          for (const bool with_bias : {false, true}) {
            MatmulQ8Params p;
            p.weight = w;
            p.weight_dtype = dt;
            p.weight_row_bytes = row_bytes;
            p.bias = with_bias ? bias.data() : nullptr;
            p.act = cpu_act.data();
            std::vector<float> want(static_cast<size_t>(m * n), -1.0f);
            p.y = want.data();
            p.y_stride = n;
            p.m = m;
            p.n = n;
            p.k = k;
            ASSERT_EQ(matmul_q8_ref(p, 0, n), StatusCode::kOk) << what;
            std::vector<float> got(static_cast<size_t>(m * n), -2.0f);
            block_math_matmul(dt, w, row_bytes, act, p.bias, m, n, k, got);
            for (size_t e = 0; e < got.size(); ++e) {
              ASSERT_EQ(f32_to_bits(got[e]), f32_to_bits(want[e])) << what << " bias=" << with_bias << " at " << e
                                                     << ": " << got[e] << " vs " << want[e];
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace llmos::kernels::cuda
