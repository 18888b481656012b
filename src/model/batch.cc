#include "model/batch.h"

#include "core/error.h"

namespace llmos {

void Batch::add_sequence(std::span<const int32_t> new_tokens, int32_t num_cached,
                         std::span<const int32_t> block_table, int block_size, Logits logits) {
  LLMOS_CHECK_ARG(block_size > 0, "block_size must be positive, got ", block_size);
  LLMOS_CHECK_ARG(num_cached >= 0, "num_cached must be non-negative, got ", num_cached);
  const int64_t total = static_cast<int64_t>(num_cached) + static_cast<int64_t>(new_tokens.size());
  LLMOS_CHECK_ARG(static_cast<int64_t>(block_table.size()) * block_size >= total, "block table of ",
                  block_table.size(), " blocks cannot hold ", total, " tokens");
  const int32_t first = static_cast<int32_t>(tokens.size());
  for (size_t j = 0; j < new_tokens.size(); ++j) {
    const int32_t pos = num_cached + static_cast<int32_t>(j);
    tokens.push_back(new_tokens[j]);
    positions.push_back(pos);
    slots.push_back(static_cast<int64_t>(block_table[pos / block_size]) * block_size + pos % block_size);
  }
  query_start.push_back(static_cast<int32_t>(tokens.size()));
  kv_len.push_back(static_cast<int32_t>(total));
  block_indices.insert(block_indices.end(), block_table.begin(), block_table.end());
  block_indptr.push_back(static_cast<int32_t>(block_indices.size()));
  if (logits == Logits::kAll) {
    for (int32_t t = first; t < static_cast<int32_t>(tokens.size()); ++t) logits_rows.push_back(t);
  } else if (logits == Logits::kLast && !new_tokens.empty()) {
    logits_rows.push_back(static_cast<int32_t>(tokens.size()) - 1);
  }
}

void Batch::validate(int block_size, int64_t num_blocks, int32_t vocab_size) const {
  const size_t t = tokens.size();
  LLMOS_CHECK_ARG(positions.size() == t && slots.size() == t, "batch: tokens (", t,
                  "), positions (", positions.size(), ") and slots (", slots.size(),
                  ") differ in length");
  LLMOS_CHECK_ARG(query_start.size() == kv_len.size() + 1 && block_indptr.size() == kv_len.size() + 1,
                  "batch: query_start/block_indptr must have one entry more than kv_len");
  LLMOS_CHECK_ARG(query_start.front() == 0 && query_start.back() == static_cast<int32_t>(t),
                  "batch: query_start must run from 0 to the token count ", t);
  LLMOS_CHECK_ARG(block_indptr.front() == 0 &&
                      block_indptr.back() == static_cast<int32_t>(block_indices.size()),
                  "batch: block_indptr must run from 0 to the block index count");
  for (size_t i = 0; i < t; ++i) {
    LLMOS_CHECK_ARG(tokens[i] >= 0 && tokens[i] < vocab_size, "batch: token id ", tokens[i],
                    " at index ", i, " is outside the vocabulary of ", vocab_size);
    LLMOS_CHECK_ARG(slots[i] >= 0 && slots[i] / block_size < num_blocks, "batch: KV slot ",
                    slots[i], " at index ", i, " is outside the cache of ", num_blocks, " blocks");
  }
  for (size_t s = 0; s < kv_len.size(); ++s) {
    const int32_t n_new = query_start[s + 1] - query_start[s];
    const int32_t n_blocks = block_indptr[s + 1] - block_indptr[s];
    LLMOS_CHECK_ARG(n_new >= 0 && n_blocks >= 0, "batch: sequence ", s, " has decreasing indptrs");
    LLMOS_CHECK_ARG(kv_len[s] >= n_new, "batch: sequence ", s, " has kv_len ", kv_len[s],
                    " below its ", n_new, " new tokens");
    LLMOS_CHECK_ARG(static_cast<int64_t>(n_blocks) * block_size >= kv_len[s], "batch: sequence ", s,
                    " has ", n_blocks, " blocks for ", kv_len[s], " tokens");
    for (int32_t b = block_indptr[s]; b < block_indptr[s + 1]; ++b) {
      LLMOS_CHECK_ARG(block_indices[b] >= 0 && block_indices[b] < num_blocks, "batch: block id ",
                      block_indices[b], " of sequence ", s, " is outside the cache");
    }
    for (int32_t i = query_start[s]; i < query_start[s + 1]; ++i) {
      const int32_t expected = kv_len[s] - n_new + (i - query_start[s]);
      LLMOS_CHECK_ARG(positions[i] == expected, "batch: token ", i, " of sequence ", s,
                      " has position ", positions[i], ", expected ", expected);
    }
  }
  for (size_t i = 0; i < logits_rows.size(); ++i) {
    LLMOS_CHECK_ARG(logits_rows[i] >= 0 && logits_rows[i] < static_cast<int32_t>(t),
                    "batch: logits row ", logits_rows[i], " is not a token of the batch");
  }
}

void Batch::clear() {
  tokens.clear();
  positions.clear();
  slots.clear();
  query_start.assign(1, 0);
  kv_len.clear();
  block_indptr.assign(1, 0);
  block_indices.clear();
  logits_rows.clear();
}

}  // namespace llmos
