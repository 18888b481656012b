// KvCacheManager: the KV-block allocator the scheduler talks to. It keeps one
// block table per sequence (a vector of block ids, block i holding token
// positions [i*bs, (i+1)*bs)) and answers "allocate these slots" with blocks or
// "no" (the scheduler's cue to preempt). It never allocates partially: a false
// return leaves everything unchanged.
//
// Typical use by a scheduler:
//   admit:    can_admit(prompt.size()) ; n = find_cached_prefix(seq, prompt) //
//   n tokens reused
//             if (!allocate_slots(seq, chunk)) { free(seq); retry later }
//   step:     allocate_slots(seq, k) for the k tokens computed this step (false
//   -> preempt) runner:   take_block_copies() and copy those blocks' K/V rows
//   before writing the step's K/V after:    commit_full_blocks(seq, tokens
//   computed so far) so filled blocks join the cache beam/n>1: fork(parent,
//   child)   finish or preempt: free(seq)
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "kv/block_pool.h"
#include "kv/prefix_hash.h"

namespace llmos {

using SeqId = int64_t;

struct KvCacheManagerOptions {
  int64_t num_blocks = 0;  // including the reserved null block 0
  int block_size = 16;     // tokens per block
  bool enable_prefix_caching = true;
  double watermark = 0.01;  // fraction of usable blocks kept free at admission
};

// K/V rows of block `src` must be copied into block `dst` (copy-on-write)
// before the step.
struct BlockCopy {
  int32_t src = 0;
  int32_t dst = 0;
  bool operator==(const BlockCopy&) const = default;
};

struct KvCacheStats {
  int64_t total_blocks = 0;         // usable blocks (num_blocks - 1)
  int64_t used_blocks = 0;          // referenced by at least one sequence
  int64_t cached_blocks = 0;        // free, holding a prefix hash
  int64_t free_blocks = 0;          // free, no hash
  int64_t prefix_queries = 0;       // find_cached_prefix calls with caching enabled
  int64_t prefix_query_tokens = 0;  // prompt tokens looked up
  int64_t prefix_hit_tokens = 0;    // tokens served from the cache
  double prefix_hit_rate() const {
    return prefix_query_tokens == 0
               ? 0.0
               : static_cast<double>(prefix_hit_tokens) / static_cast<double>(prefix_query_tokens);
  }
};

class KvCacheManager {
 public:
  explicit KvCacheManager(const KvCacheManagerOptions& options);

  int block_size() const { return pool_.block_size(); }

  // For a sequence that has no blocks yet: attaches the longest chain of cached
  // full blocks that prefixes `prompt` (refcount++, out of the free queue) and
  // returns the number of tokens it covers. Always a multiple of block_size and
  // < prompt.size(): at least one token is left to compute so the step produces
  // logits. Creates the sequence if unknown.
  // With leave_last_token false the whole span may be covered (the caller has already left
  // out the token it will compute).
  int64_t find_cached_prefix(SeqId seq, std::span<const int32_t> prompt,
                             bool leave_last_token = true);

  // Reserves KV slots for `num_new_tokens` more tokens of `seq` (creating it if
  // unknown). If the sequence's partially filled last block is shared (after
  // fork), it first gets a private copy, reported by take_block_copies().
  // Returns false, changing nothing, when the pool cannot supply every block
  // needed.
  bool allocate_slots(SeqId seq, int64_t num_new_tokens);

  // `tokens` are the sequence's tokens whose K/V are now computed (a prefix of
  // its slots). Every newly full block gets its chained hash and becomes
  // reusable by later prompts.
  void commit_full_blocks(SeqId seq, std::span<const int32_t> tokens);

  // The child shares every block of the parent (refcount++); no copy happens
  // until one of them appends into a shared, partially filled block.
  void fork(SeqId parent, SeqId child);

  // Drops the sequence: refcount-- on its blocks, released tail first so that
  // the end of a chain is evicted before its prefix. Full hashed blocks stay
  // cached. Unknown ids are a kNotFound error.
  void free(SeqId seq);

  // Whether a new sequence needing `num_tokens` slots fits while keeping the
  // watermark free.
  bool can_admit(int64_t num_tokens) const;

  // Copy-on-write pairs accumulated since the last call; the runner must copy
  // them (all layers, K and V) before writing the step's K/V.
  std::vector<BlockCopy> take_block_copies();

  bool has_sequence(SeqId seq) const { return seqs_.count(seq) != 0; }
  const std::vector<int32_t>& block_table(SeqId seq) const;
  int64_t num_tokens(SeqId seq) const;  // slots reserved so far
  int64_t num_sequences() const { return static_cast<int64_t>(seqs_.size()); }
  std::vector<SeqId> sequence_ids() const;
  int64_t num_free_blocks() const { return pool_.num_free_blocks(); }  // free + cached
  KvCacheStats stats() const;
  const BlockPool& pool() const { return pool_; }

 private:
  struct SeqState {
    std::vector<int32_t> blocks;
    int64_t num_tokens = 0;               // slots reserved
    int64_t num_committed = 0;            // leading full blocks whose chain hash is known
    uint64_t last_hash = kRootBlockHash;  // chain hash of block num_committed-1
  };

  SeqState& state(SeqId seq, const char* what);
  const SeqState& state(SeqId seq, const char* what) const;
  int64_t blocks_for(int64_t tokens) const;

  BlockPool pool_;
  int64_t watermark_blocks_ = 0;
  std::unordered_map<SeqId, SeqState> seqs_;
  std::vector<BlockCopy> copies_;
  int64_t prefix_queries_ = 0;
  int64_t prefix_query_tokens_ = 0;
  int64_t prefix_hit_tokens_ = 0;
};

}  // namespace llmos
