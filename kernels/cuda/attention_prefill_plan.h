// Host-side tiling plan of the prefill attention kernel (attention_prefill_cuda.h): which CTAs
// exist and how much KV each one reads. Plain C++17 (the .cu includes it too; no CUDA needed).
//
// A sequence with n new tokens and GQA group g (query heads per KV head) has n * g query rows
// per KV head, row r being (token r / g, head r % g of the group): the heads of a group read
// the same K/V, so one CTA takes a tile of consecutive rows and shares every KV tile it loads
// across them. Tiles never straddle sequences. Each CTA reads the KV tiles [0, last_kv_tile]:
// its last row's causal limit decides, the rows before it are masked per row inside the tile.
// The grid is (tiles, KV heads): every tile runs once per KV head.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace llmos::kernels::cuda {

// Query rows per CTA: 4 warps of 16 MMA rows.
inline constexpr int kPrefillTileRows = 64;
// KV tokens per shared-memory tile.
inline constexpr int kPrefillKvTile = 64;

struct PrefillTile {
  int32_t seq = 0;
  int32_t row_begin = 0;     // rows [row_begin, row_end) of the sequence (see above)
  int32_t row_end = 0;
  int32_t last_kv_tile = 0;  // the last KV tile any of the rows sees
};
static_assert(sizeof(PrefillTile) == 16, "the kernel reads a tile as one int4");

struct PrefillPlan {
  std::vector<PrefillTile> tiles;  // heaviest (most KV tiles) first, then in batch order
  int group = 0, tile_rows = 0, kv_tile = 0;
  size_t bytes() const { return tiles.size() * sizeof(PrefillTile); }
};

// True when some sequence has more than one new token (the batch holds a prefill chunk).
inline bool batch_has_prefill(const int32_t* query_start, int num_seqs) {
  for (int s = 0; s < num_seqs; ++s) {
    if (query_start[s + 1] - query_start[s] > 1) return true;
  }
  return false;
}

// The plan of a batch (host arrays: query_start [num_seqs + 1], kv_len [num_seqs]). Returns
// false, leaving *plan empty, on an inconsistent description: non-positive group, tile sizes
// or non-monotone query_start, kv_len below the sequence's new tokens, a row count past int32.
// The causal limit of token i of a sequence is kv_len - n_new + i (kernels/attention.h).
inline bool plan_prefill_attention(const int32_t* query_start, const int32_t* kv_len, int num_seqs,
                                   int group, int tile_rows, int kv_tile, PrefillPlan* plan) {
  *plan = PrefillPlan{};
  if (num_seqs < 0 || group <= 0 || tile_rows <= 0 || kv_tile <= 0) return false;
  if (num_seqs > 0 && (query_start == nullptr || kv_len == nullptr)) return false;
  PrefillPlan out;
  out.group = group;
  out.tile_rows = tile_rows;
  out.kv_tile = kv_tile;
  for (int s = 0; s < num_seqs; ++s) {
    const int64_t n_new = static_cast<int64_t>(query_start[s + 1]) - query_start[s];
    if (n_new < 0 || kv_len[s] < n_new) return false;
    const int64_t rows = n_new * group;
    if (rows > std::numeric_limits<int32_t>::max() - tile_rows) return false;
    const int64_t past = kv_len[s] - n_new;
    for (int64_t begin = 0; begin < rows; begin += tile_rows) {
      const int64_t end = std::min<int64_t>(rows, begin + tile_rows);
      const int64_t last_pos = past + (end - 1) / group;  // the last row's causal limit
      out.tiles.push_back({s, static_cast<int32_t>(begin), static_cast<int32_t>(end),
                           static_cast<int32_t>(last_pos / kv_tile)});
    }
  }
  // Long tiles first: the last wave of CTAs then holds short ones instead of a straggler.
  std::stable_sort(out.tiles.begin(), out.tiles.end(), [](const PrefillTile& a, const PrefillTile& b) {
    return a.last_kv_tile > b.last_kv_tile;
  });
  *plan = std::move(out);
  return true;
}

}  // namespace llmos::kernels::cuda
