// Reference (de)quantization of Q3_K: 256-element super-blocks of sixteen 16-element groups,
// symmetric 3-bit codes (2 low bits in qs, the third in hmask) and a signed 6-bit scale per group
// relative to one f16 super-scale.
#include "quant/fp_contract_off.h"  // first: the reference rounds every operation

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/half.h"
#include "quant/block_formats.h"
#include "quant/k_quant_search.h"
#include "quant/quant_rows.h"

namespace llmos::quant {

void dequantize_q3_k(const uint8_t* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += kQKK) {
    const auto b = load_block<BlockQ3_K>(src, i);
    const float d_all = f16_to_f32(b.d);
    for (int s = 0; s < kQKK / 16; ++s) {
      const float dl = d_all * static_cast<float>(q3k_get_scale(s, b.scales));
      for (int l = 0; l < 16; ++l) {
        const int e = 16 * s + l;
        const int high = (b.hmask[e % 32] >> (e / 32)) & 1;
        const int q = (get_2bit_code(b.qs, e) | (high << 2)) - 4;
        dst[e] = dl * static_cast<float>(q);
      }
    }
  }
}

void quantize_q3_k(const float* src, uint8_t* dst, int64_t nblocks) {
  constexpr int kGroups = kQKK / 16;
  for (int64_t i = 0; i < nblocks; ++i, src += kQKK) {
    int8_t L[kQKK];
    float scales[kGroups];
    // Per group: codes in [-4, 4) and a scale; remember the signed scale of largest magnitude.
    float max_scale = 0.0f;
    float amax = 0.0f;
    for (int g = 0; g < kGroups; ++g) {
      scales[g] = make_q3_quants(16, 4, src + 16 * g, L + 16 * g);
      const float a = std::fabs(scales[g]);
      if (a > amax) {
        amax = a;
        max_scale = scales[g];
      }
    }

    BlockQ3_K b{};
    if (max_scale != 0.0f) {
      // Signed 6-bit group scales: the largest maps to -32, so d = max_scale / -32.
      const float iscale = -32.0f / max_scale;
      uint8_t biased[kGroups];
      for (int g = 0; g < kGroups; ++g) {
        // The reference narrows nearest_int's result to int8 before clamping; keep that.
        const auto l = static_cast<int8_t>(nearest_int(iscale * scales[g]));
        biased[g] = static_cast<uint8_t>(std::max<int>(-32, std::min<int>(31, l)) + 32);
      }
      q3k_pack_scales(biased, b.scales);
      b.d = f32_to_f16(1.0f / iscale);
    } else {
      b.d = f32_to_f16(0.0f);
    }

    // Re-derive the codes against the scales as stored; L becomes code + 4 in [0, 8).
    const float d_all = f16_to_f32(b.d);
    for (int g = 0; g < kGroups; ++g) {
      const float d = d_all * static_cast<float>(q3k_get_scale(g, b.scales));
      if (d == 0.0f) continue;  // keep make_q3_quants' codes (already biased by +4)
      for (int l = 0; l < 16; ++l) {
        const int q = nearest_int(src[16 * g + l] / d);
        L[16 * g + l] = static_cast<int8_t>(std::max(-4, std::min(3, q)) + 4);
      }
    }

    // Bit 2 of each code goes to hmask: element e sets bit e / 32 of hmask[e % 32].
    uint8_t low[kQKK];
    for (int e = 0; e < kQKK; ++e) {
      int q = L[e];
      if (q > 3) {
        b.hmask[e % 32] = static_cast<uint8_t>(b.hmask[e % 32] | (1u << (e / 32)));
        q -= 4;
      }
      low[e] = static_cast<uint8_t>(q);
    }
    pack_2bit_codes(low, b.qs);
    store_block(dst, i, b);
  }
}

}  // namespace llmos::quant
