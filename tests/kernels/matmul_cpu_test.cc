// The fast CPU matmul (kernels/cpu/matmul_cpu.h) on every ISA this machine has, against
//  - the exact references of its math (kernels/matmul_q8.h): bit for bit, ragged shapes;
//  - the f64 oracle kernels::matmul_ref: within bounds derived from int8 activation rounding
//    (Q4_0 / Q8_0) or fp32 sequential summation (F32 / F16 / BF16);
// and for batch invariance: a row's outputs are the same bits alone, inside any batch, and under
// any column split.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/matmul_cpu.h"
#include "kernels/cpu/matmul_cpu_internal.h"
#include "kernels/matmul.h"
#include "kernels/matmul_q8.h"
#include "quant/block_formats.h"
#include "quant/quant.h"

namespace llmos::kernels::cpu {
namespace {

using ColumnRanges = std::vector<std::pair<int64_t, int64_t>>;
constexpr float kSentinel = -12345.5f;

bool is_q8_math(DType dtype) { return dtype == DType::kQ4_0 || dtype == DType::kQ8_0; }

// Weight rows with random content. Q4_0 / Q8_0 codes are random bytes (every code, including
// Q8_0's -128, which no quantizer writes but a file may hold) under random signed scales; other
// quantized dtypes go through the reference quantizer; plain dtypes are rounded normals.
std::vector<uint8_t> random_weight(DType dtype, int64_t n, int64_t k, std::mt19937& rng) {
  const int64_t row_bytes = dtype_row_bytes(dtype, k);
  std::vector<uint8_t> w(static_cast<size_t>(n * row_bytes));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> mag(0.002f, 0.02f);
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t j = 0; j < n; ++j) {
    uint8_t* dst = w.data() + j * row_bytes;
    if (is_q8_math(dtype)) {
      const int64_t block_bytes = dtype_block_bytes(dtype);
      for (int64_t b = 0; b < k / quant::kQK; ++b) {
        uint8_t* blk = dst + b * block_bytes;
        const uint16_t d = f32_to_f16(byte(rng) < 128 ? mag(rng) : -mag(rng));
        std::memcpy(blk, &d, 2);
        for (int64_t t = 2; t < block_bytes; ++t) blk[t] = static_cast<uint8_t>(byte(rng));
      }
      continue;
    }
    for (auto& v : row) v = normal(rng) * 0.05f;
    if (dtype == DType::kF32) {
      std::memcpy(dst, row.data(), static_cast<size_t>(k) * 4);
    } else {
      quantize_row(dtype, row.data(), dst, k);
    }
  }
  return w;
}

// m rows of `stride` floats, never zero; rows differ in scale by up to 1000x.
std::vector<float> random_x(int64_t m, int64_t k, int64_t stride, std::mt19937& rng) {
  std::vector<float> x(static_cast<size_t>(m * stride), kSentinel);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < m; ++i) {
    const float scale = std::pow(10.0f, static_cast<float>(i % 4) - 1.5f);
    for (int64_t t = 0; t < k; ++t) {
      float v = normal(rng);
      if (v == 0.0f) v = 0.5f;
      x[static_cast<size_t>(i * stride + t)] = v * scale;
    }
  }
  return x;
}

struct Problem {
  DType dtype;
  int64_t m, n, k;
  int64_t x_stride, y_stride;
  std::vector<uint8_t> w;
  std::vector<float> x, bias;
  bool with_bias;
};

Problem make_problem(DType dtype, int64_t m, int64_t n, int64_t k, bool with_bias, uint32_t seed,
                     int64_t x_pad = 0, int64_t y_pad = 0) {
  std::mt19937 rng(seed);
  Problem p{dtype, m,  n,        k, k + x_pad, n + y_pad, random_weight(dtype, n, k, rng),
            {},    {}, with_bias};
  p.x = random_x(m, k, p.x_stride, rng);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  p.bias.resize(static_cast<size_t>(n));
  for (auto& b : p.bias) b = normal(rng);
  return p;
}

// The fast path: phase 1 over rows [0, m) in two chunks, phase 2 over `ranges`.
std::vector<float> run_fast(const PackedWeight& pw, const Problem& p, const float* x, int64_t m,
                            const ColumnRanges& ranges) {
  std::vector<float> y(static_cast<size_t>(m * p.y_stride), kSentinel);
  std::vector<uint8_t> act(activation_bytes(pw, m) + 1);
  const int64_t half = m / 2;
  EXPECT_EQ(quantize_activations(pw, x, p.x_stride, 0, half, act.data()), StatusCode::kOk);
  EXPECT_EQ(quantize_activations(pw, x, p.x_stride, half, m, act.data()), StatusCode::kOk);
  std::vector<float> scratch(scratch_floats(pw));
  MatmulArgs a;
  a.weight = &pw;
  a.bias = p.with_bias ? p.bias.data() : nullptr;
  a.x = x;
  a.x_stride = p.x_stride;
  a.act = act.data();
  a.y = y.data();
  a.y_stride = p.y_stride;
  a.m = m;
  a.scratch = scratch.empty() ? nullptr : scratch.data();
  for (const auto& [b, e] : ranges) EXPECT_EQ(matmul_columns(a, b, e), StatusCode::kOk);
  return y;
}

std::vector<float> run_fast(Isa isa, const Problem& p) {
  const PackedWeight pw =
      pack_weight(isa, p.dtype, p.w.data(), p.n, p.k, dtype_row_bytes(p.dtype, p.k));
  return run_fast(pw, p, p.x.data(), p.m, {{0, p.n}});
}

// The exact reference of the fast path's math.
std::vector<float> run_exact(const Problem& p) {
  std::vector<float> y(static_cast<size_t>(p.m * p.y_stride), kSentinel);
  if (is_q8_math(p.dtype)) {
    std::vector<Q8ActBlock> act(static_cast<size_t>(p.m * p.k / kQ8ActBlockSize));
    for (int64_t i = 0; i < p.m; ++i) {
      quantize_row_q8_act(p.x.data() + i * p.x_stride, p.k, act.data() + i * p.k / kQ8ActBlockSize);
    }
    MatmulQ8Params q;
    q.weight = p.w.data();
    q.weight_dtype = p.dtype;
    q.weight_row_bytes = dtype_row_bytes(p.dtype, p.k);
    q.bias = p.with_bias ? p.bias.data() : nullptr;
    q.act = act.data();
    q.y = y.data();
    q.y_stride = p.y_stride;
    q.m = p.m;
    q.n = p.n;
    q.k = p.k;
    EXPECT_EQ(matmul_q8_ref(q, 0, p.n), StatusCode::kOk);
    return y;
  }
  MatmulParams f;
  f.weight = p.w.data();
  f.weight_dtype = p.dtype;
  f.weight_row_bytes = dtype_row_bytes(p.dtype, p.k);
  f.bias = p.with_bias ? p.bias.data() : nullptr;
  f.x = p.x.data();
  f.x_stride = p.x_stride;
  f.y = y.data();
  f.y_stride = p.y_stride;
  f.m = p.m;
  f.n = p.n;
  f.k = p.k;
  EXPECT_EQ(matmul_fp_chain_ref(f, 0, p.n), StatusCode::kOk);
  return y;
}

// Checks y against the f64 oracle with a bound per output: int8 rounding of x (|x - d q| <= d/2
// per element) for the q8 math, sequential fp32 summation (and bf16 rounding of x) otherwise.
void expect_near_f64(const Problem& p, const std::vector<float>& y) {
  std::vector<float> w(static_cast<size_t>(p.k));
  const int64_t row_bytes = dtype_row_bytes(p.dtype, p.k);
  for (int64_t j = 0; j < p.n; ++j) {
    dequantize_row(p.dtype, p.w.data() + j * row_bytes, w.data(), p.k);
    for (int64_t i = 0; i < p.m; ++i) {
      const float* x = p.x.data() + i * p.x_stride;
      double exact = p.with_bias ? p.bias[static_cast<size_t>(j)] : 0.0;
      double abs_sum = std::fabs(exact), quant_err = 0.0;
      for (int64_t b = 0; b < p.k; b += kQ8ActBlockSize) {
        double amax = 0.0;
        for (int64_t t = b; t < std::min(p.k, b + kQ8ActBlockSize); ++t)
          amax = std::max(amax, std::fabs(double{x[t]}));
        for (int64_t t = b; t < std::min(p.k, b + kQ8ActBlockSize); ++t) {
          exact += double{w[t]} * x[t];
          abs_sum += std::fabs(double{w[t]} * x[t]);
          quant_err += std::fabs(double{w[t]}) * amax / 254.0;
        }
      }
      double bound;
      if (is_q8_math(p.dtype)) {
        bound = quant_err * 1.001 + 1e-5 * abs_sum;
      } else {
        bound = static_cast<double>(p.k + 2) * std::ldexp(1.0, -24) * abs_sum * 1.01;
        if (p.dtype == DType::kBF16) bound += std::ldexp(1.0, -8) * abs_sum;
      }
      bound += 1e-30;
      const double got = y[static_cast<size_t>(i * p.y_stride + j)];
      ASSERT_LE(std::fabs(got - exact), bound)
          << dtype_name(p.dtype) << " m=" << p.m << " n=" << p.n << " k=" << p.k << " at (" << i
          << ", " << j << "): " << got << " vs " << exact;
    }
  }
}

::testing::AssertionResult same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], 4) != 0) {
      return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << " vs " << b[i];
    }
  }
  return ::testing::AssertionSuccess();
}

const DType kFastDtypes[] = {DType::kQ4_0, DType::kQ8_0, DType::kF32, DType::kF16, DType::kBF16};

class MatmulCpuTest : public ::testing::TestWithParam<std::tuple<Isa, DType>> {
 protected:
  void SetUp() override {
    if (!isa_supported(isa())) GTEST_SKIP() << "this CPU lacks " << isa_name(isa());
  }
  Isa isa() const { return std::get<0>(GetParam()); }
  DType dtype() const { return std::get<1>(GetParam()); }
  std::vector<int64_t> ks() const {
    if (is_q8_math(dtype())) return {32, 96, 288};
    return {1, 7, 32, 100};
  }
};

TEST_P(MatmulCpuTest, MatchesExactReferenceOnRaggedShapes) {
  uint32_t seed = 1;
  for (int64_t m : {1, 2, 3, 7, 12, 17, 64}) {
    for (int64_t n : {1, 15, 33, 100}) {
      for (int64_t k : ks()) {
        const Problem p = make_problem(dtype(), m, n, k, seed % 2 == 0, seed);
        ++seed;
        const std::vector<float> fast = run_fast(isa(), p);
        ASSERT_TRUE(same_bits(fast, run_exact(p))) << "m=" << m << " n=" << n << " k=" << k;
        expect_near_f64(p, fast);
      }
    }
  }
}

TEST_P(MatmulCpuTest, LargeShapesCrossKernelChunksAndRowPanels) {
  // Past the kernels' internal blocking: k over several chunks (64 blocks of Q, 128 f32 steps,
  // 64 bf16 pairs) and m over several row panels (48 rows for Q, 192 for the others).
  const int64_t k = is_q8_math(dtype()) ? 32 * 70 : 301;
  const int64_t m = is_q8_math(dtype()) ? 61 : 205;
  const Problem p = make_problem(dtype(), m, 40, k, true, 17);
  const std::vector<float> fast = run_fast(isa(), p);
  ASSERT_TRUE(same_bits(fast, run_exact(p)));
  expect_near_f64(p, fast);
}

TEST_P(MatmulCpuTest, BatchInvariantAcrossRowsAndColumnSplits) {
  const int64_t k = is_q8_math(dtype()) ? 32 * 70 : 300;
  const Problem p = make_problem(dtype(), 19, 77, k, true, 99);
  const PackedWeight pw =
      pack_weight(isa(), p.dtype, p.w.data(), p.n, p.k, dtype_row_bytes(p.dtype, p.k));
  const std::vector<float> full = run_fast(pw, p, p.x.data(), p.m, {{0, p.n}});
  auto row_of = [&](const std::vector<float>& y, int64_t r) {
    return std::vector<float>(y.begin() + r * p.y_stride, y.begin() + r * p.y_stride + p.n);
  };
  // Each row alone (decode, m = 1) and inside a different batch.
  for (int64_t i = 0; i < p.m; ++i) {
    const std::vector<float> alone = run_fast(pw, p, p.x.data() + i * p.x_stride, 1, {{0, p.n}});
    ASSERT_TRUE(same_bits(row_of(alone, 0), row_of(full, i))) << "row " << i << " alone";
  }
  const int64_t first = 5, count = 11;
  const std::vector<float> sub =
      run_fast(pw, p, p.x.data() + first * p.x_stride, count, {{0, p.n}});
  for (int64_t r = 0; r < count; ++r) {
    ASSERT_TRUE(same_bits(row_of(sub, r), row_of(full, first + r))) << "row " << first + r;
  }
  // Column splits off and on the kernels' column groups, and one column at a time.
  const ColumnRanges splits{{0, 5}, {5, 23}, {23, 32}, {32, 40}, {40, 77}};
  EXPECT_TRUE(same_bits(run_fast(pw, p, p.x.data(), p.m, splits), full));
  ColumnRanges singles;
  for (int64_t j = p.n - 1; j >= 0; --j) singles.emplace_back(j, j + 1);
  EXPECT_TRUE(same_bits(run_fast(pw, p, p.x.data(), p.m, singles), full));
}

TEST_P(MatmulCpuTest, StridedRowsAndPartialColumnsLeaveTheRestUntouched) {
  const int64_t k = is_q8_math(dtype()) ? 64 : 40;
  const Problem p = make_problem(dtype(), 5, 37, k, true, 7, /*x_pad=*/3, /*y_pad=*/6);
  const PackedWeight pw =
      pack_weight(isa(), p.dtype, p.w.data(), p.n, p.k, dtype_row_bytes(p.dtype, p.k));
  const std::vector<float> part = run_fast(pw, p, p.x.data(), p.m, {{3, 21}});
  const std::vector<float> exact = run_exact(p);
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = 0; j < p.y_stride; ++j) {
      const size_t at = static_cast<size_t>(i * p.y_stride + j);
      if (j >= 3 && j < 21) {
        ASSERT_EQ(std::memcmp(&part[at], &exact[at], 4), 0) << i << ", " << j;
      } else {
        ASSERT_EQ(part[at], kSentinel) << "wrote outside the range at " << i << ", " << j;
      }
    }
  }
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<Isa, DType>>& info) {
  return std::string(isa_name(std::get<0>(info.param))) + "_" +
         std::string(dtype_name(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(AllPaths, MatmulCpuTest,
                         ::testing::Combine(::testing::Values(Isa::kScalar, Isa::kAvx2,
                                                              Isa::kAvx512),
                                            ::testing::ValuesIn(kFastDtypes)),
                         param_name);

TEST(MatmulCpu, ActivationQuantizationMatchesReferenceOnEveryIsa) {
  const int64_t k = 32 * 9;
  std::mt19937 rng(5);
  std::vector<float> x = random_x(1, k, k, rng);
  // Block 1: halfway cases (amax 127 makes d = 1, so x / d is x); block 2: all zero;
  // block 3: tiny values; block 4: one huge value; blocks 6 and 7: NaNs in each half of the
  // block (skipped by the scale, code -128, as in the reference, wherever the SIMD reduction
  // meets them); block 8: infinities.
  for (int t = 0; t < 32; ++t) x[32 + t] = static_cast<float>(t - 16) + 0.5f;
  x[32 + 31] = 127.0f;
  for (int t = 0; t < 32; ++t) x[64 + t] = 0.0f;
  for (int t = 0; t < 32; ++t) x[96 + t] *= 1e-30f;
  x[128 + 7] = 3e30f;
  x[192 + 0] = x[192 + 15] = std::nanf("");
  x[224 + 16] = x[224 + 31] = std::nanf("");
  x[256 + 3] = INFINITY;
  x[256 + 30] = -INFINITY;
  std::vector<Q8ActBlock> ref(k / 32);
  quantize_row_q8_act(x.data(), k, ref.data());
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    for (DType dtype : {DType::kQ4_0, DType::kQ8_0}) {
      const std::vector<uint8_t> w = random_weight(dtype, 1, k, rng);
      const PackedWeight pw = pack_weight(isa, dtype, w.data(), 1, k, dtype_row_bytes(dtype, k));
      // Row 1 of a 2-row batch, wherever the ISA's layout puts it.
      ASSERT_GE(activation_bytes(pw, 2), 2 * sizeof(Q8ActBlock) * k / 32);
      std::vector<uint8_t> fast(activation_bytes(pw, 2));
      std::vector<float> x2(2 * k, 1.0f);
      std::copy(x.begin(), x.end(), x2.begin() + k);
      ASSERT_EQ(quantize_activations(pw, x2.data(), k, 0, 2, fast.data()), StatusCode::kOk);
      for (int64_t b = 0; b < k / 32; ++b) {
        EXPECT_EQ(
            std::memcmp(detail::q8_act_block(pw, fast.data(), 1, b), &ref[b], sizeof(Q8ActBlock)),
            0)
            << isa_name(isa) << " " << dtype_name(dtype) << " block " << b;
      }
    }
  }
  EXPECT_EQ(ref[1].qs[0], -16);  // -15.5 rounds away from zero
  EXPECT_EQ(ref[1].qs[16], 1);   // 0.5 too
  EXPECT_EQ(ref[2].d, 0.0f);
}

TEST(MatmulCpuReference, Q8ActCodesAreGgufQ8_0Codes) {
  // Same d = amax / 127 and rounding as GGUF's q8_0 quantizer: identical codes, and the f32 d
  // rounds to the file's f16 scale.
  std::mt19937 rng(11);
  const int64_t k = 32 * 16;
  const std::vector<float> x = random_x(1, k, k, rng);
  std::vector<Q8ActBlock> act(k / 32);
  quantize_row_q8_act(x.data(), k, act.data());
  std::vector<uint8_t> q8(static_cast<size_t>(dtype_row_bytes(DType::kQ8_0, k)));
  quantize_row(DType::kQ8_0, x.data(), q8.data(), k);
  for (int64_t b = 0; b < k / 32; ++b) {
    const auto blk = quant::load_block<quant::BlockQ8_0>(q8.data(), b);
    EXPECT_EQ(std::memcmp(blk.qs, act[b].qs, 32), 0) << "block " << b;
    EXPECT_EQ(blk.d, f32_to_f16(act[b].d)) << "block " << b;
    int32_t sum = 0;
    for (int8_t q : act[b].qs) sum += q;
    EXPECT_EQ(act[b].sum, sum);
  }
}

TEST(MatmulCpu, OtherDtypesFallBackToTheF64Reference) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    for (DType dtype : {DType::kQ4_K, DType::kQ6_K, DType::kQ5_0, DType::kQ4_1}) {
      EXPECT_FALSE(has_fast_matmul(isa, dtype));
      const Problem p = make_problem(dtype, 3, 10, 256, true, 3);
      const PackedWeight pw =
          pack_weight(isa, dtype, p.w.data(), p.n, p.k, dtype_row_bytes(dtype, p.k));
      EXPECT_EQ(pw.owned, nullptr);  // a view
      EXPECT_EQ(scratch_floats(pw), 256u);
      std::vector<float> scratch(256), expected(static_cast<size_t>(p.m * p.y_stride), kSentinel);
      MatmulParams ref;
      ref.weight = p.w.data();
      ref.weight_dtype = dtype;
      ref.weight_row_bytes = dtype_row_bytes(dtype, p.k);
      ref.bias = p.bias.data();
      ref.x = p.x.data();
      ref.x_stride = p.x_stride;
      ref.y = expected.data();
      ref.y_stride = p.y_stride;
      ref.m = p.m;
      ref.n = p.n;
      ref.k = p.k;
      ASSERT_EQ(matmul_ref(ref, 0, p.n, scratch.data()), StatusCode::kOk);
      EXPECT_TRUE(same_bits(run_fast(pw, p, p.x.data(), p.m, {{0, 4}, {4, 10}}), expected))
          << isa_name(isa) << " " << dtype_name(dtype);
      // Without scratch the fallback refuses rather than crashing.
      MatmulArgs a;
      a.weight = &pw;
      a.x = p.x.data();
      a.x_stride = p.x_stride;
      a.y = expected.data();
      a.y_stride = p.y_stride;
      a.m = p.m;
      EXPECT_EQ(matmul_columns(a, 0, p.n), StatusCode::kInvalidArgument);
    }
  }
}

TEST(MatmulCpu, RejectsBadShapesAndArguments) {
  std::vector<uint8_t> w(static_cast<size_t>(dtype_row_bytes(DType::kQ4_0, 64) * 4));
  auto code_of = [](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return e.code();
    }
    return StatusCode::kOk;
  };
  const Isa isa = detect_isa();
  EXPECT_EQ(code_of([&] { pack_weight(isa, DType::kQ4_0, w.data(), 4, 48, 100); }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { pack_weight(isa, DType::kQ4_0, w.data(), 4, 64, 10); }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { pack_weight(isa, DType::kQ4_0, nullptr, 4, 64, 36); }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([&] { pack_weight(isa, DType::kQ4_0, w.data(), 0, 64, 36); }),
            StatusCode::kInvalidArgument);
  for (Isa other : {Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_supported(other)) {
      EXPECT_EQ(code_of([&] { pack_weight(other, DType::kQ4_0, w.data(), 4, 64, 36); }),
                StatusCode::kUnsupported);
    }
  }
  const PackedWeight pw = pack_weight(isa, DType::kQ4_0, w.data(), 4, 64, 36);
  std::vector<float> x(64, 1.0f), y(8);
  std::vector<uint8_t> act(activation_bytes(pw, 2));
  MatmulArgs a;
  a.weight = &pw;
  a.act = act.data();
  a.x = x.data();
  a.x_stride = 64;
  a.y = y.data();
  a.y_stride = 4;
  a.m = 2;
  EXPECT_EQ(matmul_columns(a, 0, 5), StatusCode::kInvalidArgument);
  EXPECT_EQ(matmul_columns(a, 3, 2), StatusCode::kInvalidArgument);
  EXPECT_EQ(matmul_columns(a, -1, 2), StatusCode::kInvalidArgument);
  a.act = nullptr;
  EXPECT_EQ(matmul_columns(a, 0, 4), StatusCode::kInvalidArgument);
  EXPECT_EQ(quantize_activations(pw, x.data(), 64, 0, 1, nullptr), StatusCode::kInvalidArgument);
  EXPECT_EQ(quantize_activations(pw, x.data(), 32, 0, 1, act.data()), StatusCode::kInvalidArgument);
}

TEST(MatmulCpu, PackedLayoutsAndGranules) {
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    const int64_t lanes = isa == Isa::kAvx512 ? 16 : 8;
    const int64_t n = 2816, k = 1024;
    std::vector<uint8_t> w(static_cast<size_t>(dtype_row_bytes(DType::kQ4_0, k) * n), 0x5A);
    const PackedWeight pw =
        pack_weight(isa, DType::kQ4_0, w.data(), n, k, dtype_row_bytes(DType::kQ4_0, k));
    EXPECT_TRUE(has_fast_matmul(isa, DType::kQ4_0));
    EXPECT_EQ(column_granule(pw), lanes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(pw.data) % 64, 0u);
    // Same bytes as the GGUF rows: 18 per block of 32 (n is a multiple of the lanes here).
    EXPECT_EQ(pw.owned_bytes, static_cast<size_t>(n * k / 32 * 18));
  }
  std::vector<uint8_t> w(64 * 4);
  EXPECT_EQ(column_granule(pack_weight(Isa::kScalar, DType::kF32, w.data(), 4, 16, 64)), 1);
  EXPECT_FALSE(has_fast_matmul(Isa::kScalar, DType::kF32));
}

TEST(MatmulCpu, Bf16DotProductInstructionMatchesTheChain) {
  // The vdpbf16ps kernel runs only where CPUID advertises AVX512_BF16. Some hypervisors hide the
  // bit although the instruction works; LLMOS_TEST_UNADVERTISED_BF16=1 runs it there anyway.
  const char* force = std::getenv("LLMOS_TEST_UNADVERTISED_BF16");
  const bool forced = force != nullptr && std::string(force) == "1" && isa_supported(Isa::kAvx512);
  if (!has_avx512_bf16() && !forced) {
    GTEST_SKIP() << "CPUID does not advertise AVX512_BF16 (set LLMOS_TEST_UNADVERTISED_BF16=1 "
                    "to run the vdpbf16ps kernel anyway)";
  }
  for (int64_t k : {1, 2, 7, 64, 301}) {
    const Problem p = make_problem(DType::kBF16, 9, 37, k, true, static_cast<uint32_t>(k));
    const PackedWeight pw =
        detail::pack_weight_layout(Isa::kAvx512, detail::kLayoutBf16Dp, DType::kBF16, p.w.data(),
                                   p.n, p.k, dtype_row_bytes(DType::kBF16, p.k));
    ASSERT_TRUE(same_bits(run_fast(pw, p, p.x.data(), p.m, {{0, 20}, {20, 37}}), run_exact(p)))
        << "k=" << k;
  }
}

}  // namespace
}  // namespace llmos::kernels::cpu
