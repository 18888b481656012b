// Paged attention and KV writes against a naive contiguous computation in double precision:
// scattered block tables, GQA, a batch mixing prefill chunks and decodes, every KV dtype.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <numeric>
#include <random>

#include "core/half.h"
#include "kernels/attention.h"

namespace llmos::kernels {
namespace {

struct SeqSpec {
  int kv_len;
  int n_new;
};

class PagedAttentionTest : public ::testing::TestWithParam<DType> {};

float round_to(DType dtype, float v) {
  if (dtype == DType::kF16) return f16_to_f32(f32_to_f16(v));
  if (dtype == DType::kBF16) return bf16_to_f32(f32_to_bf16(v));
  return v;
}

TEST_P(PagedAttentionTest, MatchesContiguousReference) {
  const DType kv_dtype = GetParam();
  const int heads = 8, kv_heads = 2, head_dim = 16, block_size = 4;
  const std::vector<SeqSpec> seqs{{13, 13}, {9, 1}, {21, 5}, {1, 1}};
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);

  // Assign each sequence a random, non-contiguous set of blocks.
  int total_blocks = 0;
  for (const auto& s : seqs) total_blocks += (s.kv_len + block_size - 1) / block_size;
  const int num_blocks = total_blocks + 5;
  std::vector<int32_t> free_blocks(static_cast<size_t>(num_blocks));
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(), rng);

  // Contiguous K/V per sequence (the reference's view) and the paged pools (the kernel's).
  const int64_t row = static_cast<int64_t>(kv_heads) * head_dim;
  const size_t elem = static_cast<size_t>(dtype_block_bytes(kv_dtype));
  std::vector<uint8_t> k_pool(static_cast<size_t>(num_blocks) * block_size * row * elem);
  std::vector<uint8_t> v_pool(k_pool.size());
  std::vector<std::vector<float>> k_seq, v_seq;
  std::vector<int32_t> query_start{0}, kv_len, block_indptr{0}, block_indices;
  int next_free = 0;
  int64_t total_tokens = 0;
  for (const auto& s : seqs) {
    const int n_blocks = (s.kv_len + block_size - 1) / block_size;
    std::vector<int32_t> table(free_blocks.begin() + next_free, free_blocks.begin() + next_free + n_blocks);
    next_free += n_blocks;
    std::vector<float> k(static_cast<size_t>(s.kv_len * row)), v(k.size());
    for (auto& x : k) x = normal(rng);
    for (auto& x : v) x = normal(rng);
    // Write through the kernel, then keep the rounded values for the reference.
    std::vector<int64_t> slots;
    for (int t = 0; t < s.kv_len; ++t) slots.push_back(static_cast<int64_t>(table[t / block_size]) * block_size + t % block_size);
    WriteKvParams w;
    w.k = k.data();
    w.v = v.data();
    w.kv_stride = row;
    w.k_pool = k_pool.data();
    w.v_pool = v_pool.data();
    w.kv_dtype = kv_dtype;
    w.num_kv_heads = kv_heads;
    w.head_dim = head_dim;
    w.block_size = block_size;
    w.num_blocks = num_blocks;
    w.slots = slots.data();
    w.num_tokens = s.kv_len;
    ASSERT_EQ(write_kv_ref(w), StatusCode::kOk);
    for (auto& x : k) x = round_to(kv_dtype, x);
    for (auto& x : v) x = round_to(kv_dtype, x);
    k_seq.push_back(std::move(k));
    v_seq.push_back(std::move(v));
    total_tokens += s.n_new;
    query_start.push_back(static_cast<int32_t>(total_tokens));
    kv_len.push_back(s.kv_len);
    block_indices.insert(block_indices.end(), table.begin(), table.end());
    block_indptr.push_back(static_cast<int32_t>(block_indices.size()));
  }

  const int64_t q_row = static_cast<int64_t>(heads) * head_dim;
  std::vector<float> q(static_cast<size_t>(total_tokens * q_row)), out(q.size(), -1.0f);
  for (auto& x : q) x = normal(rng);
  PagedAttentionParams p;
  p.q = q.data();
  p.q_stride = q_row;
  p.out = out.data();
  p.out_stride = q_row;
  p.k_pool = k_pool.data();
  p.v_pool = v_pool.data();
  p.kv_dtype = kv_dtype;
  p.num_heads = heads;
  p.num_kv_heads = kv_heads;
  p.head_dim = head_dim;
  p.block_size = block_size;
  p.num_seqs = static_cast<int>(seqs.size());
  p.query_start = query_start.data();
  p.kv_len = kv_len.data();
  p.block_indptr = block_indptr.data();
  p.block_indices = block_indices.data();
  p.scale = 0.25f;
  ASSERT_EQ(validate_paged_attention(p, num_blocks), StatusCode::kOk);
  std::vector<double> scratch(64);
  // Split the work in two uneven ranges, as the thread pool would.
  const int64_t items = total_tokens * heads;
  ASSERT_EQ(paged_attention_ref(p, 0, items / 3, scratch.data()), StatusCode::kOk);
  ASSERT_EQ(paged_attention_ref(p, items / 3, items, scratch.data()), StatusCode::kOk);

  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int j = 0; j < seqs[s].n_new; ++j) {
      const int64_t token = query_start[s] + j;
      const int pos = seqs[s].kv_len - seqs[s].n_new + j;
      for (int h = 0; h < heads; ++h) {
        const int kvh = h / (heads / kv_heads);
        Eigen::Map<const Eigen::VectorXf> qv(q.data() + token * q_row + h * head_dim, head_dim);
        Eigen::VectorXd scores(pos + 1);
        for (int t = 0; t <= pos; ++t) {
          Eigen::Map<const Eigen::VectorXf> kv(k_seq[s].data() + t * row + kvh * head_dim, head_dim);
          scores(t) = qv.cast<double>().dot(kv.cast<double>()) * 0.25;
        }
        scores = (scores.array() - scores.maxCoeff()).exp();
        scores /= scores.sum();
        Eigen::VectorXd expected = Eigen::VectorXd::Zero(head_dim);
        for (int t = 0; t <= pos; ++t) {
          Eigen::Map<const Eigen::VectorXf> vv(v_seq[s].data() + t * row + kvh * head_dim, head_dim);
          expected += scores(t) * vv.cast<double>();
        }
        for (int d = 0; d < head_dim; ++d) {
          EXPECT_NEAR(out[static_cast<size_t>(token * q_row + h * head_dim + d)], expected(d), 1e-5)
              << "seq " << s << " token " << j << " head " << h << " dim " << d;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(KvDTypes, PagedAttentionTest, ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& param_info) { return std::string(dtype_name(param_info.param)); });

TEST(PagedAttentionValidation, RejectsInconsistentBatches) {
  float q[16] = {1}, out[16];
  float pool[64] = {};
  int32_t query_start[] = {0, 2};
  int32_t kv_len[] = {2};
  int32_t block_indptr[] = {0, 1};
  int32_t block_indices[] = {0};
  PagedAttentionParams p;
  p.q = q;
  p.q_stride = 8;
  p.out = out;
  p.out_stride = 8;
  p.k_pool = pool;
  p.v_pool = pool;
  p.num_heads = 2;
  p.num_kv_heads = 1;
  p.head_dim = 4;
  p.block_size = 4;
  p.num_seqs = 1;
  p.query_start = query_start;
  p.kv_len = kv_len;
  p.block_indptr = block_indptr;
  p.block_indices = block_indices;
  EXPECT_EQ(validate_paged_attention(p, 2), StatusCode::kOk);
  kv_len[0] = 5;  // 5 tokens do not fit one block of 4
  EXPECT_EQ(validate_paged_attention(p, 2), StatusCode::kInvalidArgument);
  kv_len[0] = 1;  // fewer KV entries than new tokens
  EXPECT_EQ(validate_paged_attention(p, 2), StatusCode::kInvalidArgument);
  kv_len[0] = 2;
  block_indices[0] = 2;  // block id outside the pool
  EXPECT_EQ(validate_paged_attention(p, 2), StatusCode::kInvalidArgument);
  block_indices[0] = 0;
  p.num_kv_heads = 3;  // heads not a multiple of KV heads
  EXPECT_EQ(validate_paged_attention(p, 2), StatusCode::kInvalidArgument);
  p.num_kv_heads = 1;
  p.kv_dtype = DType::kQ8_0;  // not a KV cache dtype
  EXPECT_EQ(validate_paged_attention(p, 2), StatusCode::kInvalidArgument);
}

TEST(WriteKv, RejectsSlotsOutsideThePool) {
  float k[4] = {1, 2, 3, 4}, pool[16];
  int64_t slots[] = {4};
  WriteKvParams w;
  w.k = k;
  w.v = k;
  w.kv_stride = 4;
  w.k_pool = pool;
  w.v_pool = pool;
  w.num_kv_heads = 1;
  w.head_dim = 4;
  w.block_size = 4;
  w.num_blocks = 1;
  w.slots = slots;
  w.num_tokens = 1;
  EXPECT_EQ(write_kv_ref(w), StatusCode::kInvalidArgument);
  slots[0] = 3;
  EXPECT_EQ(write_kv_ref(w), StatusCode::kOk);
  EXPECT_EQ(pool[12], 1.0f);
  EXPECT_EQ(pool[15], 4.0f);
}

}  // namespace
}  // namespace llmos::kernels
