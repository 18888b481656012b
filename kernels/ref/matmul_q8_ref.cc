// Scalar references of the fast CPU matmul math (see kernels/matmul_q8.h for the definitions).
// Written for clarity: the SIMD kernels must reproduce these results bit for bit.
#include "quant/fp_contract_off.h"  // first: every multiply and add here rounds on its own

#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/matmul_q8.h"
#include "quant/block_formats.h"

namespace llmos::kernels {
namespace {

// round(v) half away from zero as an int in [-128, 127]; NaN gives -128 (what the SIMD
// conversion + saturating pack produce), so no input is undefined behaviour.
int round_to_code(float v) {
  if (!(v > -128.0f)) return -128;
  if (v >= 127.0f) return 127;
  return static_cast<int>(std::round(v));
}

bool valid_range(int64_t n, int64_t m, int64_t n_begin, int64_t n_end) {
  return m >= 0 && n_begin >= 0 && n_begin <= n_end && n_end <= n;
}

// The exact integer dot product of weight block `b` of a GGUF row with one activation block.
int32_t block_isum(DType dtype, const uint8_t* row, int64_t b, const Q8ActBlock& a) {
  int32_t isum = 0;
  if (dtype == DType::kQ4_0) {
    const auto w = quant::load_block<quant::BlockQ4_0>(row, b);
    for (int t = 0; t < quant::kQK / 2; ++t) {
      isum += ((w.qs[t] & 0x0F) - 8) * a.qs[t];
      isum += ((w.qs[t] >> 4) - 8) * a.qs[t + quant::kQK / 2];
    }
  } else {
    const auto w = quant::load_block<quant::BlockQ8_0>(row, b);
    for (int t = 0; t < quant::kQK; ++t) isum += w.qs[t] * a.qs[t];
  }
  return isum;
}

float block_scale(DType dtype, const uint8_t* row, int64_t b) {
  uint16_t d = 0;  // the f16 scale is the first field of both block types
  const int64_t block_bytes =
      dtype == DType::kQ4_0 ? sizeof(quant::BlockQ4_0) : sizeof(quant::BlockQ8_0);
  std::memcpy(&d, row + b * block_bytes, sizeof(d));
  return f16_to_f32(d);
}

// Weight element t of row `row` as f32 (exact).
float plain_weight(DType dtype, const uint8_t* row, int64_t t) {
  if (dtype == DType::kF32) {
    float w;
    std::memcpy(&w, row + 4 * t, 4);
    return w;
  }
  uint16_t h;
  std::memcpy(&h, row + 2 * t, 2);
  return dtype == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
}

float bf16_round(float x) { return bf16_to_f32(f32_to_bf16(x)); }

}  // namespace

void quantize_row_q8_act(const float* x, int64_t k, Q8ActBlock* out) {
  for (int64_t b = 0; b < k / kQ8ActBlockSize; ++b, x += kQ8ActBlockSize) {
    float amax = 0.0f;
    for (int t = 0; t < kQ8ActBlockSize; ++t) amax = std::fmax(amax, std::fabs(x[t]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    Q8ActBlock& a = out[b];
    a.d = d;
    a.sum = 0;
    for (int t = 0; t < kQ8ActBlockSize; ++t) {
      a.qs[t] = static_cast<int8_t>(round_to_code(x[t] * id));
      a.sum += a.qs[t];
    }
    a.neg_sum8 = -8 * a.sum;
    a.neg_sum128 = -128 * a.sum;
  }
}

StatusCode matmul_q8_ref(const MatmulQ8Params& p, int64_t n_begin, int64_t n_end) {
  if (p.weight == nullptr || p.act == nullptr || (p.y == nullptr && p.m > 0))
    return StatusCode::kInvalidArgument;
  if (p.weight_dtype != DType::kQ4_0 && p.weight_dtype != DType::kQ8_0)
    return StatusCode::kUnsupported;
  if (!valid_range(p.n, p.m, n_begin, n_end) || p.k <= 0 || p.k % kQ8ActBlockSize != 0 ||
      p.weight_row_bytes < dtype_row_bytes(p.weight_dtype, p.k))
    return StatusCode::kInvalidArgument;
  const int64_t nb = p.k / kQ8ActBlockSize;
  const auto* w = static_cast<const uint8_t*>(p.weight);
  for (int64_t j = n_begin; j < n_end; ++j) {
    const uint8_t* row = w + j * p.weight_row_bytes;
    for (int64_t i = 0; i < p.m; ++i) {
      const Q8ActBlock* a = p.act + i * nb;
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const float scale = block_scale(p.weight_dtype, row, b) * a[b].d;
        acc = std::fma(scale, static_cast<float>(block_isum(p.weight_dtype, row, b, a[b])), acc);
      }
      p.y[i * p.y_stride + j] = p.bias ? acc + p.bias[j] : acc;
    }
  }
  return StatusCode::kOk;
}

StatusCode matmul_fp_chain_ref(const MatmulParams& p, int64_t n_begin, int64_t n_end) {
  if (p.weight == nullptr || ((p.x == nullptr || p.y == nullptr) && p.m > 0))
    return StatusCode::kInvalidArgument;
  const DType dt = p.weight_dtype;
  if (dt != DType::kF32 && dt != DType::kF16 && dt != DType::kBF16) return StatusCode::kUnsupported;
  if (!valid_range(p.n, p.m, n_begin, n_end) || p.k <= 0 ||
      p.weight_row_bytes < dtype_row_bytes(dt, p.k))
    return StatusCode::kInvalidArgument;
  const auto* w = static_cast<const uint8_t*>(p.weight);
  for (int64_t j = n_begin; j < n_end; ++j) {
    const uint8_t* row = w + j * p.weight_row_bytes;
    for (int64_t i = 0; i < p.m; ++i) {
      const float* x = p.x + i * p.x_stride;
      float acc = 0.0f;
      if (dt == DType::kBF16) {
        for (int64_t t = 0; t < p.k; t += 2) {
          const bool pair = t + 1 < p.k;
          const float w1 = pair ? plain_weight(dt, row, t + 1) : 0.0f;
          const float x1 = pair ? bf16_round(x[t + 1]) : 0.0f;
          acc = std::fma(w1, x1, acc);
          acc = std::fma(plain_weight(dt, row, t), bf16_round(x[t]), acc);
        }
      } else {
        for (int64_t t = 0; t < p.k; ++t) acc = std::fma(plain_weight(dt, row, t), x[t], acc);
      }
      p.y[i * p.y_stride + j] = p.bias ? acc + p.bias[j] : acc;
    }
  }
  return StatusCode::kOk;
}

}  // namespace llmos::kernels
