// Reference (de)quantization of Q2_K: 256-element super-blocks of sixteen 16-element groups,
// 2-bit codes with a 4-bit scale and a 4-bit min per group, both relative to f16 super-scales.
#include "quant/fp_contract_off.h"  // first: the reference rounds every operation

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/half.h"
#include "quant/block_formats.h"
#include "quant/k_quant_search.h"
#include "quant/quant_rows.h"

namespace llmos::quant {

void dequantize_q2_k(const uint8_t* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += kQKK) {
    const auto b = load_block<BlockQ2_K>(src, i);
    const float d = f16_to_f32(b.d);
    const float dmin = f16_to_f32(b.dmin);
    for (int s = 0; s < kQKK / 16; ++s) {
      const float dl = d * static_cast<float>(b.scales[s] & 0x0F);
      const float ml = dmin * static_cast<float>(b.scales[s] >> 4);
      for (int l = 0; l < 16; ++l) {
        const int e = 16 * s + l;
        dst[e] = dl * static_cast<float>(get_2bit_code(b.qs, e)) - ml;
      }
    }
  }
}

void quantize_q2_k(const float* src, uint8_t* dst, int64_t nblocks) {
  constexpr int kGroups = kQKK / 16;
  constexpr float kScaleMax = 15.0f;  // 4-bit group scales and mins
  for (int64_t i = 0; i < nblocks; ++i, src += kQKK) {
    uint8_t L[kQKK];
    uint8_t Laux[16];
    float weights[16];
    float scales[kGroups];
    float mins[kGroups];
    float max_scale = 0.0f;
    float max_min = 0.0f;
    // Per group: codes, scale and min with errors weighted by |x| (absolute-error fit).
    for (int g = 0; g < kGroups; ++g) {
      const float* x = src + 16 * g;
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[l]);
      scales[g] = make_qkx2_quants(16, 3, x, weights, L + 16 * g, &mins[g], Laux, -0.5f, 0.1f, 15,
                                   true);
      max_scale = std::max(max_scale, scales[g]);
      max_min = std::max(max_min, mins[g]);
    }

    BlockQ2_K b{};
    // Quantize the group scales and mins to 4 bits against the largest of each. The reference
    // stores nearest_int's result straight into a byte, so keep that narrowing.
    if (max_scale > 0.0f) {
      const float iscale = kScaleMax / max_scale;
      for (int g = 0; g < kGroups; ++g) {
        b.scales[g] = static_cast<uint8_t>(nearest_int(iscale * scales[g]));
      }
      b.d = f32_to_f16(max_scale / kScaleMax);
    } else {
      b.d = f32_to_f16(0.0f);
    }
    if (max_min > 0.0f) {
      const float iscale = kScaleMax / max_min;
      for (int g = 0; g < kGroups; ++g) {
        const auto lm = static_cast<uint32_t>(nearest_int(iscale * mins[g]));
        b.scales[g] = static_cast<uint8_t>(b.scales[g] | (lm << 4));
      }
      b.dmin = f32_to_f16(max_min / kScaleMax);
    } else {
      b.dmin = f32_to_f16(0.0f);
    }

    // Re-derive the codes against the scales as stored (f16 super-scales, 4-bit group scales).
    const float d_all = f16_to_f32(b.d);
    const float dmin_all = f16_to_f32(b.dmin);
    for (int g = 0; g < kGroups; ++g) {
      const float d = d_all * static_cast<float>(b.scales[g] & 0x0F);
      if (d == 0.0f) continue;
      const float dm = dmin_all * static_cast<float>(b.scales[g] >> 4);
      for (int l = 0; l < 16; ++l) {
        const int q = nearest_int((src[16 * g + l] + dm) / d);
        L[16 * g + l] = static_cast<uint8_t>(std::max(0, std::min(3, q)));
      }
    }
    pack_2bit_codes(L, b.qs);
    store_block(dst, i, b);
  }
}

}  // namespace llmos::quant
