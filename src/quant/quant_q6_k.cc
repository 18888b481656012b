// Reference (de)quantization of Q6_K: 256-element super-blocks of sixteen 16-element groups,
// symmetric 6-bit codes (low nibble in ql, top two bits in qh) and a signed 8-bit scale per group
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
namespace {

// Where element e = 128h + 32k + l keeps its bits (see BlockQ6_K).
int ql_index(int e) { return 64 * (e / 128) + 32 * ((e / 32) % 2) + e % 32; }
int ql_shift(int e) { return (e % 128) >= 64 ? 4 : 0; }
int qh_index(int e) { return 32 * (e / 128) + e % 32; }
int qh_shift(int e) { return 2 * ((e % 128) / 32); }

}  // namespace

void dequantize_q6_k(const uint8_t* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += kQKK) {
    const auto b = load_block<BlockQ6_K>(src, i);
    const float d = f16_to_f32(b.d);
    for (int e = 0; e < kQKK; ++e) {
      const int low = (b.ql[ql_index(e)] >> ql_shift(e)) & 0x0F;
      const int high = (b.qh[qh_index(e)] >> qh_shift(e)) & 3;
      const int q = (low | (high << 4)) - 32;
      // (d * scale) * q: the reference's association.
      dst[e] = d * static_cast<float>(b.scales[e / 16]) * static_cast<float>(q);
    }
  }
}

void quantize_q6_k(const float* src, uint8_t* dst, int64_t nblocks) {
  constexpr int kGroups = kQKK / 16;
  for (int64_t i = 0; i < nblocks; ++i, src += kQKK) {
    int8_t L[kQKK];
    float scales[kGroups];
    float max_scale = 0.0f;
    float max_abs_scale = 0.0f;
    for (int g = 0; g < kGroups; ++g) {
      scales[g] = make_qx_quants(16, 32, src + 16 * g, L + 16 * g);
      const float a = std::fabs(scales[g]);
      if (a > max_abs_scale) {
        max_abs_scale = a;
        max_scale = scales[g];
      }
    }

    BlockQ6_K b{};  // an all-(near-)zero super-block stays all zero bytes
    if (max_abs_scale >= 1e-15f) {
      // Signed 8-bit group scales: the largest maps to -128, so d = max_scale / -128.
      const float iscale = -128.0f / max_scale;
      b.d = f32_to_f16(1.0f / iscale);
      for (int g = 0; g < kGroups; ++g) {
        b.scales[g] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[g])));
      }
      // Re-derive the codes against the scales as stored; L becomes code + 32 in [0, 64).
      const float d_all = f16_to_f32(b.d);
      for (int g = 0; g < kGroups; ++g) {
        const float d = d_all * static_cast<float>(b.scales[g]);
        if (d == 0.0f) continue;  // keep make_qx_quants' codes (already biased by +32)
        for (int l = 0; l < 16; ++l) {
          const int q = nearest_int(src[16 * g + l] / d);
          L[16 * g + l] = static_cast<int8_t>(std::max(-32, std::min(31, q)) + 32);
        }
      }
      for (int e = 0; e < kQKK; ++e) {
        const int q = L[e];
        b.ql[ql_index(e)] = static_cast<uint8_t>(b.ql[ql_index(e)] | ((q & 0x0F) << ql_shift(e)));
        b.qh[qh_index(e)] = static_cast<uint8_t>(b.qh[qh_index(e)] | ((q >> 4) << qh_shift(e)));
      }
    }
    store_block(dst, i, b);
  }
}

}  // namespace llmos::quant
