// The host-side tiling plan of the tensor-core prefill attention kernel
// (kernels/cuda/attention_prefill_plan.h), checked on the CPU: every (token, query head) row of
// a batch is covered by exactly one (tile, KV head) item, each tile's KV range reaches its last
// row's causal limit and no further, and attention computed tile by tile over exactly those
// ranges (the kernel's walk, in double) equals the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cuda/attention_prefill_plan.h"

namespace llmos::kernels::cuda {
namespace {

struct BatchDesc {
  std::vector<int32_t> query_start{0};
  std::vector<int32_t> kv_len;
  // A sequence of `total` KV tokens whose last `fresh` are this step's queries.
  BatchDesc& add(int32_t total, int32_t fresh) {
    query_start.push_back(query_start.back() + fresh);
    kv_len.push_back(total);
    return *this;
  }
  int num_seqs() const { return static_cast<int>(kv_len.size()); }
};

PrefillPlan make_plan(const BatchDesc& b, int group, int tile_rows = kPrefillTileRows,
                      int kv_tile = kPrefillKvTile) {
  PrefillPlan plan;
  EXPECT_TRUE(plan_prefill_attention(b.query_start.data(), b.kv_len.data(), b.num_seqs(), group,
                                     tile_rows, kv_tile, &plan));
  return plan;
}

// Expands (tile, KV head) items into (token, query head) rows and checks that each row of the
// batch appears exactly once, tiles stay inside one sequence and hold 1..tile_rows rows, and
// each tile's last KV tile is its largest row limit's tile.
void check_plan(const BatchDesc& b, int num_kv_heads, const PrefillPlan& plan, const std::string& what) {
  const int group = plan.group;
  const int num_heads = num_kv_heads * group;
  const int64_t tokens = b.query_start.back();
  std::vector<int> seen(static_cast<size_t>(tokens * num_heads), 0);
  for (const PrefillTile& t : plan.tiles) {
    ASSERT_GE(t.seq, 0) << what;
    ASSERT_LT(t.seq, b.num_seqs()) << what;
    const int32_t n_new = b.query_start[static_cast<size_t>(t.seq) + 1] - b.query_start[static_cast<size_t>(t.seq)];
    ASSERT_GE(t.row_begin, 0) << what;
    ASSERT_LT(t.row_begin, t.row_end) << what;
    ASSERT_LE(t.row_end - t.row_begin, plan.tile_rows) << what;
    ASSERT_LE(t.row_end, n_new * group) << what;
    int64_t max_limit = -1;
    for (int32_t r = t.row_begin; r < t.row_end; ++r) {
      const int32_t token = r / group;
      max_limit = std::max<int64_t>(max_limit, b.kv_len[static_cast<size_t>(t.seq)] - n_new + token);
      for (int kvh = 0; kvh < num_kv_heads; ++kvh) {
        const int head = kvh * group + r % group;
        const int64_t flat = (b.query_start[static_cast<size_t>(t.seq)] + token) * int64_t{num_heads} + head;
        ++seen[static_cast<size_t>(flat)];
      }
    }
    EXPECT_EQ(t.last_kv_tile, max_limit / plan.kv_tile) << what << " seq " << t.seq << " rows " << t.row_begin;
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    ASSERT_EQ(seen[i], 1) << what << ": row (token " << i / num_heads << ", head " << i % num_heads
                          << ") covered " << seen[i] << " times";
  }
  for (size_t i = 1; i < plan.tiles.size(); ++i) {
    ASSERT_GE(plan.tiles[i - 1].last_kv_tile, plan.tiles[i].last_kv_tile) << what << ": not heaviest first";
  }
}

TEST(PrefillPlan, CoversEveryRowOnceForGqa148) {
  BatchDesc b;
  b.add(1, 1).add(17, 17).add(300, 300).add(1000, 1000).add(2040, 40).add(9000, 1).add(5, 5);
  for (int group : {1, 4, 8}) {
    for (int kv_heads : {1, 2, 8}) {
      for (int tile_rows : {16, 64}) {
        for (int kv_tile : {32, 64}) {
          const PrefillPlan plan = make_plan(b, group, tile_rows, kv_tile);
          check_plan(b, kv_heads, plan,
                     "group " + std::to_string(group) + " kv_heads " + std::to_string(kv_heads) + " tile " +
                         std::to_string(tile_rows) + "x" + std::to_string(kv_tile));
          // Tiles per sequence: ceil(n_new * group / tile_rows).
          int64_t want = 0;
          for (int s = 0; s < b.num_seqs(); ++s) {
            const int64_t rows = int64_t{b.query_start[s + 1] - b.query_start[s]} * group;
            want += (rows + tile_rows - 1) / tile_rows;
          }
          EXPECT_EQ(static_cast<int64_t>(plan.tiles.size()), want);
          EXPECT_EQ(plan.bytes(), plan.tiles.size() * 16);
        }
      }
    }
  }
}

TEST(PrefillPlan, ChunkAfterCachedPrefixHasCausalRanges) {
  // 40 new tokens after 260 cached ones, group 4, 64-row tiles of 16 tokens, 32-token KV tiles:
  // tokens 0..15 see up to 275 (tile 8), 16..31 up to 291 (tile 9), 32..39 up to 299 (tile 9).
  BatchDesc b;
  b.add(300, 40);
  const PrefillPlan plan = make_plan(b, 4, 64, 32);
  ASSERT_EQ(plan.tiles.size(), 3u);
  std::map<int32_t, std::pair<int32_t, int32_t>> by_row;  // row_begin -> (row_end, last tile)
  for (const PrefillTile& t : plan.tiles) by_row[t.row_begin] = {t.row_end, t.last_kv_tile};
  EXPECT_EQ(by_row[0], std::make_pair(64, 8));
  EXPECT_EQ(by_row[64], std::make_pair(128, 9));
  EXPECT_EQ(by_row[128], std::make_pair(160, 9));
  // Heaviest first, ties in row order.
  EXPECT_EQ(plan.tiles[0].row_begin, 64);
  EXPECT_EQ(plan.tiles[1].row_begin, 128);
  EXPECT_EQ(plan.tiles[2].row_begin, 0);
  check_plan(b, 2, plan, "chunk after prefix");
}

TEST(PrefillPlan, DecodeOnlySequencesGetOneTileOfTheirGroup) {
  BatchDesc b;
  b.add(1, 1).add(64, 1).add(65, 1).add(9000, 1);
  for (int group : {1, 4, 8}) {
    const PrefillPlan plan = make_plan(b, group);
    ASSERT_EQ(plan.tiles.size(), 4u) << group;
    for (const PrefillTile& t : plan.tiles) {
      EXPECT_EQ(t.row_begin, 0);
      EXPECT_EQ(t.row_end, group);
      EXPECT_EQ(t.last_kv_tile, (b.kv_len[static_cast<size_t>(t.seq)] - 1) / kPrefillKvTile);
    }
    check_plan(b, 8, plan, "decode group " + std::to_string(group));
  }
  EXPECT_FALSE(batch_has_prefill(b.query_start.data(), b.num_seqs()));
  b.add(10, 2);
  EXPECT_TRUE(batch_has_prefill(b.query_start.data(), b.num_seqs()));
}

TEST(PrefillPlan, EmptyBatchesAndSequencesWithoutQueries) {
  BatchDesc empty;
  PrefillPlan plan;
  ASSERT_TRUE(plan_prefill_attention(empty.query_start.data(), empty.kv_len.data(), 0, 4, 64, 64, &plan));
  EXPECT_TRUE(plan.tiles.empty());
  EXPECT_EQ(plan.bytes(), 0u);
  ASSERT_TRUE(plan_prefill_attention(nullptr, nullptr, 0, 4, 64, 64, &plan));
  EXPECT_TRUE(plan.tiles.empty());
  BatchDesc idle;
  idle.add(50, 0).add(7, 7).add(3, 0);
  plan = make_plan(idle, 2);
  ASSERT_EQ(plan.tiles.size(), 1u);
  EXPECT_EQ(plan.tiles[0].seq, 1);
  check_plan(idle, 4, plan, "sequences without queries");
}

TEST(PrefillPlan, RejectsInconsistentDescriptions) {
  PrefillPlan plan;
  plan.tiles.push_back({});
  const std::vector<int32_t> qs{0, 5, 3};  // not monotone
  const std::vector<int32_t> kv{5, 5};
  EXPECT_FALSE(plan_prefill_attention(qs.data(), kv.data(), 2, 1, 64, 64, &plan));
  EXPECT_TRUE(plan.tiles.empty());
  const std::vector<int32_t> qs2{0, 10};
  const std::vector<int32_t> short_kv{9};  // fewer KV tokens than queries
  EXPECT_FALSE(plan_prefill_attention(qs2.data(), short_kv.data(), 1, 1, 64, 64, &plan));
  const std::vector<int32_t> kv2{10};
  EXPECT_FALSE(plan_prefill_attention(qs2.data(), kv2.data(), 1, 0, 64, 64, &plan));
  EXPECT_FALSE(plan_prefill_attention(qs2.data(), kv2.data(), 1, 1, 0, 64, &plan));
  EXPECT_FALSE(plan_prefill_attention(qs2.data(), kv2.data(), 1, 1, 64, 0, &plan));
  EXPECT_FALSE(plan_prefill_attention(qs2.data(), kv2.data(), -1, 1, 64, 64, &plan));
  EXPECT_FALSE(plan_prefill_attention(nullptr, kv2.data(), 1, 1, 64, 64, &plan));
  // Rows past int32: 2^30 tokens with a group of 4.
  const std::vector<int32_t> huge_qs{0, 1 << 30};
  const std::vector<int32_t> huge_kv{1 << 30};
  EXPECT_FALSE(plan_prefill_attention(huge_qs.data(), huge_kv.data(), 1, 4, 64, 64, &plan));
  EXPECT_TRUE(plan.tiles.empty());
  EXPECT_TRUE(plan_prefill_attention(qs2.data(), kv2.data(), 1, 1, 64, 64, &plan));
  EXPECT_EQ(plan.tiles.size(), 1u);
}

// The kernel's walk in double: each (tile, KV head) item reads KV tiles 0..last_kv_tile only
// and masks each row at its own limit; the result must equal the reference, which reads each
// row's whole causal range. A plan whose ranges stopped short would differ.
TEST(PrefillPlan, TileWalkOverPlannedRangesMatchesReference) {
  const int num_kv_heads = 2, head_dim = 8, block_size = 5, kv_tile = 16;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int group : {1, 4, 8}) {
    BatchDesc b;
    b.add(33, 33).add(70, 21).add(16, 1).add(49, 2);
    const int num_heads = num_kv_heads * group;
    std::vector<int32_t> block_indptr{0}, block_indices;
    for (int s = 0; s < b.num_seqs(); ++s) {
      const int blocks = (b.kv_len[static_cast<size_t>(s)] + block_size - 1) / block_size;
      for (int i = 0; i < blocks; ++i) block_indices.push_back(static_cast<int32_t>(block_indices.size()));
      block_indptr.push_back(static_cast<int32_t>(block_indices.size()));
    }
    std::shuffle(block_indices.begin(), block_indices.end(), rng);
    const int64_t num_blocks = static_cast<int64_t>(block_indices.size());
    const int64_t tokens = b.query_start.back();
    std::vector<float> k(static_cast<size_t>(num_blocks * num_kv_heads * block_size * head_dim));
    std::vector<float> v(k.size()), q(static_cast<size_t>(tokens * num_heads * head_dim));
    for (float& x : k) x = normal(rng);
    for (float& x : v) x = normal(rng);
    for (float& x : q) x = normal(rng);
    PagedAttentionParams p;
    p.q = q.data();
    p.q_stride = int64_t{num_heads} * head_dim;
    std::vector<float> want(q.size());
    p.out = want.data();
    p.out_stride = p.q_stride;
    p.k_pool = k.data();
    p.v_pool = v.data();
    p.num_heads = num_heads;
    p.num_kv_heads = num_kv_heads;
    p.head_dim = head_dim;
    p.block_size = block_size;
    p.num_seqs = b.num_seqs();
    p.query_start = b.query_start.data();
    p.kv_len = b.kv_len.data();
    p.block_indptr = block_indptr.data();
    p.block_indices = block_indices.data();
    p.scale = 0.3f;
    ASSERT_EQ(validate_paged_attention(p, num_blocks), StatusCode::kOk);
    std::vector<double> scratch(100);
    ASSERT_EQ(paged_attention_ref(p, 0, tokens * num_heads, scratch.data()), StatusCode::kOk);

    const PrefillPlan plan = make_plan(b, group, 16, kv_tile);
    std::vector<float> got(q.size(), std::nanf(""));
    for (const PrefillTile& t : plan.tiles) {
      const int32_t q0 = b.query_start[static_cast<size_t>(t.seq)];
      const int32_t past = b.kv_len[static_cast<size_t>(t.seq)] - (b.query_start[static_cast<size_t>(t.seq) + 1] - q0);
      const int32_t* blocks = block_indices.data() + block_indptr[static_cast<size_t>(t.seq)];
      for (int kvh = 0; kvh < num_kv_heads; ++kvh) {
        for (int32_t r = t.row_begin; r < t.row_end; ++r) {
          const int32_t token = r / group, head = kvh * group + r % group, limit = past + token;
          const float* qr = q.data() + (q0 + token) * p.q_stride + head * head_dim;
          double m = -INFINITY, l = 0.0;
          std::vector<double> acc(head_dim, 0.0);
          for (int32_t pos = 0; pos < (t.last_kv_tile + 1) * kv_tile; ++pos) {
            if (pos > limit) continue;  // the per-row mask
            const int64_t row = (int64_t{blocks[pos / block_size]} * num_kv_heads + kvh) * block_size + pos % block_size;
            double s = 0.0;
            for (int d = 0; d < head_dim; ++d) s += double{qr[d]} * k[static_cast<size_t>(row * head_dim + d)];
            s *= p.scale;
            const double nm = std::max(m, s), corr = std::exp(m - nm), e = std::exp(s - nm);
            l = l * corr + e;
            for (int d = 0; d < head_dim; ++d) acc[d] = acc[d] * corr + e * v[static_cast<size_t>(row * head_dim + d)];
            m = nm;
          }
          for (int d = 0; d < head_dim; ++d)
            got[static_cast<size_t>((q0 + token) * p.out_stride + head * head_dim + d)] = static_cast<float>(acc[d] / l);
        }
      }
    }
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-5) << "group " << group << " element " << i;
    }
  }
}

}  // namespace
}  // namespace llmos::kernels::cuda
