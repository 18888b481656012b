// Reference (de)quantization of Q4_K: 256-element super-blocks of eight 32-element groups, 4-bit
// codes with a 6-bit scale and min per group (scale search in k4_super_block.cc).
#include "quant/fp_contract_off.h"  // first: the reference rounds every operation

#include <cstdint>

#include "core/half.h"
#include "quant/block_formats.h"
#include "quant/k4_super_block.h"
#include "quant/k_quant_search.h"
#include "quant/quant_rows.h"

namespace llmos::quant {

void dequantize_q4_k(const uint8_t* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += kQKK) {
    const auto b = load_block<BlockQ4_K>(src, i);
    const float d = f16_to_f32(b.d);
    const float dmin = f16_to_f32(b.dmin);
    for (int g = 0; g < kQKK / 32; ++g) {
      uint8_t sc = 0;
      uint8_t mn = 0;
      k4_get_scale_min(g, b.scales, &sc, &mn);
      const float dg = d * static_cast<float>(sc);
      const float mg = dmin * static_cast<float>(mn);
      // Groups 2p and 2p + 1 share the 32 bytes qs[32p ...]: low nibbles, then high nibbles.
      const uint8_t* q = b.qs + 32 * (g / 2);
      const int shift = 4 * (g % 2);
      for (int l = 0; l < 32; ++l) {
        dst[32 * g + l] = dg * static_cast<float>((q[l] >> shift) & 0x0F) - mg;
      }
    }
  }
}

void quantize_q4_k(const float* src, uint8_t* dst, int64_t nblocks) {
  constexpr K4SearchParams kParams{15, -1.0f, 0.1f, 20};
  for (int64_t i = 0; i < nblocks; ++i, src += kQKK) {
    BlockQ4_K b{};
    uint8_t L[kQKK];
    quantize_k4_super_block(src, kParams, &b.d, &b.dmin, b.scales, L);
    for (int p = 0; p < kQKK / 64; ++p) {
      for (int l = 0; l < 32; ++l) {
        b.qs[32 * p + l] = static_cast<uint8_t>(L[64 * p + l] | (L[64 * p + 32 + l] << 4));
      }
    }
    store_block(dst, i, b);
  }
}

}  // namespace llmos::quant
