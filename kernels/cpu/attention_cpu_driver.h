// Internal to the CPU attention kernel: the ISA-independent part (items, partitions, chunks,
// causal row ranges, the partition fold) as templates over a per-ISA kernel struct, and the ISA
// entry points. Included only by attention_cpu.cc and the files in avx2/ and avx512/.
//
// Everything below sits in an anonymous namespace on purpose: each translation unit gets its own
// copy compiled with its own ISA flags, so the linker can never hand an AVX-512 instantiation to
// the scalar path. For the same reason the ISA files use intrinsics and builtins only — no
// inline library functions (std::max<float>, std::exp, f32_to_f16, std::vector members) that
// would be emitted as shared weak symbols.
//
// The kernel struct K provides (all rows r index the tile: token r / group, head r % group):
//   begin_tile(tile, rows, qbuf)
//       once per item: the tile's query rows -> qbuf (up to 4 * round4(rows) * head_dim floats),
//       in a layout of the kernel's choice
//   softmax_rows(tile, qbuf, rb, re, k_rows, dtype, kbuf, scale, n, ctx0, m, l, p, alpha)
//       rows [rb, re): scores against the chunk's n K rows (converted through kbuf, up to
//       64 * head_dim floats), masked to the row's first min(n, ctx0 + r / group) tokens;
//       online-softmax update of m[r], l[r]; probabilities to p[r * kAttentionChunk ...] (0 beyond
//       the mask) and the accumulator's rescale factor to alpha[r]
//   pv_rows(p, alpha, v_rows, dtype, n, head_dim, vbuf, acc, rb, re, next)
//       acc[r] = acc[r] * alpha[r] + p[r] . V over the chunk's n V rows (read in place, or
//       converted into vbuf [64][head_dim] first); also prefetches the rows of `next` (the chunk
//       the item reads after this one), all at once or spread over its loop
//   merge(m, l, acc, m2, l2, acc2, head_dim)   (m, l, acc) folded with (m2, l2, acc2)
//   finalize(acc, l, head_dim, out)            out = acc / l, zeros made positive
// Each must compute a row exactly the same way whichever other rows it is called with.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/cpu/attention_cpu.h"

namespace llmos::kernels::cpu {

namespace detail {

// ISA entry points. The dispatcher (attention_cpu.cc) has checked the shapes and the ISA.
#define LLMOS_ATTENTION_ISA_ENTRY_POINTS(suffix)                                                 \
  void attention_items_##suffix(const PagedAttentionParams& p, const AttentionPlan& plan,       \
                                const AttentionWorkItem* items, int64_t count, float* workspace, \
                                int thread, const AttentionWorkItem* following);                 \
  void attention_combine_##suffix(const PagedAttentionParams& p, const AttentionPlan& plan,     \
                                  const AttentionCombineItem* items, int64_t count,              \
                                  float* workspace);                                             \
  /* n f32 values -> kv dtype, bit-identical to write_kv_ref's conversion */                      \
  void kv_store_row_##suffix(const float* src, void* dst, DType dtype, int n);

LLMOS_ATTENTION_ISA_ENTRY_POINTS(scalar)
LLMOS_ATTENTION_ISA_ENTRY_POINTS(avx2)
LLMOS_ATTENTION_ISA_ENTRY_POINTS(avx512)
#undef LLMOS_ATTENTION_ISA_ENTRY_POINTS

}  // namespace detail

namespace {  // NOLINT(google-build-namespaces, cert-dcl59-cpp): see the top of this file

inline int attn_imin(int a, int b) { return a < b ? a : b; }
inline int attn_imax(int a, int b) { return a > b ? a : b; }
inline int64_t attn_round16(int64_t n) { return (n + 15) / 16 * 16; }

// Partition state of a tile: m [rows], l [rows] (each padded to 16), acc [rows][head_dim].
inline int64_t attn_partial_floats(int rows, int head_dim) {
  return 2 * attn_round16(rows) + static_cast<int64_t>(rows) * head_dim;
}

// One thread's scratch slot.
struct AttnScratch {
  float* k;      // K chunk (kAttentionChunk * head_dim)
  float* v;      // V chunk [kAttentionChunk][head_dim]
  float* q;      // the tile's query rows, as the kernel packs them (4 * round4(rows) * head_dim)
  float* p;      // scores, then probabilities [round4(rows)][kAttentionChunk]
  float* alpha;  // [rows]
  float *m0, *l0, *acc0;  // folded state of an unsplit item
  float *m1, *l1, *acc1;  // state of the partition being computed
};

inline int64_t attn_scratch_floats(int max_rows, int head_dim) {
  const int64_t chunk = static_cast<int64_t>(kAttentionChunk) * head_dim;
  const int64_t rows4 = (max_rows + 3) / 4 * 4;
  const int64_t rows16 = attn_round16(max_rows);
  const int64_t acc = attn_round16(static_cast<int64_t>(max_rows) * head_dim);
  return 2 * attn_round16(chunk) + attn_round16(4 * rows4 * head_dim) + rows4 * kAttentionChunk + rows16 +
         2 * (2 * rows16 + acc);
}

inline AttnScratch attn_scratch(float* base, int max_rows, int head_dim) {
  const int64_t chunk = attn_round16(static_cast<int64_t>(kAttentionChunk) * head_dim);
  const int64_t rows4 = (max_rows + 3) / 4 * 4;
  const int64_t rows16 = attn_round16(max_rows);
  const int64_t acc = attn_round16(static_cast<int64_t>(max_rows) * head_dim);
  AttnScratch s;
  s.k = base;
  s.v = s.k + chunk;
  s.q = s.v + chunk;
  s.p = s.q + attn_round16(4 * rows4 * head_dim);
  s.alpha = s.p + rows4 * kAttentionChunk;
  s.m0 = s.alpha + rows16;
  s.l0 = s.m0 + rows16;
  s.acc0 = s.l0 + rows16;
  s.m1 = s.acc0 + acc;
  s.l1 = s.m1 + rows16;
  s.acc1 = s.l1 + rows16;
  return s;
}

// The query rows of a tile: row r is token token0 + r / group, query head head0 + r % group.
struct AttnTile {
  const float* q;
  int64_t q_stride;
  float* out;
  int64_t out_stride;
  int64_t token0;
  int group;
  int head0;
  int head_dim;
  const float* q_row(int r) const {
    return q + (token0 + r / group) * q_stride + static_cast<int64_t>(head0 + r % group) * head_dim;
  }
  float* out_row(int r) const {
    return out + (token0 + r / group) * out_stride +
           static_cast<int64_t>(head0 + r % group) * head_dim;
  }
};

inline AttnTile attn_tile(const PagedAttentionParams& p, int kv_head, int32_t q_begin) {
  const int group = p.num_heads / p.num_kv_heads;
  return AttnTile{p.q, p.q_stride, p.out, p.out_stride, q_begin, group, kv_head * group, p.head_dim};
}

inline float attn_neg_inf() { return -__builtin_inff(); }

// The K and V rows of the chunk an item reads next (n = 0: none), for the kernel to prefetch
// while it computes the current one.
struct AttnNextChunk {
  const uint8_t* const* k = nullptr;
  const uint8_t* const* v = nullptr;
  int n = 0;
  int64_t row_bytes = 0;
};

// Prefetches row t of `next` into L2 (into L1 as well measured 3-5% slower: the chunk being
// computed is evicted sooner).
inline void attn_prefetch_row(const AttnNextChunk& next, int t) {
  for (int64_t b = 0; b < next.row_bytes; b += 64) {
    __builtin_prefetch(next.k[t] + b, 0, 1);
    __builtin_prefetch(next.v[t] + b, 0, 1);
  }
}

// All of `next` at once (kernels whose loops do not spread it).
inline void attn_prefetch_chunk(const AttnNextChunk& next) {
  for (int t = 0; t < next.n; ++t) attn_prefetch_row(next, t);
}

// Row pointers of positions [pos, pos + n) of one KV head of a sequence, walking its block
// table (one division per chunk, not per token).
inline void attn_chunk_rows(const PagedAttentionParams& p, const int32_t* blocks, int kv_head,
                            int32_t pos, int n, int64_t row_bytes, const uint8_t** k_rows,
                            const uint8_t** v_rows) {
  const uint8_t* k_base = static_cast<const uint8_t*>(p.k_pool);
  const uint8_t* v_base = static_cast<const uint8_t*>(p.v_pool);
  int32_t block_i = pos / p.block_size, offset = pos % p.block_size;
  for (int t = 0; t < n;) {
    // A block's rows of one head are contiguous.
    const int64_t first = (int64_t{blocks[block_i]} * p.num_kv_heads + kv_head) * p.block_size + offset;
    const int run = attn_imin(p.block_size - offset, n - t);
    for (int j = 0; j < run; ++j, ++t) {
      k_rows[t] = k_base + (first + j) * row_bytes;
      v_rows[t] = v_base + (first + j) * row_bytes;
    }
    offset = 0;
    ++block_i;
  }
}

// The first chunk an item reads: positions [*c0, *c0 + *n).
inline void attn_first_chunk(const PagedAttentionParams& p, const AttentionWorkItem& it, int32_t* c0,
                             int* n) {
  const int32_t seq_q0 = p.query_start[it.seq];
  const int32_t n_new = p.query_start[it.seq + 1] - seq_q0;
  const int32_t tile_end = p.kv_len[it.seq] - n_new + (it.q_begin - seq_q0) + it.q_count;
  *c0 = it.part_begin * kAttentionPartition;
  *n = attn_imin(kAttentionChunk, attn_imin(tile_end, it.part_end * kAttentionPartition) - *c0);
}

// One item. `following` (or null) is the item this thread runs next: its first chunk is
// prefetched while this item's last chunk is computed, so that it does not start with a stall
// (with many short sequences, as in batched decode, first chunks are a large share of the bytes).
template <class K>
void attn_run_item(const PagedAttentionParams& p, const AttentionWorkItem& it,
                   const AttnScratch& s, float* workspace, const AttentionWorkItem* following) {
  const AttnTile tile = attn_tile(p, it.kv_head, it.q_begin);
  const int group = tile.group;
  const int head_dim = p.head_dim;
  const int rows = it.q_count * group;
  const int32_t seq_q0 = p.query_start[it.seq];
  const int32_t n_new = p.query_start[it.seq + 1] - seq_q0;
  // Position of the tile's first token; the tile's row r sees positions [0, first_pos + r / group].
  const int32_t first_pos = p.kv_len[it.seq] - n_new + (it.q_begin - seq_q0);
  const int32_t tile_end = first_pos + it.q_count;
  const int32_t* blocks = p.block_indices + p.block_indptr[it.seq];
  const int64_t elem = p.kv_dtype == DType::kF32 ? 4 : 2;
  const int64_t row_bytes = elem * head_dim;
  const bool split = it.partial >= 0;
  // Row pointers of the current chunk and of the next one (filled while the current one runs).
  const uint8_t* k_rows[2][kAttentionChunk];
  const uint8_t* v_rows[2][kAttentionChunk];
  int cur = 0;
  int32_t filled_c0 = -1;  // the chunk whose rows sit in [cur], if any
  const int32_t item_end = attn_imin(tile_end, it.part_end * kAttentionPartition);
  K::begin_tile(tile, rows, s.q);

  for (int32_t part = it.part_begin; part < it.part_end; ++part) {
    const int32_t kv0 = part * kAttentionPartition;
    const int32_t kv1 = attn_imin(kv0 + kAttentionPartition, tile_end);
    // Rows that see position kv0 have at least one token in this partition; the others none.
    const int r0 = attn_imax(0, kv0 - first_pos) * group;
    float *m, *l, *acc;
    if (split) {
      m = workspace + it.partial;
      l = m + attn_round16(rows);
      acc = l + attn_round16(rows);
      for (int r = 0; r < r0; ++r) {  // empty for these rows: the combine skips them
        m[r] = attn_neg_inf();
        l[r] = 0.0f;
      }
    } else if (part == it.part_begin) {
      m = s.m0, l = s.l0, acc = s.acc0;
    } else {
      m = s.m1, l = s.l1, acc = s.acc1;
    }
    for (int r = r0; r < rows; ++r) {
      m[r] = attn_neg_inf();
      l[r] = 0.0f;
    }
    std::memset(acc + static_cast<int64_t>(r0) * head_dim, 0,
                sizeof(float) * static_cast<size_t>(rows - r0) * static_cast<size_t>(head_dim));

    for (int32_t c0 = kv0; c0 < kv1; c0 += kAttentionChunk) {
      const int n = attn_imin(kAttentionChunk, kv1 - c0);
      if (filled_c0 != c0) attn_chunk_rows(p, blocks, it.kv_head, c0, n, row_bytes, k_rows[cur], v_rows[cur]);
      // The blocks are scattered, so the hardware prefetcher cannot run ahead across them: the
      // kernel fetches the next chunk's rows (this partition's or the next one's) while it
      // computes this one.
      AttnNextChunk next;
      next.k = k_rows[1 - cur];
      next.v = v_rows[1 - cur];
      next.row_bytes = row_bytes;
      const int32_t next_c0 = c0 + kAttentionChunk;
      const bool next_in_item = n == kAttentionChunk && next_c0 < item_end;
      if (next_in_item) {
        next.n = attn_imin(kAttentionChunk, item_end - next_c0);
        attn_chunk_rows(p, blocks, it.kv_head, next_c0, next.n, row_bytes, k_rows[1 - cur], v_rows[1 - cur]);
      } else if (following != nullptr && c0 + n >= item_end) {
        int32_t f_c0 = 0;
        attn_first_chunk(p, *following, &f_c0, &next.n);
        const int32_t* f_blocks = p.block_indices + p.block_indptr[following->seq];
        attn_chunk_rows(p, f_blocks, following->kv_head, f_c0, next.n, row_bytes, k_rows[1 - cur],
                        v_rows[1 - cur]);
      }
      const int ra = attn_imax(0, c0 - first_pos) * group;  // first row that sees position c0
      const int ctx0 = first_pos + 1 - c0;                   // row r sees ctx0 + r / group tokens
      K::softmax_rows(tile, s.q, ra, rows, k_rows[cur], p.kv_dtype, s.k, p.scale, n, ctx0, m, l, s.p, s.alpha);
      K::pv_rows(s.p, s.alpha, v_rows[cur], p.kv_dtype, n, head_dim, s.v, acc, ra, rows, next);
      if (next_in_item) {
        cur = 1 - cur;
        filled_c0 = next_c0;
      }
    }

    if (!split && part != it.part_begin) {
      for (int r = r0; r < rows; ++r) {
        K::merge(&s.m0[r], &s.l0[r], s.acc0 + static_cast<int64_t>(r) * head_dim, s.m1[r], s.l1[r],
                 s.acc1 + static_cast<int64_t>(r) * head_dim, head_dim);
      }
    }
  }
  if (!split) {
    for (int r = 0; r < rows; ++r) {
      K::finalize(s.acc0 + static_cast<int64_t>(r) * head_dim, s.l0[r], head_dim, tile.out_row(r));
    }
  }
}

template <class K>
void attn_run_items(const PagedAttentionParams& p, const AttentionPlan& plan,
                    const AttentionWorkItem* items, int64_t count, float* workspace, int thread,
                    const AttentionWorkItem* following) {
  const AttnScratch s = attn_scratch(workspace + plan.partial_floats + thread * plan.scratch_floats,
                                     plan.max_rows, p.head_dim);
  for (int64_t i = 0; i < count; ++i) {
    attn_run_item<K>(p, items[i], s, workspace, i + 1 < count ? &items[i + 1] : following);
  }
}

// Folds partitions 1.. into partition 0's state, left to right, then writes the rows out.
template <class K>
void attn_run_combines(const PagedAttentionParams& p, const AttentionCombineItem* items,
                       int64_t count, float* workspace) {
  const int head_dim = p.head_dim;
  for (int64_t i = 0; i < count; ++i) {
    const AttentionCombineItem& c = items[i];
    const AttnTile tile = attn_tile(p, c.kv_head, c.q_begin);
    const int rows = c.q_count * tile.group;
    const int64_t block = attn_partial_floats(rows, head_dim);
    float* m0 = workspace + c.partial;
    float* l0 = m0 + attn_round16(rows);
    float* acc0 = l0 + attn_round16(rows);
    for (int k = 1; k < c.num_parts; ++k) {
      const float* mk = m0 + k * block;
      const float* lk = mk + attn_round16(rows);
      const float* acck = lk + attn_round16(rows);
      for (int r = 0; r < rows; ++r) {
        if (mk[r] == attn_neg_inf()) continue;  // the row has no token in partition k
        K::merge(&m0[r], &l0[r], acc0 + static_cast<int64_t>(r) * head_dim, mk[r], lk[r],
                 acck + static_cast<int64_t>(r) * head_dim, head_dim);
      }
    }
    for (int r = 0; r < rows; ++r) {
      K::finalize(acc0 + static_cast<int64_t>(r) * head_dim, l0[r], head_dim, tile.out_row(r));
    }
  }
}

}  // namespace
}  // namespace llmos::kernels::cpu
