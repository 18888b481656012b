// Reference (de)quantization of the legacy 32-element formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.
//
// The quantizers follow the GGUF reference quantizers step for step, including the order of the
// float operations, because the point is byte-identical output: Q4_0/Q5_0 scale by the
// signed value of largest magnitude (d = max / -8 or -16, so that value lands exactly on the
// most negative code), Q4_1/Q5_1 spread [min, max] over the code range, Q8_0 uses amax / 127
// with round-half-away-from-zero.
#include "quant/fp_contract_off.h"  // first: the reference rounds every operation

#include <cmath>
#include <cstdint>

#include "core/half.h"
#include "quant/block_formats.h"
#include "quant/quant_rows.h"

namespace llmos::quant {
namespace {

// (int)v truncated toward zero and clamped to [lo, hi]; NaN gives lo. For the in-range values a
// finite input produces this equals the C cast the reference uses; the clamp only keeps
// degenerate scales (a subnormal max, so 1/d = inf) from invoking undefined behaviour.
int trunc_clamped(float v, int lo, int hi) {
  if (!(v > static_cast<float>(lo))) return lo;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(v);
}

// Signed value with the largest magnitude (the first one on ties), 0 for an all-zero block.
float signed_absmax(const float* x) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < kQK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void min_max(const float* x, float* min_out, float* max_out) {
  float min = x[0];
  float max = x[0];
  for (int j = 1; j < kQK; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  *min_out = min;
  *max_out = max;
}

uint32_t load_u32_le(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

void store_u32_le(uint8_t* p, uint32_t v) {
  for (int k = 0; k < 4; ++k) p[k] = static_cast<uint8_t>(v >> (8 * k));
}

// Element j of a 32-element block keeps its low 4 bits in qs[j % 16], low nibble for the first
// half of the block and high nibble for the second.
int low_nibble_of(const uint8_t* qs, int j) {
  return j < kQK / 2 ? (qs[j] & 0x0F) : (qs[j - kQK / 2] >> 4);
}

}  // namespace

void dequantize_q4_0(const uint8_t* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += kQK) {
    const auto b = load_block<BlockQ4_0>(src, i);
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(low_nibble_of(b.qs, j) - 8) * d;
  }
}

void dequantize_q4_1(const uint8_t* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += kQK) {
    const auto b = load_block<BlockQ4_1>(src, i);
    const float d = f16_to_f32(b.d);
    const float m = f16_to_f32(b.m);
    for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(low_nibble_of(b.qs, j)) * d + m;
  }
}

void dequantize_q5_0(const uint8_t* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += kQK) {
    const auto b = load_block<BlockQ5_0>(src, i);
    const float d = f16_to_f32(b.d);
    const uint32_t qh = load_u32_le(b.qh);
    for (int j = 0; j < kQK; ++j) {
      const int q = low_nibble_of(b.qs, j) | static_cast<int>(((qh >> j) & 1u) << 4);
      dst[j] = static_cast<float>(q - 16) * d;
    }
  }
}

void dequantize_q5_1(const uint8_t* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += kQK) {
    const auto b = load_block<BlockQ5_1>(src, i);
    const float d = f16_to_f32(b.d);
    const float m = f16_to_f32(b.m);
    const uint32_t qh = load_u32_le(b.qh);
    for (int j = 0; j < kQK; ++j) {
      const int q = low_nibble_of(b.qs, j) | static_cast<int>(((qh >> j) & 1u) << 4);
      dst[j] = static_cast<float>(q) * d + m;
    }
  }
}

void dequantize_q8_0(const uint8_t* src, float* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, dst += kQK) {
    const auto b = load_block<BlockQ8_0>(src, i);
    const float d = f16_to_f32(b.d);
    for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(b.qs[j]) * d;
  }
}

void quantize_q4_0(const float* src, uint8_t* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += kQK) {
    const float d = signed_absmax(src) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_0 b{};
    b.d = f32_to_f16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = trunc_clamped(src[j] * id + 8.5f, 0, 15);
      const int q1 = trunc_clamped(src[j + kQK / 2] * id + 8.5f, 0, 15);
      b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    store_block(dst, i, b);
  }
}

void quantize_q4_1(const float* src, uint8_t* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += kQK) {
    float min = 0.0f;
    float max = 0.0f;
    min_max(src, &min, &max);
    const float d = (max - min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_1 b{};
    b.d = f32_to_f16(d);
    b.m = f32_to_f16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = trunc_clamped((src[j] - min) * id + 0.5f, 0, 15);
      const int q1 = trunc_clamped((src[j + kQK / 2] - min) * id + 0.5f, 0, 15);
      b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    store_block(dst, i, b);
  }
}

void quantize_q5_0(const float* src, uint8_t* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += kQK) {
    const float d = signed_absmax(src) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ5_0 b{};
    b.d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = trunc_clamped(src[j] * id + 16.5f, 0, 31);
      const int q1 = trunc_clamped(src[j + kQK / 2] * id + 16.5f, 0, 31);
      b.qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>(q0 >> 4) << j;
      qh |= static_cast<uint32_t>(q1 >> 4) << (j + kQK / 2);
    }
    store_u32_le(b.qh, qh);
    store_block(dst, i, b);
  }
}

void quantize_q5_1(const float* src, uint8_t* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += kQK) {
    float min = 0.0f;
    float max = 0.0f;
    min_max(src, &min, &max);
    const float d = (max - min) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ5_1 b{};
    b.d = f32_to_f16(d);
    b.m = f32_to_f16(min);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = trunc_clamped((src[j] - min) * id + 0.5f, 0, 31);
      const int q1 = trunc_clamped((src[j + kQK / 2] - min) * id + 0.5f, 0, 31);
      b.qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>(q0 >> 4) << j;
      qh |= static_cast<uint32_t>(q1 >> 4) << (j + kQK / 2);
    }
    store_u32_le(b.qh, qh);
    store_block(dst, i, b);
  }
}

void quantize_q8_0(const float* src, uint8_t* dst, int64_t nblocks) {
  for (int64_t i = 0; i < nblocks; ++i, src += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(src[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_0 b{};
    b.d = f32_to_f16(d);
    for (int j = 0; j < kQK; ++j) {
      // std::round rounds halves away from zero, like the reference's roundf.
      const float r = std::round(src[j] * id);
      b.qs[j] = static_cast<int8_t>(trunc_clamped(r, -128, 127));
    }
    store_block(dst, i, b);
  }
}

}  // namespace llmos::quant
