// K-quant x q8_K matmul: every ISA path this CPU runs against the scalar reference
// (kernels/ref/matmul_q8k_ref.cc), bit for bit; the reference against the f64 dequantizing
// matmul_ref within the error int8 activations allow; batch invariance over m, row sets and
// column splits; the q8_K activation rounding against GGUF's rule; argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/matmul_kquant.h"
#include "kernels/matmul.h"
#include "kernels/matmul_q8k.h"
#include "quant/quant.h"

namespace llmos::kernels::cpu {
namespace {

const DType kDtypes[] = {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
const Isa kIsas[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx512};

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

// GGUF rows for an n x k weight. Raw mode fills every block with random bytes (all code and
// scale patterns, including the extreme ones) and a random sane f16 d / dmin; otherwise it
// quantizes random floats with the reference quantizer (realistic weights).
std::vector<uint8_t> random_weight(DType dtype, int64_t n, int64_t k, uint32_t seed, bool raw) {
  const int64_t row_bytes = dtype_row_bytes(dtype, k);
  std::vector<uint8_t> w(static_cast<size_t>(n * row_bytes));
  std::mt19937 rng(seed);
  if (!raw) {
    for (int64_t r = 0; r < n; ++r) {
      // Rows of different magnitude, so blocks get different d.
      auto row = random_floats(static_cast<size_t>(k), seed * 7919u + static_cast<uint32_t>(r),
                               0.02f * static_cast<float>(1 + r % 5));
      quantize_row(dtype, row.data(), w.data() + r * row_bytes, k);
    }
    return w;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.0005f, 0.02f);
  for (auto& b : w) b = static_cast<uint8_t>(byte(rng));
  const int64_t bb = dtype_block_bytes(dtype);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t b = 0; b < k / 256; ++b) {
      uint8_t* blk = w.data() + r * row_bytes + b * bb;
      const uint16_t d = f32_to_f16(scale(rng)), dmin = f32_to_f16(scale(rng));
      if (dtype == DType::kQ6_K) {
        std::memcpy(blk + 208, &d, 2);  // Q6_K: d is the last field
      } else {
        std::memcpy(blk, &d, 2);
        std::memcpy(blk + 2, &dmin, 2);
      }
    }
  }
  return w;
}

struct Problem {
  DType dtype;
  int64_t m, n, k;
  std::vector<uint8_t> w;  // GGUF rows
  int64_t row_bytes;
  std::vector<float> x, bias;
  int64_t x_stride;
};

Problem make_problem(DType dtype, int64_t m, int64_t n, int64_t k, uint32_t seed, bool raw) {
  Problem p{dtype, m, n, k, random_weight(dtype, n, k, seed, raw), dtype_row_bytes(dtype, k), {}, {}, k + 3};
  p.x = random_floats(static_cast<size_t>(m * p.x_stride), seed + 1);
  // Rows of different scale; make a few entries outliers so blocks have different d.
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t t = 0; t < k; ++t) p.x[i * p.x_stride + t] *= 0.5f + static_cast<float>(i % 4);
    p.x[i * p.x_stride + (i * 37) % k] *= -6.0f;
  }
  p.bias = random_floats(static_cast<size_t>(n), seed + 2);
  return p;
}

// Reference output (matmul_q8k_ref on reference-quantized activations).
std::vector<float> reference(const Problem& p, bool with_bias) {
  std::vector<Q8KBlock> act(static_cast<size_t>(p.m * (p.k / 256)));
  for (int64_t i = 0; i < p.m; ++i)
    quantize_row_q8k_ref(p.x.data() + i * p.x_stride, p.k, act.data() + i * (p.k / 256));
  std::vector<float> y(static_cast<size_t>(p.m * p.n), NAN);
  EXPECT_EQ(matmul_q8k_ref(p.dtype, p.w.data(), p.row_bytes, p.k, with_bias ? p.bias.data() : nullptr,
                           act.data(), p.m, y.data(), p.n, 0, p.n),
            StatusCode::kOk);
  return y;
}

std::vector<uint8_t> quantize(Isa isa, const Problem& p) {
  std::vector<uint8_t> act(kquant_activation_bytes(p.m, p.k));
  // Two calls over row ranges, as phase 1 split over threads would.
  const int64_t half = p.m / 2;
  EXPECT_EQ(kquant_quantize_activations(isa, p.x.data(), p.x_stride, 0, half, p.k, act.data()), StatusCode::kOk);
  EXPECT_EQ(kquant_quantize_activations(isa, p.x.data(), p.x_stride, half, p.m, p.k, act.data()), StatusCode::kOk);
  return act;
}

std::vector<uint8_t> pack(const Problem& p) {
  std::vector<uint8_t> packed(kquant_packed_bytes(p.dtype, p.n, p.k));
  const int64_t panels = kquant_panel_count(p.n);
  EXPECT_EQ(kquant_pack(p.dtype, p.w.data(), p.row_bytes, p.n, p.k, packed.data(), 0, panels / 2), StatusCode::kOk);
  EXPECT_EQ(kquant_pack(p.dtype, p.w.data(), p.row_bytes, p.n, p.k, packed.data(), panels / 2, panels), StatusCode::kOk);
  return packed;
}

// Fast output over column ranges `splits` (boundaries), packed or straight from GGUF rows.
std::vector<float> fast(Isa isa, const Problem& p, const std::vector<uint8_t>& act, const std::vector<uint8_t>& packed,
                        bool use_packed, bool with_bias, const std::vector<int64_t>& splits) {
  std::vector<float> y(static_cast<size_t>(p.m * p.n), NAN);
  const float* bias = with_bias ? p.bias.data() : nullptr;
  for (size_t s = 0; s + 1 < splits.size(); ++s) {
    const StatusCode st =
        use_packed ? kquant_matmul_packed_columns(isa, p.dtype, packed.data(), p.n, p.k, bias, act.data(), p.m,
                                                  y.data(), p.n, splits[s], splits[s + 1])
                   : kquant_matmul_columns(isa, p.dtype, p.w.data(), p.row_bytes, p.k, bias, act.data(), p.m,
                                           y.data(), p.n, splits[s], splits[s + 1]);
    EXPECT_EQ(st, StatusCode::kOk);
  }
  return y;
}

void expect_bits_equal(const std::vector<float>& want, const std::vector<float>& got, const std::string& what) {
  ASSERT_EQ(want.size(), got.size());
  int64_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (f32_to_bits(want[i]) != f32_to_bits(got[i]) && bad++ < 5)
      ADD_FAILURE() << what << ": element " << i << " want " << want[i] << " got " << got[i];
  }
  EXPECT_EQ(bad, 0) << what;
}

std::string label(Isa isa, DType dtype, int64_t m, int64_t n, int64_t k) {
  return std::string(isa_name(isa)) + " " + std::string(dtype_name(dtype)) + " m=" + std::to_string(m) +
         " n=" + std::to_string(n) + " k=" + std::to_string(k);
}

class KquantIsaTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!kquant_isa_usable(GetParam()))
      GTEST_SKIP() << "this CPU cannot run the " << isa_name(GetParam()) << " kquant kernels";
  }
};

TEST_P(KquantIsaTest, ActivationsRoundLikeGgufQ8K) {
  const Isa isa = GetParam();
  for (int64_t k : {256, 768, 2048}) {
    Problem p = make_problem(DType::kQ4_K, 6, 1, k, static_cast<uint32_t>(k), true);
    // Row 1: the largest magnitude occurs twice with opposite signs (the first one wins).
    p.x[1 * p.x_stride + 5] = -9.0f;
    p.x[1 * p.x_stride + 200] = 9.0f;
    // Row 2: one all-zero block; row 3: a positive maximum; row 4: values on rounding ties.
    for (int t = 0; t < 256; ++t) p.x[2 * p.x_stride + t] = 0.0f;
    p.x[3 * p.x_stride + 17] = 40.0f;
    for (int t = 0; t < 256; ++t) p.x[4 * p.x_stride + t] = static_cast<float>((t % 9) - 4) * 0.5f;
    p.x[4 * p.x_stride + 0] = -127.0f;  // scale 1: x.5 values land exactly on ties
    const auto act = quantize(isa, p);
    for (int64_t i = 0; i < p.m; ++i) {
      std::vector<Q8KBlock> want(static_cast<size_t>(k / 256));
      quantize_row_q8k_ref(p.x.data() + i * p.x_stride, k, want.data());
      for (int64_t b = 0; b < k / 256; ++b) {
        Q8KBlock got;
        kquant_read_activation_block(act.data(), k, i, b, &got);
        const Q8KBlock& w = want[static_cast<size_t>(b)];
        ASSERT_EQ(f32_to_bits(got.d), f32_to_bits(w.d)) << isa_name(isa) << " row " << i << " block " << b;
        ASSERT_EQ(std::memcmp(got.qs, w.qs, 256), 0) << isa_name(isa) << " row " << i << " block " << b;
        ASSERT_EQ(std::memcmp(got.bsums, w.bsums, sizeof(w.bsums)), 0) << isa_name(isa) << " row " << i;
      }
    }
  }
  // The GGUF rule by hand: max = -2 gives iscale = -127 / max = 63.5 and d = 1 / 63.5.
  std::vector<float> x(256, 0.0f);
  x[0] = -2.0f;        // -> -127
  x[1] = 1.0f;         // 63.5 is a tie -> even: 64
  x[2] = 0.0236220f;   // 1.49999... -> 1
  x[3] = -0.0078740f;  // -0.49999... -> 0
  std::vector<uint8_t> act(kquant_activation_bytes(1, 256));
  ASSERT_EQ(kquant_quantize_activations(isa, x.data(), 256, 0, 1, 256, act.data()), StatusCode::kOk);
  Q8KBlock got;
  kquant_read_activation_block(act.data(), 256, 0, 0, &got);
  EXPECT_EQ(got.qs[0], -127);
  EXPECT_EQ(got.qs[1], 64);
  EXPECT_EQ(got.qs[2], 1);
  EXPECT_EQ(got.qs[3], 0);
  EXPECT_EQ(got.bsums[0], -127 + 64 + 1);
  EXPECT_EQ(got.d, 1.0f / 63.5f);
}

TEST_P(KquantIsaTest, BitExactWithReferenceOnRaggedShapes) {
  const Isa isa = GetParam();
  uint32_t seed = 10;
  for (DType dtype : kDtypes) {
    for (int64_t k : {256, 768}) {
      for (int64_t m : {1, 2, 3, 7, 17, 64}) {
        const int64_t n = m == 64 ? 37 : (m % 2 ? 67 : 16);
        const bool raw = (seed % 2) == 0;
        const Problem p = make_problem(dtype, m, n, k, ++seed, raw);
        const bool with_bias = m % 3 != 0;
        const auto want = reference(p, with_bias);
        const auto act = quantize(isa, p);
        const auto packed = pack(p);
        const std::string what = label(isa, dtype, m, n, k);
        expect_bits_equal(want, fast(isa, p, act, packed, true, with_bias, {0, n}), what + " packed");
        expect_bits_equal(want, fast(isa, p, act, packed, false, with_bias, {0, n}), what + " gguf rows");
      }
    }
  }
}

// k of 10 blocks goes through the GGUF-row path in two chunks (8 + 2 blocks) with the running
// sums parked in y, and with more than two row tiles (m = 19) the AVX-512 kernel also decodes
// the blocks 8 at a time and carries the sums through y; both must still match the one-pass
// packed path and the reference.
TEST_P(KquantIsaTest, LongRowsChunkedThroughYMatch) {
  const Isa isa = GetParam();
  for (DType dtype : kDtypes) {
    for (int64_t m : {5, 19}) {
      const Problem p = make_problem(dtype, m, 21, 2560, 77, true);
      const auto want = reference(p, true);
      const auto act = quantize(isa, p);
      const auto packed = pack(p);
      const std::string what = label(isa, dtype, p.m, p.n, p.k);
      expect_bits_equal(want, fast(isa, p, act, packed, true, true, {0, p.n}), what + " packed");
      expect_bits_equal(want, fast(isa, p, act, packed, false, true, {0, 3, 21}), what + " gguf rows");
    }
  }
}

// Largest codes, largest scales and full-scale activations of one sign: the int16 partial sums
// of the AVX2 path and the int32 block sums sit at their bounds.
TEST_P(KquantIsaTest, ExtremeCodesAndScalesStayExact) {
  const Isa isa = GetParam();
  for (DType dtype : kDtypes) {
    for (int variant = 0; variant < 2; ++variant) {
      Problem p = make_problem(dtype, 3, 19, 512, 5, true);
      for (int64_t r = 0; r < p.n; ++r) {
        for (int64_t b = 0; b < 2; ++b) {
          uint8_t* blk = p.w.data() + r * p.row_bytes + b * dtype_block_bytes(dtype);
          if (dtype == DType::kQ6_K) {
            std::memset(blk, 0xFF, 192);              // ql, qh: code 63
            std::memset(blk + 192, r % 2 ? 0x80 : 0x7F, 16);  // scales -128 or 127
          } else {
            std::memset(blk + 4, 0xFF, dtype_block_bytes(dtype) - 4);  // scales, mins 63; codes max
          }
        }
      }
      // Variant 0: every activation code -127; variant 1: +127 (the block's first element, of the
      // other sign, is the max and takes -127).
      for (int64_t i = 0; i < p.m; ++i) {
        for (int64_t t = 0; t < p.k; ++t) p.x[i * p.x_stride + t] = (variant == 1 && t % 256 == 0) ? -3.0f : 3.0f;
      }
      const auto want = reference(p, false);
      const auto act = quantize(isa, p);
      const auto packed = pack(p);
      const std::string what = label(isa, dtype, p.m, p.n, p.k) + " extreme";
      expect_bits_equal(want, fast(isa, p, act, packed, true, false, {0, p.n}), what);
      expect_bits_equal(want, fast(isa, p, act, packed, false, false, {0, p.n}), what + " gguf rows");
    }
  }
}

TEST_P(KquantIsaTest, BatchInvariantOverRowsAndColumnSplits) {
  const Isa isa = GetParam();
  for (DType dtype : kDtypes) {
    const Problem big = make_problem(dtype, 17, 53, 768, 99, false);
    const auto act = quantize(isa, big);
    const auto packed = pack(big);
    const auto full = fast(isa, big, act, packed, true, true, {0, big.n});
    // Other column splits, including ones that cut panels, give the same bits.
    for (const std::vector<int64_t>& splits :
         std::vector<std::vector<int64_t>>{{0, 1, 2, 53}, {0, 16, 32, 48, 53}, {0, 5, 37, 53}, {0, 52, 53}}) {
      expect_bits_equal(full, fast(isa, big, act, packed, true, true, splits), label(isa, dtype, 17, 53, 768) + " split");
    }
    // Each row alone (m = 1, the GEMV path) and inside another batch gives the same bits.
    const int64_t row_bytes = kquant_activation_row_bytes(big.k);
    for (int64_t i : {0, 5, 16}) {
      std::vector<float> y1(static_cast<size_t>(big.n));
      ASSERT_EQ(kquant_matmul_packed_columns(isa, dtype, packed.data(), big.n, big.k, big.bias.data(),
                                             act.data() + i * row_bytes, 1, y1.data(), big.n, 0, big.n),
                StatusCode::kOk);
      const std::vector<float> want(full.begin() + i * big.n, full.begin() + (i + 1) * big.n);
      expect_bits_equal(want, y1, label(isa, dtype, 1, big.n, big.k) + " row " + std::to_string(i) + " alone");
    }
    // Rows 3..9 as their own batch of 7 (different row tiling), written with a wider y stride.
    const int64_t stride = big.n + 11;
    std::vector<float> y7(static_cast<size_t>(7 * stride));
    ASSERT_EQ(kquant_matmul_packed_columns(isa, dtype, packed.data(), big.n, big.k, big.bias.data(),
                                           act.data() + 3 * row_bytes, 7, y7.data(), stride, 0, big.n),
              StatusCode::kOk);
    for (int64_t i = 0; i < 7; ++i) {
      for (int64_t j = 0; j < big.n; ++j)
        ASSERT_EQ(f32_to_bits(y7[i * stride + j]), f32_to_bits(full[(i + 3) * big.n + j])) << "row " << i + 3;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, KquantIsaTest, ::testing::ValuesIn(kIsas),
                         [](const ::testing::TestParamInfo<Isa>& param_info) { return std::string(isa_name(param_info.param)); });

// The reference against f64 dequantize-and-dot: the only difference is int8 rounding of the
// activations, at most d_a / 2 per element, so |y - y64| <= sum_t |w_t| d_a(t) / 2 (+ f32 slack).
TEST(KquantReference, CloseToDequantizedF64Matmul) {
  for (DType dtype : kDtypes) {
    const Problem p = make_problem(dtype, 7, 29, 768, 3, false);
    const auto y = reference(p, true);
    MatmulParams mp;
    mp.weight = p.w.data();
    mp.weight_dtype = dtype;
    mp.weight_row_bytes = p.row_bytes;
    mp.bias = p.bias.data();
    mp.x = p.x.data();
    mp.x_stride = p.x_stride;
    std::vector<float> y64(static_cast<size_t>(p.m * p.n));
    mp.y = y64.data();
    mp.y_stride = p.n;
    mp.m = p.m;
    mp.n = p.n;
    mp.k = p.k;
    std::vector<float> scratch(static_cast<size_t>(p.k));
    ASSERT_EQ(matmul_ref(mp, 0, p.n, scratch.data()), StatusCode::kOk);
    std::vector<float> wrow(static_cast<size_t>(p.k));
    double worst = 0.0;
    for (int64_t j = 0; j < p.n; ++j) {
      dequantize_row(dtype, p.w.data() + j * p.row_bytes, wrow.data(), p.k);
      for (int64_t i = 0; i < p.m; ++i) {
        const float* xi = p.x.data() + i * p.x_stride;
        // slack: f32 rounding, including the dequantizer's own (d * sc) * q - dmin * mn steps.
        double bound = 0.0, slack = 1e-6;
        for (int64_t b = 0; b < p.k / 256; ++b) {
          float amax = 0.0f, wmax = 0.0f;
          for (int t = 0; t < 256; ++t) {
            amax = std::max(amax, std::fabs(xi[256 * b + t]));
            wmax = std::max(wmax, std::fabs(wrow[256 * b + t]));
          }
          for (int t = 0; t < 256; ++t) {
            bound += std::fabs(wrow[256 * b + t]) * amax / 127.0 / 2.0;
            slack += 1e-6 * wmax * std::fabs(xi[256 * b + t]);
          }
        }
        const double err = std::fabs(static_cast<double>(y[i * p.n + j]) - y64[i * p.n + j]);
        EXPECT_LE(err, bound * 1.001 + slack) << dtype_name(dtype) << " i=" << i << " j=" << j;
        worst = std::max(worst, err / (bound + 1e-30));
      }
    }
    // The bound is not vacuous: typical errors use a visible part of it.
    EXPECT_GT(worst, 0.01) << dtype_name(dtype);
  }
}

TEST(KquantArguments, RejectsBadShapesDtypesAndPointers) {
  const Problem p = make_problem(DType::kQ4_K, 2, 20, 256, 1, true);
  const auto act = quantize(Isa::kScalar, p);
  const auto packed = pack(p);
  std::vector<float> y(static_cast<size_t>(2 * p.n));
  EXPECT_EQ(kquant_activation_row_bytes(300), 0);
  EXPECT_EQ(kquant_activation_bytes(2, 0), 0u);
  EXPECT_EQ(kquant_packed_bytes(DType::kQ4_0, 16, 256), 0u);
  EXPECT_EQ(kquant_packed_bytes(DType::kQ4_K, 17, 512), 2u * 2u * 2368u);
  EXPECT_FALSE(kquant_weight_supported(DType::kQ8_0));
  EXPECT_EQ(kquant_quantize_activations(Isa::kScalar, p.x.data(), p.x_stride, 0, 1, 300, nullptr),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(kquant_quantize_activations(Isa::kScalar, nullptr, p.x_stride, 0, 1, 256, nullptr),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(kquant_quantize_activations(Isa::kScalar, p.x.data(), p.x_stride, 2, 1, 256, nullptr),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(kquant_pack(DType::kQ8_0, p.w.data(), p.row_bytes, p.n, p.k, nullptr, 0, 1), StatusCode::kUnsupported);
  EXPECT_EQ(kquant_pack(DType::kQ4_K, p.w.data(), p.row_bytes, p.n, p.k, nullptr, 0, 3), StatusCode::kInvalidArgument);
  EXPECT_EQ(kquant_pack(DType::kQ4_K, p.w.data(), p.row_bytes - 1, p.n, p.k, nullptr, 0, 1), StatusCode::kInvalidArgument);
  for (Isa isa : kIsas) {
    if (!kquant_isa_usable(isa)) continue;
    EXPECT_EQ(kquant_matmul_packed_columns(isa, DType::kQ4_0, packed.data(), p.n, p.k, nullptr, act.data(), 2, y.data(), p.n, 0, p.n),
              StatusCode::kUnsupported);
    EXPECT_EQ(kquant_matmul_packed_columns(isa, DType::kQ4_K, packed.data(), p.n, 300, nullptr, act.data(), 2, y.data(), p.n, 0, p.n),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(kquant_matmul_packed_columns(isa, DType::kQ4_K, packed.data(), p.n, p.k, nullptr, act.data(), 2, y.data(), p.n, 0, p.n + 1),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(kquant_matmul_packed_columns(isa, DType::kQ4_K, packed.data(), p.n, p.k, nullptr, act.data(), 2, y.data(), p.n, 5, 4),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(kquant_matmul_packed_columns(isa, DType::kQ4_K, packed.data(), p.n, p.k, nullptr, nullptr, 2, y.data(), p.n, 0, p.n),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(kquant_matmul_packed_columns(isa, DType::kQ4_K, packed.data(), p.n, p.k, nullptr, act.data(), 2, y.data(), p.n - 1, 0, p.n),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(kquant_matmul_columns(isa, DType::kQ4_K, p.w.data(), p.row_bytes - 1, p.k, nullptr, act.data(), 2, y.data(), p.n, 0, p.n),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(kquant_matmul_packed_columns(isa, DType::kQ4_K, packed.data(), p.n, p.k, nullptr, act.data() + 1, 2, y.data(), p.n, 0, p.n),
              StatusCode::kInvalidArgument);  // misaligned activations
    EXPECT_EQ(kquant_quantize_activations(isa, p.x.data(), p.x_stride, 0, 1, p.k, reinterpret_cast<uint8_t*>(y.data()) + 2),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(kquant_matmul_columns(isa, DType::kQ4_K, nullptr, p.row_bytes, p.k, nullptr, act.data(), 2, y.data(), p.n, 0, p.n),
              StatusCode::kInvalidArgument);
    // Empty ranges are fine and write nothing.
    y.assign(y.size(), 7.0f);
    EXPECT_EQ(kquant_matmul_packed_columns(isa, DType::kQ4_K, packed.data(), p.n, p.k, nullptr, act.data(), 2, y.data(), p.n, 4, 4),
              StatusCode::kOk);
    EXPECT_EQ(kquant_matmul_packed_columns(isa, DType::kQ4_K, packed.data(), p.n, p.k, nullptr, act.data(), 0, y.data(), p.n, 0, p.n),
              StatusCode::kOk);
    for (float v : y) ASSERT_EQ(v, 7.0f);
  }
  EXPECT_EQ(matmul_q8k_ref(DType::kQ8_0, p.w.data(), p.row_bytes, p.k, nullptr, nullptr, 1, y.data(), p.n, 0, 1),
            StatusCode::kUnsupported);
}

}  // namespace
}  // namespace llmos::kernels::cpu
