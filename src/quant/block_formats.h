// Byte layouts of the GGUF block-quantized formats, field for field as they sit in a file.
// Every f16 field is stored as its raw bits (uint16_t, little-endian like the rest of GGUF).
//
// Blocks in a tensor are packed back to back with no padding, so a row need not be aligned for
// these structs: the reference code copies each block in and out with memcpy (see load_block /
// store_block) instead of casting pointers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace llmos::quant {

// Elements per block of the legacy formats (Q4_0 ... Q8_0) and per super-block of the K formats.
inline constexpr int kQK = 32;
inline constexpr int kQKK = 256;
// Bytes of packed 6-bit scales and mins in Q4_K / Q5_K.
inline constexpr int kKScaleBytes = 12;

// Q4_0: x = d * (q - 8); q in [0, 16). Element j sits in the low nibble of qs[j] for j < 16 and
// in the high nibble of qs[j - 16] for j >= 16.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};

// Q4_1: x = d * q + m; q in [0, 16); nibbles laid out as in Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};

// Q5_0: x = d * (q - 16); q in [0, 32). Low 4 bits as in Q4_0; bit 4 of element j is bit j of
// the little-endian 32-bit qh.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};

// Q5_1: x = d * q + m; bits laid out as in Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};

// Q8_0: x = d * q; q a signed byte.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};

// Q2_K: 16 sub-blocks of 16. Sub-block s: x = d * (scales[s] & 15) * q - dmin * (scales[s] >> 4),
// q in [0, 4). Element e = 128*h + 32*k + l (h half, k in 0..3, l in 0..31) is bits 2k..2k+1
// of qs[32*h + l].
struct BlockQ2_K {
  uint8_t scales[kQKK / 16];
  uint8_t qs[kQKK / 4];
  uint16_t d;
  uint16_t dmin;
};

// Q3_K: 16 sub-blocks of 16, x = d * (scale[s] - 32) * (q - 4), q in [0, 8). The low two bits of
// q are placed as in Q2_K; the third bit of element e is bit (e / 32) of hmask[e % 32]. The
// sixteen 6-bit scales are packed into 12 bytes (see q3_k_unpack_scales).
struct BlockQ3_K {
  uint8_t hmask[kQKK / 8];
  uint8_t qs[kQKK / 4];
  uint8_t scales[12];
  uint16_t d;
};

// Q4_K: 8 sub-blocks of 32, x = d * sc[s] * q - dmin * mn[s], q in [0, 16); the 6-bit sc and mn
// are packed into 12 bytes (see k4_get_scale_min). Element e = 64*p + 32*h + l is the low (h = 0)
// or high (h = 1) nibble of qs[32*p + l].
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQKK / 2];
};

// Q5_K: as Q4_K with a fifth bit: bit 4 of element e is bit (e / 32) of qh[e % 32].
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};

// Q6_K: 16 sub-blocks of 16, x = d * scales[s] * (q - 32), q in [0, 64). Element
// e = 128*h + 32*k + l: low nibble from ql[64*h + 32*(k & 1) + l] (low nibble for k < 2, high
// for k >= 2), top two bits from bits 2k..2k+1 of qh[32*h + l].
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};

// The sizes must match core/dtype.cc and the GGUF files on disk exactly.
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

// Reads block i of a packed row (no alignment needed).
template <typename Block>
inline Block load_block(const uint8_t* row, int64_t i) {
  Block b;
  std::memcpy(&b, row + static_cast<size_t>(i) * sizeof(Block), sizeof(Block));
  return b;
}

// Writes block i of a packed row (no alignment needed).
template <typename Block>
inline void store_block(uint8_t* row, int64_t i, const Block& b) {
  std::memcpy(row + static_cast<size_t>(i) * sizeof(Block), &b, sizeof(Block));
}

}  // namespace llmos::quant
