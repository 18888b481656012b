// Split-K ("FlashDecoding") paged attention: the host-side planner and the merge of partial
// softmax states, shared by the CUDA kernels and the CPU tests (no CUDA needed to include it).
//
// When a decode launch has few (token, KV head) pairs for the device, each pair's KV range
// [0, causal limit) is cut into partitions of `partition_tokens`; every partition leaves, per
// query head, its running max m, its sum l = sum(exp(s - m)) and acc = sum(exp(s - m) * v).
// The states are folded in partition order and out = acc / l. A partition that starts past a
// token's causal limit holds the empty state (m = -inf, l = 0), which the fold skips without
// reading its acc (never written).
#pragma once

#include <math.h>  // expf / exp / fmaxf in the global namespace, on the host and the device

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/host_device.h"

namespace llmos::kernels::cuda {

// KV tokens per shared-memory tile of the attention kernels; partitions are whole tiles.
inline constexpr int kAttentionTile = 32;
// Smallest partition worth a CTA of its own: shorter ones spend more on the fold than they save.
inline constexpr int64_t kSplitMinPartition = 256;
// Launches aim at this many CTAs per SM: the kernel is latency-bound on its tile loads, so one
// wave of one CTA per SM leaves most of the memory bandwidth unused.
inline constexpr int kSplitCtasPerSm = 4;
// SM counts beyond this are treated as this (keeps the plan's products far from overflow).
inline constexpr int kSplitMaxSmCount = 4096;

struct SplitPlan {
  int num_partitions = 1;        // 1: run the unsplit kernel
  int64_t partition_tokens = 0;  // a multiple of kAttentionTile (0 when not split)
  size_t workspace_bytes = 0;    // see split_workspace_bytes
  bool split() const { return num_partitions > 1; }
};

// Workspace of a split launch, all f32: acc [tokens][heads][partitions][head_dim], then
// m [tokens][heads][partitions], then l (same shape).
inline size_t split_workspace_bytes(int64_t num_tokens, int num_heads, int head_dim,
                                    int num_partitions) {
  return static_cast<size_t>(num_tokens) * static_cast<size_t>(num_heads) *
         static_cast<size_t>(num_partitions) * (static_cast<size_t>(head_dim) + 2) * sizeof(float);
}

// The planner. Splits only when the unsplit launch (num_tokens * num_kv_heads CTAs) is below
// kSplitCtasPerSm * sm_count; then the number of partitions is the fewest that reaches that
// target, but no more than keeps every partition >= kSplitMinPartition tokens of max_context
// (the longest causal range in the launch). The partition length is then rounded up to whole
// tiles and the count recomputed, so no partition lies wholly past max_context. The CTA count
// of a split launch stays below about twice the target whatever the context length, which
// bounds the workspace by the launch shape, not by the context.
inline SplitPlan plan_split_attention(int64_t num_tokens, int num_kv_heads, int num_heads,
                                      int head_dim, int64_t max_context, int sm_count) {
  SplitPlan plan;
  if (num_tokens <= 0 || num_kv_heads <= 0 || num_heads <= 0 || head_dim <= 0 || sm_count <= 0)
    return plan;
  const int64_t sms = sm_count < kSplitMaxSmCount ? sm_count : kSplitMaxSmCount;
  const int64_t target = kSplitCtasPerSm * sms;
  const int64_t base = num_tokens * num_kv_heads;
  if (base >= target) return plan;
  int64_t parts = (target + base - 1) / base;
  const int64_t by_length = max_context / kSplitMinPartition;
  if (by_length < parts) parts = by_length;
  if (parts < 2) return plan;
  const int64_t per_part = (max_context + parts - 1) / parts;
  const int64_t tokens = (per_part + kAttentionTile - 1) / kAttentionTile * kAttentionTile;
  plan.num_partitions = static_cast<int>((max_context + tokens - 1) / tokens);
  plan.partition_tokens = tokens;
  plan.workspace_bytes =
      split_workspace_bytes(num_tokens, num_heads, head_dim, plan.num_partitions);
  return plan;
}

LLMOS_HD inline float split_exp(float x) { return expf(x); }
LLMOS_HD inline double split_exp(double x) { return exp(x); }
LLMOS_HD inline float split_max(float a, float b) { return fmaxf(a, b); }
LLMOS_HD inline double split_max(double a, double b) { return fmax(a, b); }

// Folding a partition's state (m2, l2) into a running state (m, l): the new state and the
// factors the two accumulators are scaled by (acc = acc * keep + acc2 * take).
template <typename T>
struct SoftmaxFold {
  T m, l, keep, take;
};

template <typename T>
LLMOS_HD inline SoftmaxFold<T> softmax_fold(T m, T l, T m2, T l2) {
  if (!(l2 > T(0))) return {m, l, T(1), T(0)};  // empty partition: acc2 is never read
  if (!(l > T(0))) return {m2, l2, T(0), T(1)};
  const T mm = split_max(m, m2);
  const T keep = split_exp(m - mm), take = split_exp(m2 - mm);
  return {mm, l * keep + l2 * take, keep, take};
}

// (m, l, acc[0..n)) folded with (m2, l2, acc2[0..n)) in place; acc2 is read only when l2 > 0.
template <typename T>
LLMOS_HD inline void softmax_fold_into(T& m, T& l, T* acc, T m2, T l2, const T* acc2, int n) {
  const SoftmaxFold<T> f = softmax_fold(m, l, m2, l2);
  if (f.take == T(0)) return;
  // keep == 0 means the running state was empty: its acc is not scaled (0 * inf would be NaN).
  for (int i = 0; i < n; ++i) acc[i] = (f.keep == T(0) ? T(0) : acc[i] * f.keep) + acc2[i] * f.take;
  m = f.m;
  l = f.l;
}

}  // namespace llmos::kernels::cuda
