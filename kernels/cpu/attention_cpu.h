// Fast CPU paged attention (flash-attention style) and KV-cache writes, for the flattened batch
// of kernels/attention.h (paged K/V pools, CSR block tables, GQA, causal prefill chunks mixed
// with decodes).
//
// A call runs in three steps:
//   1. attention_plan(): turns the batch description into work items, each one
//      (sequence, KV head, tile of query tokens, range of KV partitions). An item loads every
//      K/V chunk of its KV head once and uses it for all the query heads of the group and all
//      the tokens of the tile. The plan depends only on the batch (and a thread-count hint for
//      splitting), so one plan serves every layer of a step.
//   2. attention_run(): items, in any order, on any thread (each thread its own scratch slot).
//   3. attention_combine(): tiles whose KV range was split into partitions (decode with few
//      sequences, so both cores work on one long context) fold their partial results.
// attention_forward() does 2 and 3 on a ThreadPool with dynamic item scheduling.
//
// Backend use: make the plan once per step (it depends only on the batch, so every layer shares
// it), size the workspace from it (keep one buffer and grow it when a plan needs more), then per
// layer call attention_forward() (or run the items and combines on your own threads).
//
// The algorithm, for one query row at position `pos` (it sees KV positions [0, pos]):
// the KV positions are cut into partitions of kAttentionPartition tokens and each partition into
// chunks of kAttentionChunk tokens, counted from position 0 of the sequence. Each partition runs
// an online softmax (running max m, sum l, accumulator acc rescaled by exp(m_old - m_new)) from a
// fresh state; the partition states are then folded left to right, state_0 ⊕ state_1 ⊕ ...,
// with one merge function whether the fold happens inside an item or in attention_combine().
//
// Batch invariance (a contract): a query row's output depends only on its query vector, its own
// sequence's K/V positions [0, pos], the scale and the ISA — never on other sequences in the
// batch, on the tile its sequence's tokens were cut into, on whether its partitions were split
// across items, or on the thread count. In particular prefill and decode of the same token agree
// bit for bit. The partition and chunk sizes are constants for that reason.
//
// Kernels never allocate or throw: the plan's vectors are reused (their capacity kept between
// steps) and all scratch lives in one caller-provided workspace of attention_workspace_bytes().
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/cpu/isa.h"

namespace llmos {
class ThreadPool;
}

namespace llmos::kernels::cpu {

inline constexpr int kAttentionChunk = 64;       // KV tokens per online-softmax step
inline constexpr int kAttentionPartition = 256;  // KV tokens per partition (a multiple of the chunk)
inline constexpr int kAttentionTileRows = 64;    // query rows (tokens x group heads) per tile, at most
                                                 // (a tile always holds at least one token)

struct AttentionWorkItem {
  int32_t seq = 0;
  int32_t kv_head = 0;
  int32_t q_begin = 0;     // first query token of the tile (a row of q)
  int32_t q_count = 0;     // query tokens in the tile
  int32_t part_begin = 0;  // KV partitions [part_begin, part_end) of the tile
  int32_t part_end = 0;
  int64_t partial = -1;    // -1: the item covers all partitions and writes out;
                           // else: float offset of its partition's state in the workspace
  int64_t cost = 0;        // query rows x KV tokens, for scheduling
};

struct AttentionCombineItem {
  int32_t seq = 0;
  int32_t kv_head = 0;
  int32_t q_begin = 0;
  int32_t q_count = 0;
  int32_t num_parts = 0;
  int64_t partial = 0;  // float offset of partition 0's state; partition k follows at
                        // partial + k * attention_partial_floats(rows, head_dim)
};

struct AttentionPlan {
  std::vector<AttentionWorkItem> items;        // sorted by decreasing cost
  std::vector<AttentionCombineItem> combines;  // run after all items
  // The shape the plan was made for; run/combine refuse other shapes.
  int num_heads = 0, num_kv_heads = 0, head_dim = 0, num_seqs = 0;
  int num_threads = 1;          // workspace scratch slots
  int max_rows = 0;             // query rows of the largest tile
  int64_t partial_floats = 0;   // floats of split-partition states at the start of the workspace
  int64_t scratch_floats = 0;   // floats of one thread's scratch slot
};

// Floats holding one partition state (m, l, acc) of a tile with `rows` query rows.
int64_t attention_partial_floats(int rows, int head_dim);

// Builds the plan for a batch. `num_threads` (>= 1) sizes the workspace's scratch slots and
// decides which tiles are worth splitting into partitions; results do not depend on it.
// The block tables are not read: call validate_paged_attention() first.
// kInvalidArgument on an inconsistent description.
StatusCode attention_plan(const PagedAttentionParams& p, int num_threads, AttentionPlan* plan);

// Bytes of workspace for a plan: partition states, then num_threads scratch slots. Any 4-byte
// aligned buffer works (64-byte alignment is faster).
size_t attention_workspace_bytes(const AttentionPlan& plan);

// Whether `isa` has a vectorized attention kernel for this head_dim (others run the scalar one).
bool has_fast_attention(Isa isa, int head_dim);

// Runs items [item_begin, item_end) of the plan with scratch slot `thread` (< plan.num_threads).
// prefetch_item (-1: none) is the item the caller runs next: its first K/V chunk is prefetched
// while the last of these items ends. kUnsupported when `isa` is not supported by this CPU;
// kInvalidArgument on a plan/shape mismatch or an item index out of range.
StatusCode attention_run(Isa isa, const PagedAttentionParams& p, const AttentionPlan& plan,
                         int64_t item_begin, int64_t item_end, void* workspace, int thread,
                         int64_t prefetch_item = -1);

// Folds the partitions of combine items [begin, end) and writes their rows of p.out. Must use
// the same isa as attention_run.
StatusCode attention_combine(Isa isa, const PagedAttentionParams& p, const AttentionPlan& plan,
                             int64_t begin, int64_t end, void* workspace);

// Both phases on `pool`, on min(pool threads, plan.num_threads) threads; items are handed out
// dynamically, largest first. Returns the first failing status.
StatusCode attention_forward(ThreadPool& pool, Isa isa, const PagedAttentionParams& p,
                             const AttentionPlan& plan, void* workspace);

// ---- KV-cache writes -----------------------------------------------------------------------

// write_kv_ref's contract for tokens [token_begin, token_end), bit-identical to it (f16 with
// vcvtps2ph round-to-nearest-even; bf16 with the same rounding as f32_to_bf16). NaN payloads
// other than the default quiet NaN may differ in f16.
StatusCode write_kv_cpu(Isa isa, const WriteKvParams& p, int64_t token_begin, int64_t token_end);

// Rotary embedding applied to K while it is written (V as is). Same fields and math as
// kernels/rope.h: pair i of token t turns by positions[t] * inv_freq[i], cos/sin computed in
// double and scaled by attn_factor, the rotation done in double — so the cache holds exactly
// what rope_ref followed by write_kv_ref would store.
struct KvRope {
  const int32_t* positions = nullptr;  // [num_tokens], indexed like slots
  const float* inv_freq = nullptr;     // [rot_dim / 2]
  int rot_dim = 0;                     // even, <= head_dim, <= kMaxRopeDim
  float attn_factor = 1.0f;
  bool neox = false;
  // Optional: [num_tokens][rot_dim / 2][2] {cos, sin} from rope_cos_sin_table(), shared by the
  // layers of a step (positions do not change between layers); null: computed per token.
  const double* cos_sin = nullptr;
};
inline constexpr int kMaxRopeDim = 512;

// table[t][i] = {cos(positions[t] * inv_freq[i]) * attn_factor, sin(...) * attn_factor}, exactly
// as rope_ref computes them, for rows [row_begin, row_end).
StatusCode rope_cos_sin_table(const KvRope& rope, int64_t row_begin, int64_t row_end, double* table);

StatusCode write_kv_rope_cpu(Isa isa, const WriteKvParams& p, const KvRope& rope,
                             int64_t token_begin, int64_t token_end);

}  // namespace llmos::kernels::cpu
