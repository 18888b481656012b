// The fast CPU attention (every ISA path this machine has, and the scalar one) against
// paged_attention_ref on random data: scattered block tables, decode / prefill-with-history /
// mixed batches, GQA 1..8, several head sizes and block sizes, long contexts split into
// partitions. Then batch invariance (bit-identical rows alone, in mixed batches, across plans,
// thread counts and chunkings) and the KV writes (with and without RoPE) against the references.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/rope.h"

namespace llmos::kernels::cpu {
namespace {

const Isa kAllIsas[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx512};

#define SKIP_IF_UNSUPPORTED(isa)                                                                  \
  do {                                                                                            \
    if (!isa_supported(isa)) {                                                                    \
      GTEST_SKIP() << isa_name(isa) << " is not supported by this CPU (or OS); its kernel is not run"; \
    }                                                                                             \
  } while (0)

int64_t elem_bytes(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

// A KV cache holding some sequences, and a query vector for every position of each, so that any
// "view" (sequence s, its first kv tokens, the last n of them as queries) can be batched.
struct Store {
  int heads = 0, kv_heads = 0, head_dim = 0, block_size = 0;
  DType dtype = DType::kF32;
  float scale = 1.0f;
  int64_t num_blocks = 0;
  std::vector<uint8_t> k_pool, v_pool;
  std::vector<std::vector<int32_t>> tables;  // per sequence
  std::vector<std::vector<float>> q;         // per sequence: [kv_len][heads * head_dim]
  std::vector<int> lengths;

  Store(int heads_, int kv_heads_, int head_dim_, int block_size_, DType dtype_,
        const std::vector<int>& seq_lengths, uint32_t seed, float scale_mult = 1.5f)
      : heads(heads_), kv_heads(kv_heads_), head_dim(head_dim_), block_size(block_size_),
        dtype(dtype_), lengths(seq_lengths) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    // Scores of spread ~scale_mult: the running max moves, so the rescaling is exercised.
    scale = scale_mult / std::sqrt(static_cast<float>(head_dim));
    int64_t needed = 0;
    for (int len : lengths) needed += (len + block_size - 1) / block_size;
    num_blocks = needed + 7;
    std::vector<int32_t> free_blocks(static_cast<size_t>(num_blocks));
    std::iota(free_blocks.begin(), free_blocks.end(), 0);
    std::shuffle(free_blocks.begin(), free_blocks.end(), rng);
    const int64_t row = static_cast<int64_t>(kv_heads) * head_dim;
    // Unwritten slots hold NaN (all bits set in every dtype): reading one would show.
    k_pool.assign(static_cast<size_t>(num_blocks * block_size * row * elem_bytes(dtype)), 0xff);
    v_pool = k_pool;
    size_t next = 0;
    for (int len : lengths) {
      const size_t nb = static_cast<size_t>((len + block_size - 1) / block_size);
      tables.emplace_back(free_blocks.begin() + static_cast<std::ptrdiff_t>(next),
                          free_blocks.begin() + static_cast<std::ptrdiff_t>(next + nb));
      next += nb;
      std::vector<float> k(static_cast<size_t>(len * row)), v(k.size());
      for (auto& x : k) x = normal(rng);
      for (auto& x : v) x = normal(rng);
      std::vector<int64_t> slots;
      for (int t = 0; t < len; ++t) {
        slots.push_back(int64_t{tables.back()[static_cast<size_t>(t / block_size)]} * block_size + t % block_size);
      }
      WriteKvParams w;
      w.k = k.data();
      w.v = v.data();
      w.kv_stride = row;
      w.k_pool = k_pool.data();
      w.v_pool = v_pool.data();
      w.kv_dtype = dtype;
      w.num_kv_heads = kv_heads;
      w.head_dim = head_dim;
      w.block_size = block_size;
      w.num_blocks = num_blocks;
      w.slots = slots.data();
      w.num_tokens = len;
      EXPECT_EQ(write_kv_ref(w), StatusCode::kOk);
      std::vector<float> qs(static_cast<size_t>(len) * heads * head_dim);
      for (auto& x : qs) x = normal(rng);
      q.push_back(std::move(qs));
    }
  }
};

struct View {
  int seq;
  int kv;     // KV length this step (positions [0, kv))
  int n_new;  // queries: positions kv - n_new .. kv - 1
};

// The flattened batch arrays for a list of views.
struct Batch {
  const Store* store;
  std::vector<View> views;
  std::vector<float> q, out;
  std::vector<int32_t> query_start{0}, kv_len, block_indptr{0}, block_indices;
  int64_t row = 0;

  Batch(const Store& s, std::vector<View> v) : store(&s), views(std::move(v)) {
    row = static_cast<int64_t>(s.heads) * s.head_dim;
    for (const View& view : views) {
      const std::vector<float>& qs = s.q[static_cast<size_t>(view.seq)];
      for (int pos = view.kv - view.n_new; pos < view.kv; ++pos) {
        q.insert(q.end(), qs.begin() + pos * row, qs.begin() + (pos + 1) * row);
      }
      query_start.push_back(query_start.back() + view.n_new);
      kv_len.push_back(view.kv);
      const std::vector<int32_t>& table = s.tables[static_cast<size_t>(view.seq)];
      block_indices.insert(block_indices.end(), table.begin(),
                           table.begin() + (view.kv + s.block_size - 1) / s.block_size);
      block_indptr.push_back(static_cast<int32_t>(block_indices.size()));
    }
    out.assign(q.size(), std::nanf(""));
  }

  PagedAttentionParams params() {
    PagedAttentionParams p;
    p.q = q.data();
    p.q_stride = row;
    p.out = out.data();
    p.out_stride = row;
    p.k_pool = store->k_pool.data();
    p.v_pool = store->v_pool.data();
    p.kv_dtype = store->dtype;
    p.num_heads = store->heads;
    p.num_kv_heads = store->kv_heads;
    p.head_dim = store->head_dim;
    p.block_size = store->block_size;
    p.num_seqs = static_cast<int>(views.size());
    p.query_start = query_start.data();
    p.kv_len = kv_len.data();
    p.block_indptr = block_indptr.data();
    p.block_indices = block_indices.data();
    p.scale = store->scale;
    return p;
  }

  // Output row of (view index, query j).
  const float* out_row(size_t v, int j) const { return out.data() + (query_start[v] + j) * row; }
};

std::vector<float> run_ref(Batch& b) {
  PagedAttentionParams p = b.params();
  EXPECT_EQ(validate_paged_attention(p, b.store->num_blocks), StatusCode::kOk);
  int max_kv = 1;
  for (int32_t len : b.kv_len) max_kv = std::max(max_kv, len);
  std::vector<double> scratch(static_cast<size_t>(max_kv));
  EXPECT_EQ(paged_attention_ref(p, 0, int64_t{b.query_start.back()} * b.store->heads, scratch.data()),
            StatusCode::kOk);
  return b.out;
}

enum class Order { kPlan, kReversed };

// Runs the fast path: plan for `plan_threads`, items in the given order on rotating scratch
// slots (as threads would take them), each naming the item run after it for prefetching, then
// the combines.
std::vector<float> run_cpu(Isa isa, Batch& b, int plan_threads, Order order = Order::kPlan) {
  std::fill(b.out.begin(), b.out.end(), std::nanf(""));
  PagedAttentionParams p = b.params();
  AttentionPlan plan;
  EXPECT_EQ(attention_plan(p, plan_threads, &plan), StatusCode::kOk);
  std::vector<float> ws(attention_workspace_bytes(plan) / sizeof(float) + 1);
  const int64_t n = static_cast<int64_t>(plan.items.size());
  auto item_at = [&](int64_t k) { return order == Order::kPlan ? k : n - 1 - k; };
  for (int64_t k = 0; k < n; ++k) {
    const int64_t following = k + 1 < n ? item_at(k + 1) : -1;
    EXPECT_EQ(attention_run(isa, p, plan, item_at(k), item_at(k) + 1, ws.data(),
                            static_cast<int>(k % plan_threads), following),
              StatusCode::kOk);
  }
  EXPECT_EQ(attention_combine(isa, p, plan, 0, static_cast<int64_t>(plan.combines.size()), ws.data()),
            StatusCode::kOk);
  return b.out;
}

// Largest |out - ref| over the batch.
double max_error(const std::vector<float>& out, const std::vector<float>& ref) {
  double err = 0.0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) return INFINITY;
    err = std::max(err, std::fabs(static_cast<double>(out[i]) - ref[i]));
  }
  return err;
}

// The reference reads the same rounded K/V values as the kernel (f16 and bf16 included), so only
// the f32 accumulation order differs (head_dim-long dot products, online rescaling, ~1 ulp exp).
// Outputs are convex combinations of V rows whose entries are N(0, 1): the output scale is ~1,
// and the largest error seen over all cases is ~2.5e-6.
constexpr double kTolerance = 1e-5;

struct Case {
  const char* name;
  int heads, kv_heads, head_dim, block_size;
  std::vector<int> lengths;
  std::vector<View> views;  // empty: each sequence with its full length and n_new from below
  std::vector<int> n_new;
};

std::vector<Case> cases() {
  std::vector<Case> c;
  c.push_back({"decode_gqa4_d64_bs16", 16, 4, 64, 16, {1, 17, 255, 256, 257, 300, 513, 40}, {}, {1, 1, 1, 1, 1, 1, 1, 1}});
  c.push_back({"decode_mha_d128_bs4", 4, 4, 128, 4, {3, 33, 129, 270}, {}, {1, 1, 1, 1}});
  c.push_back({"prefill_with_history_gqa2_d64_bs16", 8, 4, 64, 16, {100, 300, 37}, {}, {37, 300, 37}});
  c.push_back({"prefill_chunk_over_partition_gqa8_d128_bs16", 16, 2, 128, 16, {600, 90}, {}, {90, 90}});
  c.push_back({"mixed_gqa4_d80_bs1", 8, 2, 80, 1, {50, 7, 280, 19}, {}, {20, 1, 1, 19}});
  c.push_back({"mixed_gqa2_d64_bs5", 4, 2, 64, 5, {61, 260, 2, 99}, {}, {61, 1, 2, 33}});
  c.push_back({"mixed_gqa1_d48_bs32", 3, 3, 48, 32, {70, 515, 33}, {}, {1, 70, 33}});
  c.push_back({"long_decode_3000_gqa4_d64", 16, 4, 64, 16, {3000}, {}, {1}});
  c.push_back({"long_decode_3000_gqa8_d128_bs4", 8, 1, 128, 4, {3000, 5}, {}, {1, 1}});
  c.push_back({"odd_head_dim_24_scalar_fallback", 4, 2, 24, 4, {40, 9}, {}, {5, 1}});
  c.push_back({"head_dim_16_gqa4", 8, 2, 16, 16, {20, 300}, {}, {20, 1}});
  return c;
}

class AttentionCpuTest : public ::testing::TestWithParam<std::tuple<Isa, DType>> {};

TEST_P(AttentionCpuTest, MatchesReference) {
  const auto [isa, dtype] = GetParam();
  SKIP_IF_UNSUPPORTED(isa);
  uint32_t seed = 1;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const Store store(c.heads, c.kv_heads, c.head_dim, c.block_size, dtype, c.lengths, seed++);
    std::vector<View> views;
    for (size_t s = 0; s < c.lengths.size(); ++s) views.push_back({static_cast<int>(s), c.lengths[s], c.n_new[s]});
    Batch b(store, views);
    const std::vector<float> ref = run_ref(b);
    for (int threads : {1, 2, 5}) {
      SCOPED_TRACE("plan threads " + std::to_string(threads));
      const std::vector<float> out = run_cpu(isa, b, threads);
      EXPECT_LE(max_error(out, ref), kTolerance);
    }
  }
}

TEST_P(AttentionCpuTest, LongDecodeIsSplitIntoPartitions) {
  const auto [isa, dtype] = GetParam();
  SKIP_IF_UNSUPPORTED(isa);
  const Store store(16, 4, 64, 16, dtype, {3000}, 77);
  Batch b(store, {{0, 3000, 1}});
  PagedAttentionParams p = b.params();
  AttentionPlan plan;
  ASSERT_EQ(attention_plan(p, 2, &plan), StatusCode::kOk);
  // 4 KV heads x 12 partitions of 256 tokens, folded by 4 combines.
  EXPECT_EQ(plan.items.size(), 4u * 12u);
  EXPECT_EQ(plan.combines.size(), 4u);
  const std::vector<float> ref = run_ref(b);
  EXPECT_LE(max_error(run_cpu(isa, b, 2), ref), kTolerance);
}

INSTANTIATE_TEST_SUITE_P(
    IsasAndDtypes, AttentionCpuTest,
    ::testing::Combine(::testing::ValuesIn(kAllIsas), ::testing::Values(DType::kF16, DType::kBF16, DType::kF32)),
    [](const auto& param_info) {
      return std::string(isa_name(std::get<0>(param_info.param))) + "_" + std::string(dtype_name(std::get<1>(param_info.param)));
    });

// ---- batch invariance ----------------------------------------------------------------------

class AttentionInvarianceTest : public ::testing::TestWithParam<Isa> {};

bool same_bits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, sizeof(float) * n) == 0; }

TEST_P(AttentionInvarianceTest, RowsDoNotDependOnTheBatchOrTheSplit) {
  const Isa isa = GetParam();
  SKIP_IF_UNSUPPORTED(isa);
  for (DType dtype : {DType::kF16, DType::kF32}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    const Store store(16, 4, 64, 16, dtype, {1200, 300, 75, 2000, 9}, 5);
    const std::vector<View> mixed{{0, 1200, 1}, {1, 300, 120}, {2, 75, 75}, {3, 2000, 1}, {4, 9, 1}};
    Batch batch(store, mixed);
    const std::vector<float> base = run_cpu(isa, batch, 1);
    const int64_t row = batch.row;
    // Other plans (more splitting), other item orders and scratch slots.
    for (int threads : {2, 3, 16}) {
      for (Order order : {Order::kPlan, Order::kReversed}) {
        const std::vector<float> other = run_cpu(isa, batch, threads, order);
        EXPECT_TRUE(same_bits(other.data(), base.data(), static_cast<int64_t>(base.size())))
            << "plan threads " << threads;
      }
    }
    // Real threads.
    {
      ThreadPool pool(2);
      std::fill(batch.out.begin(), batch.out.end(), std::nanf(""));
      PagedAttentionParams p = batch.params();
      AttentionPlan plan;
      ASSERT_EQ(attention_plan(p, 2, &plan), StatusCode::kOk);
      std::vector<float> ws(attention_workspace_bytes(plan) / sizeof(float) + 1);
      ASSERT_EQ(attention_forward(pool, isa, p, plan, ws.data()), StatusCode::kOk);
      EXPECT_TRUE(same_bits(batch.out.data(), base.data(), static_cast<int64_t>(base.size())));
    }
    // Each sequence alone, with 1 and 2 plan threads.
    for (size_t s = 0; s < mixed.size(); ++s) {
      Batch alone(store, {mixed[s]});
      for (int threads : {1, 2}) {
        run_cpu(isa, alone, threads);
        EXPECT_TRUE(same_bits(alone.out.data(), batch.out_row(s, 0), mixed[s].n_new * row))
            << "sequence " << s << " alone, plan threads " << threads;
      }
    }
    // Prefill rows equal decode rows and rows of other chunkings: sequence 1's 120 queries as one
    // decode each, and as chunks of 50 + 70.
    for (int j = 0; j < 120; j += 7) {
      Batch decode(store, {{4, 9, 1}, {1, 300 - 120 + j + 1, 1}});
      run_cpu(isa, decode, 2);
      EXPECT_TRUE(same_bits(decode.out_row(1, 0), batch.out_row(1, j), row)) << "query " << j;
    }
    Batch chunks(store, {{1, 230, 50}, {0, 1200, 1}, {1, 300, 70}});
    run_cpu(isa, chunks, 2);
    EXPECT_TRUE(same_bits(chunks.out_row(0, 0), batch.out_row(1, 0), 50 * row));
    EXPECT_TRUE(same_bits(chunks.out_row(2, 0), batch.out_row(1, 50), 70 * row));
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, AttentionInvarianceTest, ::testing::ValuesIn(kAllIsas),
                         [](const auto& param_info) { return std::string(isa_name(param_info.param)); });

// ---- plans and argument checks ---------------------------------------------------------------

TEST(AttentionPlan, ItemsCoverEveryRowOnce) {
  const Store store(8, 2, 64, 16, DType::kF16, {700, 40, 3000, 1}, 9);
  for (int threads : {1, 2, 8}) {
    Batch b(store, {{0, 700, 130}, {1, 40, 1}, {2, 3000, 1}, {3, 1, 1}});
    PagedAttentionParams p = b.params();
    AttentionPlan plan;
    ASSERT_EQ(attention_plan(p, threads, &plan), StatusCode::kOk);
    // (token, kv head) -> partitions covered
    std::vector<int> covered(static_cast<size_t>(b.query_start.back()) * 2, 0);
    for (const AttentionWorkItem& it : plan.items) {
      EXPECT_LE(it.q_count * 4, std::max(kAttentionTileRows, 4));
      if (it.partial >= 0) {
        EXPECT_EQ(it.part_end, it.part_begin + 1);
      }
      for (int j = 0; j < it.q_count; ++j) covered[static_cast<size_t>(it.q_begin + j) * 2 + it.kv_head] += it.part_end - it.part_begin;
    }
    for (size_t v = 0; v < b.views.size(); ++v) {
      for (int j = 0; j < b.views[v].n_new; ++j) {
        const int pos = b.views[v].kv - b.views[v].n_new + j;
        // A tile's partitions reach its last token; earlier tokens are covered at least once.
        for (int h = 0; h < 2; ++h) {
          EXPECT_GE(covered[static_cast<size_t>(b.query_start[v] + j) * 2 + h], pos / kAttentionPartition + 1);
        }
      }
    }
    if (threads == 1) {
      EXPECT_TRUE(plan.combines.empty());
    }
    if (threads == 8) {
      EXPECT_FALSE(plan.combines.empty());
    }
    for (size_t i = 1; i < plan.items.size(); ++i) EXPECT_GE(plan.items[i - 1].cost, plan.items[i].cost);
  }
}

TEST(AttentionPlan, RejectsBadArguments) {
  const Store store(8, 2, 64, 16, DType::kF16, {20}, 3);
  Batch b(store, {{0, 20, 4}});
  PagedAttentionParams p = b.params();
  AttentionPlan plan;
  EXPECT_EQ(attention_plan(p, 0, &plan), StatusCode::kInvalidArgument);
  EXPECT_EQ(attention_plan(p, 1, nullptr), StatusCode::kInvalidArgument);
  b.kv_len[0] = 3;  // fewer KV entries than queries
  EXPECT_EQ(attention_plan(b.params(), 1, &plan), StatusCode::kInvalidArgument);
  b.kv_len[0] = 20;
  PagedAttentionParams bad = b.params();
  bad.num_kv_heads = 3;
  EXPECT_EQ(attention_plan(bad, 1, &plan), StatusCode::kInvalidArgument);

  ASSERT_EQ(attention_plan(b.params(), 1, &plan), StatusCode::kOk);
  std::vector<float> ws(attention_workspace_bytes(plan) / sizeof(float) + 1);
  PagedAttentionParams other = b.params();
  other.head_dim = 32;  // not the plan's shape
  EXPECT_EQ(attention_run(Isa::kScalar, other, plan, 0, 1, ws.data(), 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(attention_run(Isa::kScalar, b.params(), plan, 0, 99, ws.data(), 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(attention_run(Isa::kScalar, b.params(), plan, 0, 1, ws.data(), 1), StatusCode::kInvalidArgument);
  EXPECT_EQ(attention_run(Isa::kScalar, b.params(), plan, 0, 1, ws.data(), 0, 99), StatusCode::kInvalidArgument);
  EXPECT_EQ(attention_run(Isa::kScalar, b.params(), plan, 0, 1, ws.data(), 0, -2), StatusCode::kInvalidArgument);
  EXPECT_EQ(attention_run(Isa::kScalar, b.params(), plan, 0, 1, nullptr, 0), StatusCode::kInvalidArgument);
  for (Isa isa : kAllIsas) {
    if (!isa_supported(isa)) {
      EXPECT_EQ(attention_run(isa, b.params(), plan, 0, 1, ws.data(), 0), StatusCode::kUnsupported);
    }
  }
}

// ---- KV writes -------------------------------------------------------------------------------

// Random values plus the awkward ones: ties in f16 and bf16, subnormals, values that round to
// infinity, signed zeros, the default NaN.
std::vector<float> awkward_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const float specials[] = {0.0f, -0.0f, 1.0f + 1.0f / 2048.0f, 1.0f + 3.0f / 2048.0f, 65519.0f, 65520.0f,
                            -70000.0f, 1e-6f, -3e-8f, 6.1e-5f, 1e-40f, bits_to_f32(0x3f808000u),
                            bits_to_f32(0x3f818000u), INFINITY, -INFINITY, std::nanf("")};
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = (i % 5 == 0) ? specials[(i / 5) % (sizeof(specials) / sizeof(specials[0]))] : normal(rng);
  }
  return v;
}

struct KvWriteFixture {
  int kv_heads, head_dim, block_size;
  DType dtype;
  int64_t num_blocks = 6, tokens = 9;
  std::vector<float> k, v;
  std::vector<int64_t> slots;
  std::vector<uint8_t> k_ref, v_ref, k_out, v_out;

  KvWriteFixture(int kv_heads_, int head_dim_, int block_size_, DType dtype_, uint32_t seed)
      : kv_heads(kv_heads_), head_dim(head_dim_), block_size(block_size_), dtype(dtype_) {
    const int64_t row = static_cast<int64_t>(kv_heads) * head_dim + 3;  // padded rows: stride != width
    k = awkward_values(static_cast<size_t>(tokens * row), seed);
    v = awkward_values(static_cast<size_t>(tokens * row), seed + 1);
    std::mt19937 rng(seed);
    std::vector<int64_t> all(static_cast<size_t>(num_blocks * block_size));
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    slots.assign(all.begin(), all.begin() + tokens);
    const size_t bytes = static_cast<size_t>(num_blocks * block_size * kv_heads * head_dim * elem_bytes(dtype));
    k_ref.assign(bytes, 0x5a);
    v_ref = k_ref;
    k_out = k_ref;
    v_out = k_ref;
  }
  WriteKvParams params(std::vector<uint8_t>& kp, std::vector<uint8_t>& vp, const float* kk) const {
    WriteKvParams w;
    w.k = kk;
    w.v = v.data();
    w.kv_stride = static_cast<int64_t>(kv_heads) * head_dim + 3;
    w.k_pool = kp.data();
    w.v_pool = vp.data();
    w.kv_dtype = dtype;
    w.num_kv_heads = kv_heads;
    w.head_dim = head_dim;
    w.block_size = block_size;
    w.num_blocks = num_blocks;
    w.slots = slots.data();
    w.num_tokens = tokens;
    return w;
  }
};

class KvWriteTest : public ::testing::TestWithParam<std::tuple<Isa, DType>> {};

TEST_P(KvWriteTest, WriteKvEqualsReferenceBitForBit) {
  const auto [isa, dtype] = GetParam();
  SKIP_IF_UNSUPPORTED(isa);
  for (int head_dim : {64, 128, 80, 7, 20}) {
    SCOPED_TRACE("head_dim " + std::to_string(head_dim));
    KvWriteFixture f(2, head_dim, 4, dtype, static_cast<uint32_t>(head_dim));
    ASSERT_EQ(write_kv_ref(f.params(f.k_ref, f.v_ref, f.k.data())), StatusCode::kOk);
    const WriteKvParams w = f.params(f.k_out, f.v_out, f.k.data());
    ASSERT_EQ(write_kv_cpu(isa, w, 0, 4), StatusCode::kOk);  // two ranges, as threads would
    ASSERT_EQ(write_kv_cpu(isa, w, 4, f.tokens), StatusCode::kOk);
    EXPECT_TRUE(f.k_out == f.k_ref);
    EXPECT_TRUE(f.v_out == f.v_ref);
  }
}

TEST_P(KvWriteTest, WriteKvRopeEqualsRopeRefThenWriteKvRef) {
  const auto [isa, dtype] = GetParam();
  SKIP_IF_UNSUPPORTED(isa);
  struct RopeCase {
    int head_dim, rot_dim;
    bool neox;
    float attn_factor;
  };
  for (const RopeCase& rc : {RopeCase{64, 64, false, 1.0f}, RopeCase{128, 128, true, 1.0f},
                             RopeCase{80, 32, true, 1.1f}, RopeCase{64, 48, false, 0.9f}}) {
    SCOPED_TRACE("head_dim " + std::to_string(rc.head_dim) + " rot_dim " + std::to_string(rc.rot_dim) +
                 (rc.neox ? " neox" : " normal"));
    KvWriteFixture f(3, rc.head_dim, 16, dtype, static_cast<uint32_t>(rc.rot_dim));
    // Finite inputs only: rope_ref mixes the pair, so an infinity would make NaN payloads.
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    for (auto& x : f.k) x = normal(rng);
    std::vector<int32_t> positions(static_cast<size_t>(f.tokens));
    for (auto& pos : positions) pos = static_cast<int32_t>(rng() % 40000);
    std::vector<float> inv_freq(static_cast<size_t>(rc.rot_dim / 2));
    for (size_t i = 0; i < inv_freq.size(); ++i) {
      inv_freq[i] = static_cast<float>(std::pow(10000.0, -2.0 * static_cast<double>(i) / rc.rot_dim));
    }
    // Reference: rope_ref on a copy of K, then write_kv_ref.
    std::vector<float> k_rot = f.k;
    RopeParams rp;
    rp.x = k_rot.data();
    rp.x_stride = static_cast<int64_t>(f.kv_heads) * rc.head_dim + 3;
    rp.rows = f.tokens;
    rp.heads = f.kv_heads;
    rp.head_dim = rc.head_dim;
    rp.rot_dim = rc.rot_dim;
    rp.positions = positions.data();
    rp.inv_freq = inv_freq.data();
    rp.attn_factor = rc.attn_factor;
    rp.neox = rc.neox;
    ASSERT_EQ(rope_ref(rp, 0, f.tokens), StatusCode::kOk);
    ASSERT_EQ(write_kv_ref(f.params(f.k_ref, f.v_ref, k_rot.data())), StatusCode::kOk);

    KvRope rope;
    rope.positions = positions.data();
    rope.inv_freq = inv_freq.data();
    rope.rot_dim = rc.rot_dim;
    rope.attn_factor = rc.attn_factor;
    rope.neox = rc.neox;
    const WriteKvParams w = f.params(f.k_out, f.v_out, f.k.data());
    ASSERT_EQ(write_kv_rope_cpu(isa, w, rope, 0, f.tokens), StatusCode::kOk);
    EXPECT_TRUE(f.k_out == f.k_ref);
    EXPECT_TRUE(f.v_out == f.v_ref);
    // Same through a precomputed cos/sin table.
    std::vector<double> table(static_cast<size_t>(f.tokens * rc.rot_dim));
    ASSERT_EQ(rope_cos_sin_table(rope, 0, f.tokens, table.data()), StatusCode::kOk);
    rope.cos_sin = table.data();
    std::fill(f.k_out.begin(), f.k_out.end(), 0);
    ASSERT_EQ(write_kv_rope_cpu(isa, w, rope, 0, 5), StatusCode::kOk);
    ASSERT_EQ(write_kv_rope_cpu(isa, w, rope, 5, f.tokens), StatusCode::kOk);
    // Untouched slots differ (0 vs 0x5a); compare the written rows only.
    const int64_t eb = elem_bytes(dtype);
    for (int64_t t = 0; t < f.tokens; ++t) {
      const int64_t block = f.slots[static_cast<size_t>(t)] / f.block_size, off = f.slots[static_cast<size_t>(t)] % f.block_size;
      for (int h = 0; h < f.kv_heads; ++h) {
        const int64_t at = ((block * f.kv_heads + h) * f.block_size + off) * rc.head_dim * eb;
        EXPECT_EQ(std::memcmp(f.k_out.data() + at, f.k_ref.data() + at, static_cast<size_t>(rc.head_dim * eb)), 0)
            << "token " << t << " head " << h;
      }
    }
  }
}

TEST(KvWrite, RejectsBadArguments) {
  KvWriteFixture f(1, 16, 4, DType::kF16, 1);
  WriteKvParams w = f.params(f.k_out, f.v_out, f.k.data());
  f.slots[3] = f.num_blocks * f.block_size;  // one past the pool
  EXPECT_EQ(write_kv_cpu(Isa::kScalar, w, 0, f.tokens), StatusCode::kInvalidArgument);
  f.slots[3] = -1;
  EXPECT_EQ(write_kv_cpu(Isa::kScalar, w, 0, f.tokens), StatusCode::kInvalidArgument);
  f.slots[3] = 0;
  EXPECT_EQ(write_kv_cpu(Isa::kScalar, w, 0, f.tokens + 1), StatusCode::kInvalidArgument);
  w.kv_dtype = DType::kQ8_0;
  EXPECT_EQ(write_kv_cpu(Isa::kScalar, w, 0, 1), StatusCode::kInvalidArgument);
  w.kv_dtype = DType::kF16;
  KvRope rope;
  int32_t positions[16] = {};
  float inv_freq[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  rope.positions = positions;
  rope.inv_freq = inv_freq;
  rope.rot_dim = 18;  // more than head_dim
  EXPECT_EQ(write_kv_rope_cpu(Isa::kScalar, w, rope, 0, 1), StatusCode::kInvalidArgument);
  rope.rot_dim = 7;  // odd
  EXPECT_EQ(write_kv_rope_cpu(Isa::kScalar, w, rope, 0, 1), StatusCode::kInvalidArgument);
  rope.rot_dim = 16;
  EXPECT_EQ(write_kv_rope_cpu(Isa::kScalar, w, rope, 0, 1), StatusCode::kOk);
}

INSTANTIATE_TEST_SUITE_P(
    IsasAndDtypes, KvWriteTest,
    ::testing::Combine(::testing::ValuesIn(kAllIsas), ::testing::Values(DType::kF16, DType::kBF16, DType::kF32)),
    [](const auto& param_info) {
      return std::string(isa_name(std::get<0>(param_info.param))) + "_" + std::string(dtype_name(std::get<1>(param_info.param)));
    });

}  // namespace
}  // namespace llmos::kernels::cpu
