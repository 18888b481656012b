#include "quant/k4_super_block.h"

#include "quant/fp_contract_off.h"  // before any arithmetic: no fused multiply-adds

#include <algorithm>
#include <cmath>

#include "core/half.h"
#include "quant/block_formats.h"
#include "quant/k_quant_search.h"

namespace llmos::quant {

void quantize_k4_super_block(const float* x, const K4SearchParams& params, uint16_t* d,
                             uint16_t* dmin, uint8_t* scales, uint8_t* L) {
  constexpr int kGroups = kQKK / 32;
  constexpr float kScaleMax = 63.0f;  // 6-bit group scales and mins
  float group_scale[kGroups];
  float group_min[kGroups];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int g = 0; g < kGroups; ++g) {
    const float* xg = x + 32 * g;
    // Weights favour large values, offset by the group's RMS so small ones still count.
    float sum_x2 = 0.0f;
    for (int l = 0; l < 32; ++l) sum_x2 += xg[l] * xg[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    float weights[32];
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xg[l]);
    uint8_t Laux[32];
    group_scale[g] = make_qkx2_quants(32, params.nmax, xg, weights, L + 32 * g, &group_min[g],
                                      Laux, params.rmin, params.rdelta, params.nstep, false);
    max_scale = std::max(max_scale, group_scale[g]);
    max_min = std::max(max_min, group_min[g]);
  }

  // 6-bit group scales and mins relative to the largest of each. The reference narrows
  // nearest_int's result to a byte before clamping to 63; keep that order.
  const float inv_scale = max_scale > 0.0f ? kScaleMax / max_scale : 0.0f;
  const float inv_min = max_min > 0.0f ? kScaleMax / max_min : 0.0f;
  uint8_t sc[kGroups];
  uint8_t mn[kGroups];
  for (int g = 0; g < kGroups; ++g) {
    sc[g] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * group_scale[g])));
    mn[g] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * group_min[g])));
  }
  k4_pack_scale_min(sc, mn, scales);
  *d = f32_to_f16(max_scale / kScaleMax);
  *dmin = f32_to_f16(max_min / kScaleMax);

  // Re-derive the codes against the scales as stored (f16 super-scales, 6-bit group scales).
  const float d_all = f16_to_f32(*d);
  const float dmin_all = f16_to_f32(*dmin);
  for (int g = 0; g < kGroups; ++g) {
    uint8_t s = 0;
    uint8_t m = 0;
    k4_get_scale_min(g, scales, &s, &m);
    const float dg = d_all * static_cast<float>(s);
    if (dg == 0.0f) continue;
    const float dm = dmin_all * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) {
      const int q = nearest_int((x[32 * g + l] + dm) / dg);
      L[32 * g + l] = static_cast<uint8_t>(std::max(0, std::min(params.nmax, q)));
    }
  }
}

}  // namespace llmos::quant
