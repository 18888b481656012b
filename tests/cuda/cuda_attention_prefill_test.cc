// The tensor-core prefill attention kernel (kernels/cuda/attention_prefill_cuda.h) against the
// scalar reference backend (kernels/ref, double accumulation), within 1e-2 of each row's
// magnitude: the kernel rounds q and P to f16 and reads an f16 cache. Through the backend
// (which picks it for batches with a prefill chunk) and through the launcher directly (so the
// kernel, not a fallback, is what ran). Device tests skip, saying why, without a CUDA device;
// the host-side checks of what the kernel serves run in any CUDA build.
#include <gtest/gtest.h>

#if LLMOS_HAVE_CUDA

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_probe.h"
#include "backend/kernel_params.h"
#include "core/error.h"
#include "kernels/cuda/attention_prefill_cuda.h"
#include "kernels/cuda/attention_prefill_plan.h"
#include "kv/kv_cache.h"
#include "model/batch.h"
#include "cuda_test_support.h"

namespace llmos {
namespace {

using cuda_test::Backends;
using cuda_test::random_f32;
using cuda_test::expect_close_rows;

namespace kc = kernels::cuda;

std::string join(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

struct Shape {
  DType kv_dtype;
  int num_heads, num_kv_heads, head_dim, block_size;
};

// The same random K/V on both backends for sequences of total[s] KV tokens, block tables drawn
// from a shuffled free list; the step's queries are the last fresh[s] tokens of each.
struct Fixture {
  KvCacheSpec spec;
  std::unique_ptr<KvCache> ref_cache, gpu_cache;
  Batch step;
  static constexpr int kLayer = 1;

  Fixture(Backends& b, const Shape& c, const std::vector<int32_t>& total, const std::vector<int32_t>& fresh,
          uint32_t seed) {
    int64_t blocks_needed = 0;
    for (int32_t t : total) blocks_needed += (t + c.block_size - 1) / c.block_size;
    spec.num_layers = 2;
    spec.num_kv_heads = c.num_kv_heads;
    spec.head_dim = c.head_dim;
    spec.block_size = c.block_size;
    spec.num_blocks = blocks_needed + 5;
    spec.dtype = c.kv_dtype;
    ref_cache = std::make_unique<KvCache>(spec, *b.ref);
    gpu_cache = std::make_unique<KvCache>(spec, *b.gpu);
    std::vector<int32_t> free_blocks(static_cast<size_t>(spec.num_blocks));
    for (int i = 0; i < spec.num_blocks; ++i) free_blocks[static_cast<size_t>(i)] = i;
    std::shuffle(free_blocks.begin(), free_blocks.end(), std::mt19937(seed));
    size_t next = 0;
    std::vector<int64_t> slots;
    for (size_t s = 0; s < total.size(); ++s) {
      std::vector<int32_t> table;
      for (int t = 0; t < total[s]; t += c.block_size) table.push_back(free_blocks[next++]);
      for (int t = 0; t < total[s]; ++t) {
        slots.push_back(int64_t{table[static_cast<size_t>(t / c.block_size)]} * c.block_size + t % c.block_size);
      }
      const std::vector<int32_t> new_tokens(static_cast<size_t>(fresh[s]), 1);
      step.add_sequence(new_tokens, total[s] - fresh[s], table, c.block_size, Batch::Logits::kNone);
    }
    const int64_t kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
    for (size_t begin = 0; begin < slots.size(); begin += 30000) {
      const size_t n = std::min<size_t>(30000, slots.size() - begin);
      const std::span<const int64_t> chunk(slots.data() + begin, n);
      const Tensor k = random_f32(static_cast<int64_t>(n), kv_dim, seed + 11 + static_cast<uint32_t>(begin), 1.5f);
      const Tensor v = random_f32(static_cast<int64_t>(n), kv_dim, seed + 12 + static_cast<uint32_t>(begin));
      b.ref->write_kv(*ref_cache, kLayer, k, v, chunk);
      b.gpu->write_kv(*gpu_cache, kLayer, b.gpu->upload(k), b.gpu->upload(v), chunk);
    }
  }
};

struct Step {
  std::vector<int32_t> total, fresh;
};

// Single prompts of 1, 17, 64, 300 and 1000 tokens, a chunk after a cached prefix, and
// sequences of different lengths mixed with decode tokens.
const std::vector<Step>& steps() {
  static const std::vector<Step> s{{{1}, {1}},
                                   {{17}, {17}},
                                   {{64}, {64}},
                                   {{300}, {300}},
                                   {{1000}, {1000}},
                                   {{700}, {200}},                      // chunk after 500 cached
                                   {{129, 513, 1, 90, 1000}, {40, 1, 1, 90, 17}},  // mixed with decodes
                                   {{65, 2, 3000}, {65, 2, 1}}};
  return s;
}

class CudaPrefillAttentionTest : public ::testing::TestWithParam<Shape> {};

TEST_P(CudaPrefillAttentionTest, BackendMatchesReference) {
  REQUIRE_CUDA_DEVICE();
  Backends b;
  const Shape c = GetParam();
  uint32_t seed = 300;
  for (const Step& st : steps()) {
    Fixture f(b, c, st.total, st.fresh, ++seed);
    const int64_t t = f.step.num_tokens();
    const Tensor q = random_f32(t, int64_t{c.num_heads} * c.head_dim, seed * 5);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    Tensor want = Tensor::empty(q.shape(), DType::kF32);
    b.ref->attention(q, *f.ref_cache, Fixture::kLayer, f.step, c.num_heads, scale, want);
    const Tensor q_dev = b.gpu->upload(q);
    Tensor out = b.gpu->alloc(q.shape(), DType::kF32);
    // The backend takes the tensor-core kernel exactly when the batch has a prefill chunk.
    const bool prefill = kc::batch_has_prefill(f.step.query_start.data(), f.step.num_seqs());
    EXPECT_EQ(prefill, std::any_of(st.fresh.begin(), st.fresh.end(), [](int32_t n) { return n > 1; }));
    EXPECT_TRUE(kc::prefill_attention_serves(
        paged_attention_params(q_dev, *f.gpu_cache, Fixture::kLayer, f.step, c.num_heads, scale, out)));
    b.gpu->attention(q_dev, *f.gpu_cache, Fixture::kLayer, f.step, c.num_heads, scale, out);
    expect_close_rows(b.gpu->download(out), want, 1e-2,
                      "contexts " + join(st.total) + " new " + join(st.fresh) + (prefill ? " (prefill kernel)" : ""));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaPrefillAttentionTest,
                         ::testing::Values(Shape{DType::kF16, 2, 2, 64, 16}, Shape{DType::kF16, 8, 2, 128, 32},
                                           Shape{DType::kF16, 16, 2, 128, 5}, Shape{DType::kF16, 8, 1, 64, 32},
                                           Shape{DType::kF16, 4, 4, 128, 16}, Shape{DType::kF16, 16, 4, 64, 5}),
                         [](const ::testing::TestParamInfo<Shape>& param_info) {
                           const Shape& c = param_info.param;
                           return "h" + std::to_string(c.num_heads) + "_kv" + std::to_string(c.num_kv_heads) + "_d" +
                                  std::to_string(c.head_dim) + "_b" + std::to_string(c.block_size);
                         });

// Device copies of host arrays for a direct launch.
struct DeviceArrays {
  std::vector<std::shared_ptr<void>> held;
  template <typename T>
  T* put(const std::vector<T>& host) {
    void* ptr = nullptr;
    const size_t bytes = std::max<size_t>(1, host.size() * sizeof(T));
    EXPECT_EQ(cudaMalloc(&ptr, bytes), cudaSuccess);
    held.emplace_back(ptr, [](void* p) { (void)cudaFree(p); });
    if (!host.empty()) {
      EXPECT_EQ(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    }
    return static_cast<T*>(ptr);
  }
};

// The launcher itself on a NaN-poisoned output: every (token, head) row is written (a missed
// one stays NaN), whatever the order of the plan's tiles (here reversed).
TEST(CudaPrefillAttention, LauncherWritesEveryRowOfThePlan) {
  REQUIRE_CUDA_DEVICE();
  Backends b;
  for (const Shape& c : {Shape{DType::kF16, 32, 8, 128, 16}, Shape{DType::kF16, 12, 3, 64, 7}}) {
    Fixture f(b, c, {777, 1, 130, 2000}, {377, 1, 130, 3}, 9);
    const int64_t t = f.step.num_tokens();
    const Tensor q = random_f32(t, int64_t{c.num_heads} * c.head_dim, 21);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    Tensor want = Tensor::empty(q.shape(), DType::kF32);
    b.ref->attention(q, *f.ref_cache, Fixture::kLayer, f.step, c.num_heads, scale, want);
    Tensor poison = Tensor::empty(q.shape(), DType::kF32);
    for (int64_t i = 0; i < poison.numel(); ++i) poison.data_as<float>()[i] = std::nanf("");
    Tensor out = b.gpu->upload(poison);
    kernels::PagedAttentionParams p =
        paged_attention_params(b.gpu->upload(q), *f.gpu_cache, Fixture::kLayer, f.step, c.num_heads, scale, out);
    ASSERT_TRUE(kc::prefill_attention_serves(p));
    kc::PrefillPlan plan;
    ASSERT_TRUE(kc::plan_prefill_attention(f.step.query_start.data(), f.step.kv_len.data(), f.step.num_seqs(),
                                           c.num_heads / c.num_kv_heads, kc::kPrefillTileRows, kc::kPrefillKvTile,
                                           &plan));
    std::reverse(plan.tiles.begin(), plan.tiles.end());
    DeviceArrays dev;
    p.query_start = dev.put(f.step.query_start);
    p.kv_len = dev.put(f.step.kv_len);
    p.block_indptr = dev.put(f.step.block_indptr);
    p.block_indices = dev.put(f.step.block_indices);
    ASSERT_EQ(kc::paged_attention_prefill_cuda(p, dev.put(plan.tiles), static_cast<int64_t>(plan.tiles.size()),
                                               nullptr),
              cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    expect_close_rows(b.gpu->download(out), want, 1e-2, "direct launch d" + std::to_string(c.head_dim));
  }
}

// Caches the kernel does not serve (f32, bf16, head_dim 96) take the per-token kernels with a
// prefill chunk in the batch, and still match.
TEST(CudaPrefillAttention, UnservedShapesFallBackAndMatch) {
  REQUIRE_CUDA_DEVICE();
  Backends b;
  for (const Shape& c : {Shape{DType::kF32, 8, 2, 128, 16}, Shape{DType::kBF16, 8, 2, 64, 16},
                         Shape{DType::kF16, 8, 2, 96, 16}}) {
    Fixture f(b, c, {300, 1, 80}, {120, 1, 80}, 4);
    const int64_t t = f.step.num_tokens();
    const Tensor q = random_f32(t, int64_t{c.num_heads} * c.head_dim, 8);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    Tensor want = Tensor::empty(q.shape(), DType::kF32);
    b.ref->attention(q, *f.ref_cache, Fixture::kLayer, f.step, c.num_heads, scale, want);
    const Tensor q_dev = b.gpu->upload(q);
    Tensor out = b.gpu->alloc(q.shape(), DType::kF32);
    EXPECT_FALSE(kc::prefill_attention_serves(
        paged_attention_params(q_dev, *f.gpu_cache, Fixture::kLayer, f.step, c.num_heads, scale, out)));
    b.gpu->attention(q_dev, *f.gpu_cache, Fixture::kLayer, f.step, c.num_heads, scale, out);
    expect_close_rows(b.gpu->download(out), want, c.kv_dtype == DType::kF32 ? 1e-5 : 1e-2,
                      "fallback " + std::string(dtype_name(c.kv_dtype)) + " d" + std::to_string(c.head_dim));
  }
}

// Host-side only (no device needed): what the kernel serves, and the launcher's refusals.
TEST(CudaPrefillAttentionHost, ServesF16HeadDim64And128Only) {
  alignas(16) static float q[512];
  alignas(16) static float out[512];
  alignas(16) static uint16_t pool[512];
  kernels::PagedAttentionParams p;
  p.q = q;
  p.out = out;
  p.q_stride = p.out_stride = 256;
  p.k_pool = pool;
  p.v_pool = pool;
  p.kv_dtype = DType::kF16;
  p.num_heads = 8;
  p.num_kv_heads = 2;
  p.head_dim = 128;
  p.block_size = 16;
  EXPECT_TRUE(kc::prefill_attention_serves(p));
  auto with = [&](auto change) {
    kernels::PagedAttentionParams x = p;
    change(x);
    return kc::prefill_attention_serves(x);
  };
  EXPECT_TRUE(with([](auto& x) { x.head_dim = 64; }));
  EXPECT_TRUE(with([](auto& x) { x.block_size = 5; }));
  EXPECT_TRUE(with([](auto& x) { x.num_kv_heads = 8; }));
  EXPECT_FALSE(with([](auto& x) { x.head_dim = 96; }));
  EXPECT_FALSE(with([](auto& x) { x.head_dim = 256; }));
  EXPECT_FALSE(with([](auto& x) { x.kv_dtype = DType::kF32; }));
  EXPECT_FALSE(with([](auto& x) { x.kv_dtype = DType::kBF16; }));
  EXPECT_FALSE(with([](auto& x) { x.num_kv_heads = 3; }));
  EXPECT_FALSE(with([](auto& x) { x.num_kv_heads = 0; }));
  EXPECT_FALSE(with([](auto& x) { x.block_size = 0; }));
  EXPECT_FALSE(with([](auto& x) { x.q_stride = 255; }));
  EXPECT_FALSE(with([](auto& x) { x.q = q + 1; }));
  EXPECT_FALSE(with([](auto& x) { x.out = out + 1; }));
  EXPECT_FALSE(with([](auto& x) { x.k_pool = pool + 4; }));
  EXPECT_FALSE(with([](auto& x) { x.v_pool = nullptr; }));
  // Refused before any device call; an empty plan is a no-op.
  const kc::PrefillTile* tiles = reinterpret_cast<const kc::PrefillTile*>(pool);
  EXPECT_EQ(kc::paged_attention_prefill_cuda(p, tiles, 0, nullptr), cudaSuccess);
  EXPECT_EQ(kc::paged_attention_prefill_cuda(p, nullptr, 3, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(kc::paged_attention_prefill_cuda(p, tiles, -1, nullptr), cudaErrorInvalidValue);
  kernels::PagedAttentionParams bad = p;
  bad.head_dim = 80;
  EXPECT_EQ(kc::paged_attention_prefill_cuda(bad, tiles, 1, nullptr), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace llmos

#else

TEST(CudaPrefillAttention, Skipped) { GTEST_SKIP() << "built without CUDA"; }

#endif
