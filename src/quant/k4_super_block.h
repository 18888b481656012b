// The part of the Q4_K and Q5_K reference quantizers that they share: choosing the per-group
// scales and mins of one 256-element super-block and the resulting codes. Only the code width
// (4 or 5 bits) and the scale-search parameters differ between the two formats.
#pragma once

#include <cstdint>

namespace llmos::quant {

struct K4SearchParams {
  int nmax;     // largest code: 15 (Q4_K) or 31 (Q5_K)
  float rmin;   // make_qkx2_quants search: first candidate offset, step, steps
  float rdelta;
  int nstep;
};

// Fills d, dmin (f16 bits), the 12 packed scale bytes and L[0..256) with codes in [0, nmax] for
// the super-block at x, so that x[e] ~ d * sc[e / 32] * L[e] - dmin * mn[e / 32].
void quantize_k4_super_block(const float* x, const K4SearchParams& params, uint16_t* d,
                             uint16_t* dmin, uint8_t* scales, uint8_t* L);

}  // namespace llmos::quant
