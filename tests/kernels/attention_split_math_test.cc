// The host-side parts of split-K paged attention (kernels/cuda/attention_split.cuh), checked on
// the CPU: the planner's choices and bounds, and that folding per-partition softmax states in
// partition order gives the one-pass softmax-weighted sum.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/attention_split.cuh"

namespace llmos::kernels::cuda {
namespace {

constexpr int kH200Sms = 132;
constexpr int kA100Sms = 108;

std::string describe(int64_t tokens, int kv_heads, int64_t ctx, int sms) {
  return "tokens=" + std::to_string(tokens) + " kv_heads=" + std::to_string(kv_heads) +
         " ctx=" + std::to_string(ctx) + " sms=" + std::to_string(sms);
}

TEST(SplitPlanner, DoesNotSplitShortContextsOrFullLaunches) {
  // Contexts shorter than two minimal partitions never split.
  for (int64_t ctx : {int64_t{1}, int64_t{31}, int64_t{257}, 2 * kSplitMinPartition - 1}) {
    EXPECT_FALSE(plan_split_attention(1, 1, 8, 128, ctx, kH200Sms).split()) << ctx;
  }
  // A launch that already has kSplitCtasPerSm CTAs per SM does not split, whatever the context.
  const int64_t full = int64_t{kSplitCtasPerSm} * kH200Sms;
  EXPECT_FALSE(plan_split_attention(full / 8, 8, 32, 128, 100000, kH200Sms).split());
  EXPECT_TRUE(plan_split_attention(full / 8 - 1, 8, 32, 128, 100000, kH200Sms).split());
  // Degenerate inputs: no split, no workspace.
  for (const SplitPlan& plan : {plan_split_attention(0, 8, 32, 128, 9000, kH200Sms),
                                plan_split_attention(1, 0, 32, 128, 9000, kH200Sms),
                                plan_split_attention(1, 8, 32, 128, 9000, 0),
                                plan_split_attention(1, 8, 32, 128, 0, kH200Sms),
                                plan_split_attention(1, 8, 32, 128, -5, kH200Sms),
                                plan_split_attention(-1, 8, 32, 128, 9000, kH200Sms)}) {
    EXPECT_FALSE(plan.split());
    EXPECT_EQ(plan.num_partitions, 1);
    EXPECT_EQ(plan.workspace_bytes, 0u);
  }
}

// The invariants of every split plan, over a grid of launch shapes.
TEST(SplitPlanner, PlansCoverTheContextWithWholeTilesAndNoSparePartitions) {
  int splits = 0;
  for (int sms : {1, 2, kA100Sms, kH200Sms, 10000}) {
    for (int64_t tokens : {1, 2, 3, 4, 7, 16, 100}) {
      for (int kv_heads : {1, 2, 4, 8, 32}) {
        for (int64_t ctx : {int64_t{1}, int64_t{512}, int64_t{513}, int64_t{3000}, int64_t{9000},
                            int64_t{131072}, int64_t{std::numeric_limits<int32_t>::max()}}) {
          const int num_heads = kv_heads * 4, head_dim = 128;
          const SplitPlan plan =
              plan_split_attention(tokens, kv_heads, num_heads, head_dim, ctx, sms);
          const std::string what = describe(tokens, kv_heads, ctx, sms);
          if (!plan.split()) {
            EXPECT_EQ(plan.num_partitions, 1) << what;
            EXPECT_EQ(plan.workspace_bytes, 0u) << what;
            continue;
          }
          ++splits;
          const int64_t base = tokens * kv_heads;
          const int64_t target = int64_t{kSplitCtasPerSm} * std::min(sms, kSplitMaxSmCount);
          EXPECT_LT(base, target) << what;
          EXPECT_GE(plan.num_partitions, 2) << what;
          EXPECT_EQ(plan.partition_tokens % kAttentionTile, 0) << what;
          EXPECT_GE(plan.partition_tokens, kSplitMinPartition) << what;
          // Covers the context, and the last partition starts inside it (none is all padding).
          EXPECT_GE(plan.num_partitions * plan.partition_tokens, ctx) << what;
          EXPECT_LT((plan.num_partitions - 1) * plan.partition_tokens, ctx) << what;
          // Never more partitions than reach the target, nor than minimal partitions fit.
          EXPECT_LE(plan.num_partitions, (target + base - 1) / base) << what;
          EXPECT_LE(plan.num_partitions, ctx / kSplitMinPartition) << what;
          EXPECT_EQ(plan.workspace_bytes,
                    split_workspace_bytes(tokens, num_heads, head_dim, plan.num_partitions))
              << what;
          // The CTA count, and so the workspace, is bounded by the device, not the context.
          EXPECT_LT(base * plan.num_partitions, 2 * target) << what;
        }
      }
    }
  }
  EXPECT_GT(splits, 50);  // the grid above exercises the split path, not only the fallback
}

TEST(SplitPlanner, ChoosesExpectedShapesOnAnH200) {
  // Batch 1, 8 KV heads, 9000 tokens: 528 CTAs wanted (66 per head), 35 partitions of 256 fit;
  // ceil(9000 / 35) = 258 rounds up to 288 (whole tiles), and 288-token partitions need 32.
  const SplitPlan a = plan_split_attention(1, 8, 32, 128, 9000, kH200Sms);
  EXPECT_EQ(a.num_partitions, 32);
  EXPECT_EQ(a.partition_tokens, 288);
  EXPECT_EQ(a.workspace_bytes, size_t{1} * 32 * 32 * (128 + 2) * sizeof(float));
  // Batch 4, 8 KV heads, 128K tokens: the CTA target (528 / 32 -> 17 partitions) binds.
  const SplitPlan b = plan_split_attention(4, 8, 32, 128, 131072, kH200Sms);
  EXPECT_EQ(b.num_partitions, 17);
  EXPECT_EQ(b.partition_tokens, 7712);
  // The largest int32 context: partitions long, counts small, nothing overflows.
  const int64_t huge = std::numeric_limits<int32_t>::max();
  const SplitPlan c = plan_split_attention(1, 1, 8, 256, huge, kH200Sms);
  EXPECT_EQ(c.num_partitions, 528);
  EXPECT_GE(c.partition_tokens * c.num_partitions, huge);
  EXPECT_EQ(c.workspace_bytes, size_t{8} * 528 * (256 + 2) * sizeof(float));
  // Absurd SM counts are capped, so the workspace stays bounded.
  const SplitPlan d = plan_split_attention(1, 1, 8, 256, huge, std::numeric_limits<int>::max());
  EXPECT_EQ(d.num_partitions, kSplitCtasPerSm * kSplitMaxSmCount);
}

TEST(SplitWorkspace, SizeFormula) {
  EXPECT_EQ(split_workspace_bytes(1, 1, 1, 2), size_t{2} * 3 * 4);
  EXPECT_EQ(split_workspace_bytes(3, 32, 128, 17), size_t{3} * 32 * 17 * 130 * 4);
  EXPECT_EQ(split_workspace_bytes(0, 32, 128, 17), 0u);
}

// One partition's state over scores[b, e): m, l and acc = sum exp(s - m) v, in T.
template <typename T>
void partition_state(const std::vector<double>& s, const std::vector<std::vector<double>>& v,
                     size_t b, size_t e, int dim, T& m, T& l, std::vector<T>& acc) {
  m = -std::numeric_limits<T>::infinity();
  l = T(0);
  acc.assign(static_cast<size_t>(dim), T(0));
  for (size_t i = b; i < e; ++i) m = std::max(m, static_cast<T>(s[i]));
  for (size_t i = b; i < e; ++i) {
    const T p = split_exp(static_cast<T>(s[i]) - m);
    l += p;
    for (int d = 0; d < dim; ++d)
      acc[static_cast<size_t>(d)] += p * static_cast<T>(v[i][static_cast<size_t>(d)]);
  }
}

// The one-pass softmax-weighted sum, in double.
std::vector<double> one_pass(const std::vector<double>& s,
                             const std::vector<std::vector<double>>& v, int dim) {
  const double m = *std::max_element(s.begin(), s.end());
  double l = 0.0;
  std::vector<double> out(static_cast<size_t>(dim), 0.0);
  for (size_t i = 0; i < s.size(); ++i) {
    const double p = std::exp(s[i] - m);
    l += p;
    for (int d = 0; d < dim; ++d) out[static_cast<size_t>(d)] += p * v[i][static_cast<size_t>(d)];
  }
  for (double& x : out) x /= l;
  return out;
}

// Folds the partitions [bounds[j], bounds[j + 1]) in order, plus `empty_every`-th empty states
// (m = -inf, l = 0 and an acc full of NaN that must never be read), and returns acc / l.
template <typename T>
std::vector<double> folded(const std::vector<double>& s, const std::vector<std::vector<double>>& v,
                           const std::vector<size_t>& bounds, int dim, int empty_every) {
  T m = -std::numeric_limits<T>::infinity(), l = T(0);
  std::vector<T> acc(static_cast<size_t>(dim), T(0)), part;
  const std::vector<T> poison(static_cast<size_t>(dim), std::numeric_limits<T>::quiet_NaN());
  for (size_t j = 0; j + 1 < bounds.size(); ++j) {
    if (empty_every > 0 && j % static_cast<size_t>(empty_every) == 0) {
      softmax_fold_into(m, l, acc.data(), -std::numeric_limits<T>::infinity(), T(0), poison.data(),
                        dim);
    }
    T m2, l2;
    partition_state(s, v, bounds[j], bounds[j + 1], dim, m2, l2, part);
    softmax_fold_into(m, l, acc.data(), m2, l2, part.data(), dim);
  }
  // Trailing empty partitions (past a token's causal limit) change nothing.
  softmax_fold_into(m, l, acc.data(), -std::numeric_limits<T>::infinity(), T(0), poison.data(),
                    dim);
  std::vector<double> out(static_cast<size_t>(dim));
  for (int d = 0; d < dim; ++d)
    out[static_cast<size_t>(d)] = static_cast<double>(acc[static_cast<size_t>(d)] / l);
  return out;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double rel,
                  const std::string& what) {
  double scale = 0.0;
  for (double w : want) scale = std::max(scale, std::fabs(w));
  ASSERT_GT(scale, 0.0) << what;
  for (size_t d = 0; d < want.size(); ++d) {
    ASSERT_NEAR(got[d], want[d], rel * scale) << what << " at " << d;
  }
}

struct FoldCase {
  size_t n;            // scores
  size_t partition;    // tokens per partition (the last one may be shorter)
  double score_scale;  // spread of the scores: large spreads make partitions' maxima differ a lot
  int empty_every;     // interleave empty states (0: none)
};

TEST(SoftmaxFold, PartitionByPartitionEqualsOnePass) {
  const int dim = 24;
  std::mt19937 rng(1234);
  for (const FoldCase& c :
       {FoldCase{1, 256, 1.0, 0}, FoldCase{31, 256, 1.0, 0}, FoldCase{257, 256, 3.0, 0},
        FoldCase{3000, 256, 5.0, 3}, FoldCase{9000, 288, 2.0, 0}, FoldCase{4096, 32, 30.0, 2},
        FoldCase{700, 700, 1.0, 1}, FoldCase{1000, 64, 200.0, 0}}) {
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> s(c.n);
    std::vector<std::vector<double>> v(c.n, std::vector<double>(dim));
    for (size_t i = 0; i < c.n; ++i) {
      s[i] = normal(rng) * c.score_scale;
      for (double& x : v[i]) x = normal(rng);
    }
    std::vector<size_t> bounds;
    for (size_t b = 0; b < c.n; b += c.partition) bounds.push_back(b);
    bounds.push_back(c.n);
    const std::string what = "n=" + std::to_string(c.n) +
                             " partition=" + std::to_string(c.partition) +
                             " spread=" + std::to_string(c.score_scale);
    const std::vector<double> want = one_pass(s, v, dim);
    // The fold's algebra, in double: equal to the one-pass result up to rounding.
    expect_close(folded<double>(s, v, bounds, dim, c.empty_every), want, 1e-6, "double " + what);
    // The f32 instantiation the kernels run: within the f32 kernels' tolerance.
    expect_close(folded<float>(s, v, bounds, dim, c.empty_every), want, 1e-5, "float " + what);
  }
}

TEST(SoftmaxFold, EmptyStatesAreSkippedAndTheFirstRealStateIsTakenAsIs) {
  float m = -INFINITY, l = 0.0f, acc[2] = {0.0f, 0.0f};
  const float nan2[2] = {NAN, NAN};
  softmax_fold_into(m, l, acc, -INFINITY, 0.0f, nan2, 2);  // empty into empty
  EXPECT_EQ(l, 0.0f);
  EXPECT_EQ(acc[0], 0.0f);
  const float a2[2] = {3.0f, -1.0f};
  softmax_fold_into(m, l, acc, 2.0f, 1.5f, a2, 2);
  EXPECT_EQ(m, 2.0f);
  EXPECT_EQ(l, 1.5f);
  EXPECT_EQ(acc[0], 3.0f);
  EXPECT_EQ(acc[1], -1.0f);
  softmax_fold_into(m, l, acc, -INFINITY, 0.0f, nan2, 2);  // empty into a real state
  EXPECT_EQ(l, 1.5f);
  EXPECT_EQ(acc[1], -1.0f);
  // A state with a larger max rescales the running one: exp(2 - 4) * (1.5, 3, -1) + (1, 1, 1).
  const float a3[2] = {1.0f, 1.0f};
  softmax_fold_into(m, l, acc, 4.0f, 1.0f, a3, 2);
  EXPECT_EQ(m, 4.0f);
  EXPECT_NEAR(l, 1.5 * std::exp(-2.0) + 1.0, 1e-6);
  EXPECT_NEAR(acc[0], 3.0 * std::exp(-2.0) + 1.0, 1e-6);
  EXPECT_NEAR(acc[1], -1.0 * std::exp(-2.0) + 1.0, 1e-6);
}

}  // namespace
}  // namespace llmos::kernels::cuda
