// Reference (de)quantization of Q5_K: Q4_K's layout plus a fifth code bit per element in qh
// (scale search in k4_super_block.cc).
#include "quant/fp_contract_off.h"  // first: the reference rounds every operation

#include <cstdint>

#include "core/half.h"
#include "quant/block_formats.h"
#include "quant/k4_super_block.h"
#include "quant/k_quant_search.h"
#include "quant/quant_rows.h"

namespace llmos::quant {

void dequantize_q5_k(const uint8_t* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += kQKK) {
    const auto b = load_block<BlockQ5_K>(src, i);
    const float d = f16_to_f32(b.d);
    const float dmin = f16_to_f32(b.dmin);
    for (int g = 0; g < kQKK / 32; ++g) {
      uint8_t sc = 0;
      uint8_t mn = 0;
      k4_get_scale_min(g, b.scales, &sc, &mn);
      const float dg = d * static_cast<float>(sc);
      const float mg = dmin * static_cast<float>(mn);
      const uint8_t* q = b.qs + 32 * (g / 2);
      const int shift = 4 * (g % 2);
      for (int l = 0; l < 32; ++l) {
        // Element 32g + l: low 4 bits as in Q4_K, bit 4 is bit g of qh[l].
        const int code = ((q[l] >> shift) & 0x0F) | (((b.qh[l] >> g) & 1) << 4);
        dst[32 * g + l] = dg * static_cast<float>(code) - mg;
      }
    }
  }
}

void quantize_q5_k(const float* src, uint8_t* dst, int64_t nblocks) {
  constexpr K4SearchParams kParams{31, -0.5f, 0.1f, 15};
  for (int64_t i = 0; i < nblocks; ++i, src += kQKK) {
    BlockQ5_K b{};
    uint8_t L[kQKK];
    quantize_k4_super_block(src, kParams, &b.d, &b.dmin, b.scales, L);
    for (int e = 0; e < kQKK; ++e) {
      if (L[e] > 15) b.qh[e % 32] = static_cast<uint8_t>(b.qh[e % 32] | (1u << (e / 32)));
    }
    for (int p = 0; p < kQKK / 64; ++p) {
      for (int l = 0; l < 32; ++l) {
        const int lo = L[64 * p + l] & 0x0F;
        const int hi = L[64 * p + 32 + l] & 0x0F;
        b.qs[32 * p + l] = static_cast<uint8_t>(lo | (hi << 4));
      }
    }
    store_block(dst, i, b);
  }
}

}  // namespace llmos::quant
