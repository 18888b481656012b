// FNV-1a, 64-bit: a small non-cryptographic hash for fingerprints and checksums (model
// identity of a context snapshot, the snapshot file checksum, detecting a reused weight
// address). Chainable: pass the previous result as `h` to hash several pieces as one.
#pragma once

#include <cstddef>
#include <cstdint>

namespace llmos {

inline constexpr uint64_t kFnv1aOffset = 0xcbf29ce484222325ULL;

inline uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

}  // namespace llmos
