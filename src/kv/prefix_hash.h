// Prefix hashing for the KV prefix cache: each FULL block is identified by a
// 64-bit hash chained over (parent block hash, the block's token ids, optional
// extra keys such as a LoRA id or a cache salt), so equal hashes mean equal
// whole prefixes, not just equal blocks.
//
// The hash is a fast non-cryptographic mix. A false prefix hit would silently
// reuse the wrong K/V rows, so BlockPool also stores each cached block's tokens
// and parent hash and compares them on lookup: a collision between different
// blocks at the same chain position is caught. What remains is a 64-bit
// collision of two different parent chains followed by identical block tokens
// (~n^2 / 2^64 for n cached blocks, i.e. negligible for non-adversarial input).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace llmos {

// Parent hash of the first block of every sequence.
inline constexpr uint64_t kRootBlockHash = 0x6c6c6d6f732d6b76ULL;

uint64_t hash_block_tokens(uint64_t parent_hash, std::span<const int32_t> tokens,
                           std::span<const uint64_t> extra_keys = {});

// Chained hashes of every full block of `tokens` (a trailing partial block is
// not hashed).
std::vector<uint64_t> hash_full_blocks(std::span<const int32_t> tokens, int block_size,
                                       std::span<const uint64_t> extra_keys = {});

}  // namespace llmos
