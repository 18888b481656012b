#include "kv/prefix_hash.h"

#include "core/error.h"

namespace llmos {
namespace {

// A bijective 64-bit finalizer (splitmix64's): every input bit affects every
// output bit.
uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

}  // namespace

uint64_t hash_block_tokens(uint64_t parent_hash, std::span<const int32_t> tokens,
                           std::span<const uint64_t> extra_keys) {
  uint64_t h = mix64(parent_hash ^ kGolden);
  for (int32_t t : tokens) h = mix64(h + kGolden + static_cast<uint32_t>(t));
  // Lengths are mixed in so (tokens, extra keys) splits cannot alias each
  // other.
  h = mix64(h ^ (static_cast<uint64_t>(tokens.size()) << 1));
  for (uint64_t k : extra_keys) h = mix64(h + kGolden + k);
  return mix64(h ^ ((static_cast<uint64_t>(extra_keys.size()) << 1) | 1));
}

std::vector<uint64_t> hash_full_blocks(std::span<const int32_t> tokens, int block_size,
                                       std::span<const uint64_t> extra_keys) {
  LLMOS_CHECK_ARG(block_size > 0, "hash_full_blocks: block_size must be positive, got ",
                  block_size);
  std::vector<uint64_t> out;
  const size_t bs = static_cast<size_t>(block_size);
  out.reserve(tokens.size() / bs);
  uint64_t parent = kRootBlockHash;
  for (size_t start = 0; start + bs <= tokens.size(); start += bs) {
    parent = hash_block_tokens(parent, tokens.subspan(start, bs), extra_keys);
    out.push_back(parent);
  }
  return out;
}

}  // namespace llmos
