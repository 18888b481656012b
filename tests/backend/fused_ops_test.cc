// The fused backend ops (fused_matmul, rope_write_kv) give exactly what the unfused ops give on
// the same backend: the CPU fast path normalises, quantizes and applies epilogues inside one
// matmul dispatch, and rotates K while writing it, but runs the same kernels in the same order
// per element, so results must be bit-identical. The reference backend runs the composition.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "kv/kv_cache.h"
#include "quant/quant.h"

namespace llmos {
namespace {

Tensor random_activations(int64_t rows, int64_t cols, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  Tensor t = Tensor::empty({rows, cols}, DType::kF32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = normal(rng) + 0.01f;
  return t;
}

Tensor random_weight(DType dtype, int64_t n, int64_t k, uint32_t seed) {
  Tensor f = random_activations(n, k, seed, 0.2f);
  if (dtype == DType::kF32) return f;
  Tensor w = Tensor::empty({n, k}, dtype);
  for (int64_t r = 0; r < n; ++r) {
    quantize_row(dtype, static_cast<const float*>(f.row(r)), w.row(r), k);
  }
  return w;
}

void expect_bits_equal(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  for (int64_t r = 0; r < a.dim(0); ++r) {
    ASSERT_EQ(std::memcmp(a.row(r), b.row(r), static_cast<size_t>(a.dim(1)) * sizeof(float)), 0)
        << what << ": row " << r << " differs";
  }
}

struct FusedCase {
  DType first, second;  // weight dtypes (the second differs to exercise unshared formats)
};

class FusedMatmulTest : public ::testing::TestWithParam<FusedCase> {};

TEST_P(FusedMatmulTest, NormAndThreeOutputsEqualTheUnfusedOps) {
  auto backend = create_backend({Device::cpu(), 2});
  const int64_t k = 256;
  const DType d0 = GetParam().first, d1 = GetParam().second;
  const Tensor wq = random_weight(d0, 80, k, 1), wk = random_weight(d1, 48, k, 2),
               wv = random_weight(d0, 48, k, 3);
  const Tensor bias = random_activations(1, 48, 4).reshape({48});
  const Tensor norm = random_activations(1, k, 5).reshape({k});
  for (int64_t m : {1, 3, 13, 40}) {
    const Tensor x = random_activations(m, k, static_cast<uint32_t>(10 + m), 3.0f);
    Tensor h = Tensor::zeros({m, k}, DType::kF32), q = Tensor::zeros({m, 80}, DType::kF32),
           kk = Tensor::zeros({m, 48}, DType::kF32), v = Tensor::zeros({m, 48}, DType::kF32);
    const MatmulOutput outs[] = {{&wq, nullptr, &q}, {&wk, &bias, &kk}, {&wv, nullptr, &v}};
    backend->fused_matmul({.x = &x, .norm_weight = &norm, .norm_eps = 1e-5f, .h = &h, .outputs = outs});

    Tensor h2 = Tensor::zeros({m, k}, DType::kF32), q2 = Tensor::zeros({m, 80}, DType::kF32),
           k2 = Tensor::zeros({m, 48}, DType::kF32), v2 = Tensor::zeros({m, 48}, DType::kF32);
    backend->rms_norm(x, norm, 1e-5f, h2);
    backend->matmul(wq, nullptr, h2, q2);
    backend->matmul(wk, &bias, h2, k2);
    backend->matmul(wv, nullptr, h2, v2);
    const std::string at = "m=" + std::to_string(m);
    expect_bits_equal(h, h2, "h " + at);
    expect_bits_equal(q, q2, "q " + at);
    expect_bits_equal(kk, k2, "k " + at);
    expect_bits_equal(v, v2, "v " + at);
  }
}

TEST_P(FusedMatmulTest, SwigluEpilogueEqualsTheUnfusedOps) {
  auto backend = create_backend({Device::cpu(), 2});
  const int64_t k = 256, n = 200;  // n not a multiple of any column group
  const Tensor wg = random_weight(GetParam().first, n, k, 21), wu = random_weight(GetParam().second, n, k, 22);
  const Tensor norm = random_activations(1, k, 23).reshape({k});
  for (int64_t m : {1, 5, 32}) {
    const Tensor x = random_activations(m, k, static_cast<uint32_t>(30 + m), 2.0f);
    Tensor h = Tensor::zeros({m, k}, DType::kF32), gate = Tensor::zeros({m, n}, DType::kF32),
           up = Tensor::zeros({m, n}, DType::kF32);
    const MatmulOutput outs[] = {{&wg, nullptr, &gate}, {&wu, nullptr, &up}};
    backend->fused_matmul({.x = &x, .norm_weight = &norm, .norm_eps = 1e-6f, .h = &h, .outputs = outs,
                           .epilogue = MatmulEpilogue::kSwiglu});
    Tensor h2 = Tensor::zeros({m, k}, DType::kF32), g2 = Tensor::zeros({m, n}, DType::kF32),
           u2 = Tensor::zeros({m, n}, DType::kF32);
    backend->rms_norm(x, norm, 1e-6f, h2);
    backend->matmul(wg, nullptr, h2, g2);
    backend->matmul(wu, nullptr, h2, u2);
    backend->swiglu(g2, u2, g2);
    expect_bits_equal(gate, g2, "silu(gate) * up, m=" + std::to_string(m));
  }
}

TEST_P(FusedMatmulTest, ResidualEpilogueEqualsMatmulThenAdd) {
  auto backend = create_backend({Device::cpu(), 2});
  const int64_t k = 256, n = 160;
  const Tensor w = random_weight(GetParam().first, n, k, 41);
  for (int64_t m : {1, 7, 24}) {
    const Tensor x = random_activations(m, k, static_cast<uint32_t>(50 + m));
    Tensor residual = random_activations(m, n, static_cast<uint32_t>(60 + m));
    Tensor residual2 = residual.clone();
    Tensor y = Tensor::zeros({m, n}, DType::kF32), y2 = Tensor::zeros({m, n}, DType::kF32);
    const MatmulOutput outs[] = {{&w, nullptr, &y}};
    backend->fused_matmul({.x = &x, .outputs = outs, .epilogue = MatmulEpilogue::kAddTo, .residual = &residual});
    backend->matmul(w, nullptr, x, y2);
    backend->add(residual2, y2);
    expect_bits_equal(residual, residual2, "x + W h, m=" + std::to_string(m));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Dtypes, FusedMatmulTest,
    ::testing::Values(FusedCase{DType::kQ4_0, DType::kQ4_0}, FusedCase{DType::kQ8_0, DType::kQ4_0},
                      FusedCase{DType::kQ4_K, DType::kQ6_K}, FusedCase{DType::kF16, DType::kF16},
                      FusedCase{DType::kF32, DType::kBF16}, FusedCase{DType::kQ5_K, DType::kQ4_0}),
    [](const auto& param_info) {
      return std::string(dtype_name(param_info.param.first)) + "_" + std::string(dtype_name(param_info.param.second));
    });

TEST(FusedMatmul, FastPathStaysCloseToTheReferenceBackend) {
  auto fast = create_backend({Device::cpu(), 2});
  BackendOptions ref_options{Device::cpu(), 2};
  ref_options.reference_kernels = true;
  auto ref = create_backend(ref_options);
  const int64_t k = 64, n = 48, m = 6;
  const Tensor wg = random_weight(DType::kF32, n, k, 71), wu = random_weight(DType::kF32, n, k, 72);
  const Tensor norm = random_activations(1, k, 73).reshape({k});
  const Tensor x = random_activations(m, k, 74);
  Tensor out[2], h[2], up[2];
  Backend* backends[2] = {fast.get(), ref.get()};
  for (int i = 0; i < 2; ++i) {
    h[i] = Tensor::zeros({m, k}, DType::kF32);
    out[i] = Tensor::zeros({m, n}, DType::kF32);
    up[i] = Tensor::zeros({m, n}, DType::kF32);
    const MatmulOutput outs[] = {{&wg, nullptr, &out[i]}, {&wu, nullptr, &up[i]}};
    backends[i]->fused_matmul({.x = &x, .norm_weight = &norm, .norm_eps = 1e-5f, .h = &h[i],
                               .outputs = outs, .epilogue = MatmulEpilogue::kSwiglu});
  }
  double max_err = 0.0, max_abs = 0.0;
  for (int64_t i = 0; i < out[0].numel(); ++i) {
    const double a = out[0].data_as<float>()[i], b = out[1].data_as<float>()[i];
    max_err = std::max(max_err, std::fabs(a - b));
    max_abs = std::max(max_abs, std::fabs(b));
  }
  ASSERT_GT(max_abs, 0.1);
  EXPECT_LT(max_err / max_abs, 1e-5);
}

TEST(FusedMatmul, RejectsMalformedOperations) {
  auto backend = create_backend({Device::cpu(), 2});
  const Tensor w = random_weight(DType::kF32, 8, 32, 81);
  const Tensor x = random_activations(3, 32, 82);
  Tensor y = Tensor::zeros({3, 8}, DType::kF32), y2 = Tensor::zeros({3, 8}, DType::kF32);
  Tensor h = Tensor::zeros({3, 32}, DType::kF32);
  const Tensor norm = random_activations(1, 32, 83).reshape({32});
  auto expect_invalid = [](auto&& fn, const std::string& fragment) {
    try {
      fn();
      FAIL() << "expected an error mentioning '" << fragment << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), StatusCode::kInvalidArgument) << e.message();
      EXPECT_NE(e.message().find(fragment), std::string::npos) << e.message();
    }
  };
  expect_invalid([&] { backend->fused_matmul({.x = &x}); }, "no outputs");
  const MatmulOutput one[] = {{&w, nullptr, &y}};
  expect_invalid([&] { backend->fused_matmul({.x = &x, .norm_weight = &norm, .outputs = one}); },
                 "needs an output tensor h");
  expect_invalid([&] { backend->fused_matmul({.x = &x, .outputs = one, .epilogue = MatmulEpilogue::kSwiglu}); },
                 "two outputs");
  expect_invalid([&] { backend->fused_matmul({.x = &x, .outputs = one, .epilogue = MatmulEpilogue::kAddTo}); },
                 "residual");
  Tensor x_mut = x.clone();
  const MatmulOutput into_x[] = {{&w, nullptr, &y}};
  Tensor wide = Tensor::zeros({3, 32}, DType::kF32);
  const Tensor w32 = random_weight(DType::kF32, 32, 32, 84);
  const MatmulOutput square[] = {{&w32, nullptr, &wide}};
  expect_invalid([&] { backend->fused_matmul({.x = &x_mut, .outputs = square, .epilogue = MatmulEpilogue::kAddTo,
                                              .residual = &x_mut}); },
                 "residual must not be");
  (void)into_x;
  Tensor y_bad = Tensor::zeros({3, 9}, DType::kF32);
  const MatmulOutput bad[] = {{&w, nullptr, &y_bad}};
  expect_invalid([&] { backend->fused_matmul({.x = &x, .outputs = bad}); }, "fused_matmul: y");
  const MatmulOutput pair_bad[] = {{&w, nullptr, &y}, {&w32, nullptr, &wide}};
  expect_invalid([&] { backend->fused_matmul({.x = &x, .outputs = pair_bad, .epilogue = MatmulEpilogue::kSwiglu}); },
                 "shape mismatch");
  (void)y2;
}

// rope_write_kv: q rotated in place and the cache holding rope(k) and v, bit-identical to
// rope(q), rope(k), write_kv(...), for both pairings, partial rotation and every KV dtype.
TEST(RopeWriteKv, EqualsRopeThenWriteKv) {
  for (bool reference : {false, true}) {
    BackendOptions options{Device::cpu(), 2};
    options.reference_kernels = reference;
    auto backend = create_backend(options);
    for (DType kv_dtype : {DType::kF16, DType::kF32, DType::kBF16}) {
      for (bool neox : {false, true}) {
        KvCacheSpec spec;
        spec.num_layers = 2;
        spec.num_kv_heads = 2;
        spec.head_dim = 16;
        spec.block_size = 4;
        spec.num_blocks = 6;
        spec.dtype = kv_dtype;
        KvCache fused(spec, *backend), plain(spec, *backend);
        for (KvCache* c : {&fused, &plain}) {  // slots not written must compare equal too
          std::memset(c->k(1).data(), 0, static_cast<size_t>(c->k(1).nbytes()));
          std::memset(c->v(1).data(), 0, static_cast<size_t>(c->v(1).nbytes()));
        }
        RopeSpec rope;
        rope.rot_dim = 12;
        rope.neox = neox;
        rope.attn_factor = 0.9f;
        for (int i = 0; i < rope.rot_dim / 2; ++i) rope.inv_freq.push_back(std::pow(10000.0f, -2.0f * i / 12));
        const int heads = 4;
        const std::vector<int32_t> positions{0, 5, 6, 700, 3};
        const std::vector<int64_t> slots{1, 9, 10, 23, 4};
        const int64_t t = 5;
        Tensor q = random_activations(t, heads * 16, 91), k = random_activations(t, 32, 92),
               v = random_activations(t, 32, 93);
        Tensor q2 = q.clone(), k2 = k.clone();
        backend->rope_write_kv(fused, 1, q, heads, k, v, rope, positions, slots);
        backend->rope(q2, heads, 16, rope, positions);
        backend->rope(k2, 2, 16, rope, positions);
        backend->write_kv(plain, 1, k2, v, slots);
        const std::string what = std::string(reference ? "reference " : "fast ") + std::string(dtype_name(kv_dtype)) +
                                 (neox ? " neox" : " normal");
        expect_bits_equal(q, q2, "q " + what);
        ASSERT_EQ(std::memcmp(fused.k(1).data(), plain.k(1).data(), static_cast<size_t>(fused.k(1).nbytes())), 0)
            << "K cache " << what;
        ASSERT_EQ(std::memcmp(fused.v(1).data(), plain.v(1).data(), static_cast<size_t>(fused.v(1).nbytes())), 0)
            << "V cache " << what;
      }
    }
  }
}

// The fast rope (cos/sin table kept across calls) equals rope_ref bit for bit, also when the
// positions change between calls (the table must be rebuilt, not reused).
TEST(RopeWriteKv, FastRopeEqualsReferenceAcrossChangingPositions) {
  auto fast = create_backend({Device::cpu(), 2});
  BackendOptions ref_options{Device::cpu(), 1};
  ref_options.reference_kernels = true;
  auto ref = create_backend(ref_options);
  RopeSpec rope;
  rope.rot_dim = 8;
  for (int i = 0; i < 4; ++i) rope.inv_freq.push_back(std::pow(10000.0f, -2.0f * i / 8));
  for (const std::vector<int32_t>& positions :
       {std::vector<int32_t>{0, 1, 2}, std::vector<int32_t>{0, 1, 2}, std::vector<int32_t>{7, 1, 2},
        std::vector<int32_t>{7, 1}, std::vector<int32_t>{7, 1, 2, 9000}}) {
    const int64_t t = static_cast<int64_t>(positions.size());
    Tensor a = random_activations(t, 3 * 8, static_cast<uint32_t>(100 + t));
    Tensor b = a.clone();
    fast->rope(a, 3, 8, rope, positions);
    ref->rope(b, 3, 8, rope, positions);
    expect_bits_equal(a, b, "rope at " + std::to_string(positions[0]) + ".. (" + std::to_string(t) + " rows)");
  }
  rope.attn_factor = 0.5f;  // a new factor must not reuse the table either
  const std::vector<int32_t> positions{7, 1, 2, 9000};
  Tensor a = random_activations(4, 24, 7), b = a.clone();
  fast->rope(a, 3, 8, rope, positions);
  ref->rope(b, 3, 8, rope, positions);
  expect_bits_equal(a, b, "rope with attn_factor 0.5");
}

}  // namespace
}  // namespace llmos
