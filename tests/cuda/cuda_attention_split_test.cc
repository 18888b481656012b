// Split-K paged attention and the fused RoPE-into-cache write on the CUDA backend against the
// scalar reference backend (kernels/ref, double accumulation). Attention tolerances: f32
// caches within 1e-5 relative (to the row's magnitude), f16/bf16 caches within 1e-2. Skips,
// saying why, on a machine without a CUDA device.
#include <gtest/gtest.h>

#if LLMOS_HAVE_CUDA

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_probe.h"
#include "backend/kernel_params.h"
#include "core/error.h"
#include "core/half.h"
#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/attention_split.cuh"
#include "kv/kv_cache.h"
#include "model/batch.h"
#include "cuda_test_support.h"

namespace llmos {
namespace {

using cuda_test::Backends;
using cuda_test::random_f32;
using cuda_test::expect_close_rows;

int device_sm_count() {
  int sms = 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0) != cudaSuccess) return 0;
  return sms;
}

// |got - want| <= tol * scale_of_row + tiny, element by element.
std::string join(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

struct SplitCase {
  DType kv_dtype;
  int num_heads, num_kv_heads, head_dim, block_size;
};

// A cache with the same random K/V bytes on both backends for sequences of `cached` tokens
// (block tables drawn from a shuffled free list), and the step that adds `fresh[s]` query tokens
// at the end of each sequence (cached[s] includes them: they are the step's KV, written first).
struct Fixture {
  KvCacheSpec spec;
  std::unique_ptr<KvCache> ref_cache, gpu_cache;
  Batch step;
  static constexpr int kLayer = 1;

  Fixture(Backends& b, const SplitCase& c, const std::vector<int32_t>& total,
          const std::vector<int32_t>& fresh, uint32_t seed) {
    int64_t blocks_needed = 0;
    for (int32_t t : total) blocks_needed += (t + c.block_size - 1) / c.block_size;
    spec.num_layers = 2;
    spec.num_kv_heads = c.num_kv_heads;
    spec.head_dim = c.head_dim;
    spec.block_size = c.block_size;
    spec.num_blocks = blocks_needed + 3;
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
        slots.push_back(static_cast<int64_t>(table[static_cast<size_t>(t / c.block_size)]) *
                            c.block_size +
                        t % c.block_size);
      }
      const std::vector<int32_t> new_tokens(static_cast<size_t>(fresh[s]), 1);
      step.add_sequence(new_tokens, total[s] - fresh[s], table, c.block_size, Batch::Logits::kNone);
    }
    const int64_t kv_dim = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
    // Whole-cache writes in chunks within the kernels' row limit.
    for (size_t begin = 0; begin < slots.size(); begin += 30000) {
      const size_t n = std::min<size_t>(30000, slots.size() - begin);
      const std::span<const int64_t> chunk(slots.data() + begin, n);
      const Tensor k = random_f32(static_cast<int64_t>(n), kv_dim,
                                  seed + 11 + static_cast<uint32_t>(begin), 1.5f);
      const Tensor v =
          random_f32(static_cast<int64_t>(n), kv_dim, seed + 12 + static_cast<uint32_t>(begin));
      b.ref->write_kv(*ref_cache, kLayer, k, v, chunk);
      b.gpu->write_kv(*gpu_cache, kLayer, b.gpu->upload(k), b.gpu->upload(v), chunk);
    }
  }
};

class CudaSplitAttentionTest : public ::testing::TestWithParam<SplitCase> {};

// Batches of 1..4 decode tokens over contexts of 1, 31, 257, 3000 and 9000 tokens, and a mix
// with a prefill chunk, through the backend (which splits where its planner says so).
TEST_P(CudaSplitAttentionTest, BackendAttentionMatchesReference) {
  REQUIRE_CUDA_DEVICE();
  Backends b;
  const SplitCase c = GetParam();
  const double tol = c.kv_dtype == DType::kF32 ? 1e-5 : 1e-2;
  const int sms = device_sm_count();
  ASSERT_GT(sms, 0);
  struct Step {
    std::vector<int32_t> total, fresh;
  };
  const std::vector<Step> steps{{{9000}, {1}},
                                {{1}, {1}},
                                {{3000, 31}, {1, 1}},
                                {{257, 1, 9000}, {1, 1, 1}},
                                {{1, 31, 257, 3000}, {1, 1, 1, 1}},
                                {{2040, 9000, 257}, {40, 1, 1}}};  // a 40-token prefill chunk
  int split_steps = 0;
  uint32_t seed = 100;
  for (const Step& st : steps) {
    Fixture f(b, c, st.total, st.fresh, ++seed);
    const int64_t t = f.step.num_tokens();
    int64_t max_ctx = 0;
    for (int32_t x : st.total) max_ctx = std::max<int64_t>(max_ctx, x);
    const kernels::cuda::SplitPlan plan = kernels::cuda::plan_split_attention(
        t, c.num_kv_heads, c.num_heads, c.head_dim, max_ctx, sms);
    split_steps += plan.split() ? 1 : 0;
    const Tensor q = random_f32(t, static_cast<int64_t>(c.num_heads) * c.head_dim, seed * 7);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    Tensor want = Tensor::empty(q.shape(), DType::kF32);
    b.ref->attention(q, *f.ref_cache, Fixture::kLayer, f.step, c.num_heads, scale, want);
    Tensor out = b.gpu->alloc(q.shape(), DType::kF32);
    b.gpu->attention(b.gpu->upload(q), *f.gpu_cache, Fixture::kLayer, f.step, c.num_heads, scale,
                     out);
    expect_close_rows(b.gpu->download(out), want, tol,
                      "contexts " + join(st.total) + " new " + join(st.fresh) + " partitions " +
                          std::to_string(plan.num_partitions) + "x" +
                          std::to_string(plan.partition_tokens));
  }
  // The long-context batches of one or two tokens split on any device of 3 SMs or more.
  EXPECT_GT(split_steps, 0) << "no step took the split path on " << sms << " SMs";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaSplitAttentionTest,
    ::testing::Values(SplitCase{DType::kF32, 8, 8, 64, 16}, SplitCase{DType::kF32, 32, 8, 128, 16},
                      SplitCase{DType::kF16, 32, 4, 128, 32}, SplitCase{DType::kBF16, 16, 4, 64, 7},
                      SplitCase{DType::kBF16, 8, 1, 128, 16}, SplitCase{DType::kF16, 4, 4, 64, 16}),
    [](const ::testing::TestParamInfo<SplitCase>& param_info) {
      const SplitCase& c = param_info.param;
      return std::string(dtype_name(c.kv_dtype)) + "_h" + std::to_string(c.num_heads) + "_kv" +
             std::to_string(c.num_kv_heads) + "_d" + std::to_string(c.head_dim) + "_b" +
             std::to_string(c.block_size);
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
      EXPECT_EQ(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice),
                cudaSuccess);
    }
    return static_cast<T*>(ptr);
  }
};

// The split launcher with forced plans whatever the SM count: every tile its own partition,
// partitions that end inside a block, and plans with more partitions than a short context
// needs (those past its causal limit must stay empty), including a prefill chunk.
TEST(CudaSplitAttention, ForcedPartitionSizesMatchReference) {
  REQUIRE_CUDA_DEVICE();
  Backends b;
  const SplitCase c{DType::kF16, 16, 2, 128, 16};
  Fixture f(b, c, {257, 1, 700, 95}, {1, 1, 1, 30}, 5);
  const int64_t t = f.step.num_tokens();
  const Tensor q = random_f32(t, static_cast<int64_t>(c.num_heads) * c.head_dim, 9);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  Tensor want = Tensor::empty(q.shape(), DType::kF32);
  b.ref->attention(q, *f.ref_cache, Fixture::kLayer, f.step, c.num_heads, scale, want);
  const Tensor q_dev = b.gpu->upload(q);
  std::vector<int32_t> token_seq;
  for (int s = 0; s < f.step.num_seqs(); ++s) {
    for (int32_t i = f.step.query_start[static_cast<size_t>(s)];
         i < f.step.query_start[static_cast<size_t>(s) + 1]; ++i)
      token_seq.push_back(s);
  }
  DeviceArrays dev;
  for (int64_t partition : {32, 64, 96, 256, 1024}) {
    Tensor out = b.gpu->alloc(q.shape(), DType::kF32);
    kernels::PagedAttentionParams p = paged_attention_params(q_dev, *f.gpu_cache, Fixture::kLayer,
                                                             f.step, c.num_heads, scale, out);
    p.query_start = dev.put(f.step.query_start);
    p.kv_len = dev.put(f.step.kv_len);
    p.block_indptr = dev.put(f.step.block_indptr);
    p.block_indices = dev.put(f.step.block_indices);
    kernels::cuda::SplitPlan plan;
    plan.partition_tokens = partition;
    plan.num_partitions = std::max(2, static_cast<int>((700 + partition - 1) / partition));
    plan.workspace_bytes =
        kernels::cuda::split_workspace_bytes(t, c.num_heads, c.head_dim, plan.num_partitions);
    std::vector<float> poison(plan.workspace_bytes / sizeof(float), std::nanf(""));
    float* workspace = dev.put(poison);  // unwritten states would show up as NaN
    ASSERT_EQ(kernels::cuda::paged_attention_split_cuda(p, dev.put(token_seq), t, plan, workspace,
                                                        nullptr),
              cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    expect_close_rows(b.gpu->download(out), want, 1e-2, "partition " + std::to_string(partition));
  }
  // Plans the launcher cannot serve are refused, not run.
  kernels::PagedAttentionParams p = paged_attention_params(q_dev, *f.gpu_cache, Fixture::kLayer,
                                                           f.step, c.num_heads, scale, want);
  kernels::cuda::SplitPlan bad;
  bad.num_partitions = 4;
  bad.partition_tokens = 48;  // not whole tiles
  bad.workspace_bytes = kernels::cuda::split_workspace_bytes(t, c.num_heads, c.head_dim, 4);
  EXPECT_EQ(kernels::cuda::paged_attention_split_cuda(p, dev.put(token_seq), t, bad,
                                                      dev.put(std::vector<float>(1)), nullptr),
            cudaErrorInvalidValue);
}

RopeSpec make_rope(int rot_dim, bool neox) {
  RopeSpec rope;
  rope.rot_dim = rot_dim;
  rope.neox = neox;
  rope.attn_factor = 0.9f;
  for (int i = 0; i < rot_dim / 2; ++i)
    rope.inv_freq.push_back(std::pow(10000.0f, -2.0f * i / rot_dim));
  return rope;
}

float load(const Tensor& pool, DType dtype, int64_t index) {
  switch (dtype) {
    case DType::kF32: return static_cast<const float*>(pool.data())[index];
    case DType::kF16: return f16_to_f32(static_cast<const uint16_t*>(pool.data())[index]);
    default: return bf16_to_f32(static_cast<const uint16_t*>(pool.data())[index]);
  }
}

// The fused kernel against (1) the reference backend (q within 1e-5; K within 1e-5 relative for
// f32 caches and one rounding step of the cache type otherwise, since the reference's cos/sin
// may differ in the last bit; V bytes equal) and (2) the CUDA backend's own unfused rope and
// write_kv (bytes and q equal: the same device functions).
TEST(CudaRopeWriteKv, MatchesReferenceAndTheUnfusedOps) {
  REQUIRE_CUDA_DEVICE();
  Backends b;
  const int num_heads = 8, num_kv_heads = 2, head_dim = 40, block_size = 16;
  const std::vector<int32_t> positions{0, 1, 7, 4000, 123457, 9, 33};
  const std::vector<int64_t> slots{5, 17, 0, 63, 32, 40, 1};
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (bool neox : {false, true}) {
      for (int rot_dim : {40, 24}) {
        const std::string what = std::string(dtype_name(dt)) + " neox=" + (neox ? "1" : "0") +
                                 " rot=" + std::to_string(rot_dim);
        KvCacheSpec spec;
        spec.num_layers = 1;
        spec.num_kv_heads = num_kv_heads;
        spec.head_dim = head_dim;
        spec.block_size = block_size;
        spec.num_blocks = 4;
        spec.dtype = dt;
        KvCache ref_cache(spec, *b.ref), fused_cache(spec, *b.gpu), unfused_cache(spec, *b.gpu);
        const RopeSpec rope = make_rope(rot_dim, neox);
        const int64_t t = static_cast<int64_t>(positions.size());
        const Tensor q0 = random_f32(t, num_heads * head_dim, 1, 2.0f);
        const Tensor k0 = random_f32(t, num_kv_heads * head_dim, 2, 2.0f);
        const Tensor v0 = random_f32(t, num_kv_heads * head_dim, 3);

        Tensor q_ref = q0.clone(), k_ref = k0.clone();
        b.ref->rope_write_kv(ref_cache, 0, q_ref, num_heads, k_ref, v0, rope, positions, slots);
        Tensor q_fused = b.gpu->upload(q0), k_fused = b.gpu->upload(k0);
        b.gpu->rope_write_kv(fused_cache, 0, q_fused, num_heads, k_fused, b.gpu->upload(v0), rope,
                             positions, slots);
        Tensor q_unf = b.gpu->upload(q0), k_unf = b.gpu->upload(k0);
        b.gpu->rope(q_unf, num_heads, head_dim, rope, positions);
        b.gpu->rope(k_unf, num_kv_heads, head_dim, rope, positions);
        b.gpu->write_kv(unfused_cache, 0, k_unf, b.gpu->upload(v0), slots);

        const Tensor qf = b.gpu->download(q_fused);
        expect_close_rows(qf, q_ref, 1e-5, "q " + what);
        expect_close_rows(qf, b.gpu->download(q_unf), 0.0, "q fused vs unfused " + what);
        // k itself is left as it was (the fused kernel only reads it).
        expect_close_rows(b.gpu->download(k_fused), k0, 0.0, "k untouched " + what);

        const Tensor kf = b.gpu->download(fused_cache.k(0)), vf = b.gpu->download(fused_cache.v(0));
        const Tensor ku = b.gpu->download(unfused_cache.k(0)),
                     vu = b.gpu->download(unfused_cache.v(0));
        ASSERT_EQ(kf.nbytes(), ku.nbytes());
        EXPECT_EQ(std::memcmp(kf.data(), ku.data(), static_cast<size_t>(kf.nbytes())), 0)
            << "K fused vs unfused " << what;
        EXPECT_EQ(std::memcmp(vf.data(), vu.data(), static_cast<size_t>(vf.nbytes())), 0)
            << "V fused vs unfused " << what;
        const int64_t elem = dtype_block_bytes(dt);
        const double k_tol =
            dt == DType::kF32 ? 1e-5 : (dt == DType::kF16 ? 1.0 / 1024 : 1.0 / 128);
        for (int64_t slot : slots) {
          const int64_t block = slot / block_size, off = slot % block_size;
          for (int h = 0; h < num_kv_heads; ++h) {
            const int64_t at = ((block * num_kv_heads + h) * block_size + off) * head_dim;
            ASSERT_EQ(std::memcmp(static_cast<const char*>(vf.data()) + at * elem,
                                  static_cast<const char*>(ref_cache.v(0).data()) + at * elem,
                                  static_cast<size_t>(head_dim * elem)),
                      0)
                << "V slot " << slot << " " << what;
            for (int d = 0; d < head_dim; ++d) {
              const float want = load(ref_cache.k(0), dt, at + d), got = load(kf, dt, at + d);
              ASSERT_NEAR(got, want, k_tol * std::max(1.0f, std::fabs(want)))
                  << "K slot " << slot << " head " << h << " dim " << d << " " << what;
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace llmos

#else

TEST(CudaSplitAttention, Skipped) { GTEST_SKIP() << "built without CUDA"; }

#endif
