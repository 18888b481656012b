// Batch: the one structure that crosses from the scheduler to the kernels. It is flattened
// ("varlen"): the new tokens of every sequence in the step are concatenated, so prefill chunks
// and single-token decodes mix freely. Block tables are in CSR form.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace llmos {

struct Batch {
  std::vector<int32_t> tokens;         // [T] token ids of this step
  std::vector<int32_t> positions;      // [T] absolute position of each token in its sequence
  std::vector<int64_t> slots;          // [T] KV cache slot = block * block_size + offset
  std::vector<int32_t> query_start{0}; // [S+1] indptr into tokens
  std::vector<int32_t> kv_len;         // [S] KV length after this step
  std::vector<int32_t> block_indptr{0};// [S+1] indptr into block_indices
  std::vector<int32_t> block_indices;  // block tables, concatenated
  std::vector<int32_t> logits_rows;    // token indices whose logits are computed, in order

  int num_seqs() const { return static_cast<int>(kv_len.size()); }
  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }

  // Appends a sequence whose first `num_cached` tokens are already in the KV cache and whose
  // `new_tokens` are computed in this step. `block_table` must cover num_cached +
  // new_tokens.size() tokens. `logits` selects which of the new tokens produce logits.
  enum class Logits { kNone, kLast, kAll };
  void add_sequence(std::span<const int32_t> new_tokens, int32_t num_cached,
                    std::span<const int32_t> block_table, int block_size, Logits logits);

  // Checks internal consistency against a cache of num_blocks blocks; throws kInvalidArgument
  // naming the first inconsistency.
  void validate(int block_size, int64_t num_blocks, int32_t vocab_size) const;

  void clear();
};

}  // namespace llmos
