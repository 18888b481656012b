// ContextSnapshot: a conversation's context switched out of the engine — its
// token history and the K/V rows of those tokens — so it can be resumed later,
// in this process or another, into whatever KV blocks are free then, giving
// exactly the logits it would have had.
//
// File format (little-endian), version 1:
//   "LLMOSCTX" u32 version | u64 model fingerprint | i32 layers, kv_heads,
//   head_dim, block_size, dtype (GGML id) | i64 n_tokens, i32 tokens[n_tokens]
//   | i64 n_kv_tokens, i64 block_bytes, i64 n_blocks, bytes[n_blocks *
//   block_bytes] | u64 FNV-1a of all before.
// Loading checks every count against the file size before allocating, the
// checksum, and the layout's consistency; a mismatch is a kFormat error naming
// the file, the field and offset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kv/host_kv.h"
#include "kv/kv_cache.h"

namespace llmos {

struct ContextSnapshot {
  uint64_t model_fingerprint = 0;  // which model's K/V these are (see Engine)
  KvCacheSpec layout;              // num_blocks unused; dtype/geometry must match to restore
  std::vector<int32_t> tokens;     // the whole history; the K/V of the first kv.num_tokens
  HostKv kv;                       // are in `kv` (the last sampled token has none yet)

  // Throws kInvalidArgument naming the first inconsistency (counts, sizes,
  // layout).
  void validate() const;
  void save(const std::string& path) const;              // kIo on write failure
  static ContextSnapshot load(const std::string& path);  // kIo / kFormat
};

}  // namespace llmos
