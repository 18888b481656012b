// Scale searches shared by the K-format reference quantizers, plus the scale packing that Q4_K
// and Q5_K share and the one Q3_K uses.
//
// These reproduce the GGUF reference quantizers' searches exactly (same candidates, same order of
// float operations, same tie-breaking), since a different but "equally good" choice would give
// different bytes than other GGUF tools.
#pragma once

#include <bit>
#include <cstdint>

namespace llmos::quant {

// Nearest integer with ties to even, via the float trick the reference uses: adding 1.5 * 2^23
// leaves the rounded value in the low mantissa bits. Meaningful for |v| < 2^22; anything else
// (including inf/nan from degenerate scales) gives some int without undefined behaviour, and
// every caller clamps the result.
inline int nearest_int(float v) {
  const uint32_t bits = std::bit_cast<uint32_t>(v + 12582912.0f);
  return static_cast<int>(bits & 0x007fffffu) - 0x00400000;
}

// Symmetric codes for x[0..n) in [-nmax, nmax): chooses a scale by least squares weighted by
// x^2, trying 19 candidate inverse scales around -nmax / max. Writes L[i] = code + nmax and
// returns the scale (0 for an all-(near-)zero group). Used by Q6_K.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L);

// Symmetric codes in [-nmax, nmax) refined by coordinate descent (up to 5 sweeps) on the x^2
// weighted least-squares error. Writes L[i] = code + nmax, returns the scale. Used by Q3_K.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L);

// Asymmetric codes in [0, nmax] for x ~ scale * L + min with min <= 0: starts from the min/max
// range, then tries nstep + 1 inverse scales (nmax + rmin + rdelta * k) / (max - min), each
// followed by a weighted least-squares fit of (scale, min); keeps the lowest weighted error
// (absolute when use_mad, squared otherwise). Returns the scale; *neg_min = -min >= 0.
// Laux is scratch of n bytes. Used by Q2_K, Q4_K, Q5_K.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* neg_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                       bool use_mad);

// Q4_K / Q5_K: eight 6-bit scales and eight 6-bit mins in 12 bytes. Sub-blocks 0..3 use the low
// 6 bits of bytes 0..3 (scale) and 4..7 (min); sub-blocks 4..7 keep their low 4 bits in bytes
// 8..11 (scale low nibble, min high nibble) and their top 2 bits in the top bits of bytes 0..7.
inline void k4_get_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
    *mn = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Inverse of k4_get_scale_min for all eight sub-blocks; sc[j], mn[j] must be < 64.
inline void k4_pack_scale_min(const uint8_t* sc, const uint8_t* mn, uint8_t* q) {
  for (int j = 0; j < 4; ++j) {
    q[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0F) | ((mn[j + 4] & 0x0F) << 4));
  }
}

// Q3_K: sixteen 6-bit scales (stored with a +32 bias) in 12 bytes. Scale j keeps its low nibble
// in byte j % 8 (low nibble for j < 8, high for j >= 8) and its top 2 bits at bit 2 * (j / 4)
// of byte 8 + j % 4. Returns the unbiased scale in [-32, 32).
inline int q3k_get_scale(int j, const uint8_t* q) {
  const int low = j < 8 ? (q[j] & 0x0F) : (q[j - 8] >> 4);
  const int high = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

// Inverse of q3k_get_scale for all sixteen scales; biased[j] (scale + 32) must be < 64.
inline void q3k_pack_scales(const uint8_t* biased, uint8_t* q) {
  for (int k = 0; k < 12; ++k) q[k] = 0;
  for (int j = 0; j < 16; ++j) {
    q[j % 8] |= static_cast<uint8_t>((biased[j] & 0x0F) << (j < 8 ? 0 : 4));
    q[8 + j % 4] |= static_cast<uint8_t>((biased[j] >> 4) << (2 * (j / 4)));
  }
}

// Q2_K and Q3_K store 2-bit codes four to a byte: element 128*h + 32*k + l lands in bits
// 2k..2k+1 of byte 32*h + l. L holds 256 codes, each < 4.
inline void pack_2bit_codes(const uint8_t* L, uint8_t* qs) {
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t* e = L + 128 * h + l;
      qs[32 * h + l] = static_cast<uint8_t>(e[0] | (e[32] << 2) | (e[64] << 4) | (e[96] << 6));
    }
  }
}

// The 2-bit code of element e (0..255) from a pack_2bit_codes layout.
inline int get_2bit_code(const uint8_t* qs, int e) {
  const int h = e / 128;
  const int k = (e % 128) / 32;
  const int l = e % 32;
  return (qs[32 * h + l] >> (2 * k)) & 3;
}

}  // namespace llmos::quant
