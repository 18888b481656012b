// Scalar reference of the K-quant x q8_K matmul (see kernels/matmul_q8k.h for the arithmetic).
#include "quant/fp_contract_off.h"  // first: every float step below rounds exactly as written

#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/matmul_q8k.h"
#include "quant/block_formats.h"
#include "quant/k_quant_search.h"

namespace llmos::kernels {
namespace {

// GGUF's nearest_int: round half to even through the float adder (valid for |x| < 2^22).
int nearest_int(float x) {
  const float shifted = x + 12582912.0f;
  int32_t bits = 0;
  std::memcpy(&bits, &shifted, sizeof(bits));
  return (bits & 0x007fffff) - 0x00400000;
}

// Codes of one Q4_K / Q5_K block in element order, plus the unpacked sub-block scales and mins.
template <typename Block>
void unpack_k4(const Block& b, int* q, int* sc, int* mn) {
  for (int s = 0; s < 8; ++s) {
    uint8_t scale = 0, min = 0;
    quant::k4_get_scale_min(s, b.scales, &scale, &min);
    sc[s] = scale;
    mn[s] = min;
    const uint8_t* qs = b.qs + 32 * (s / 2);
    for (int l = 0; l < 32; ++l) q[32 * s + l] = (qs[l] >> (4 * (s % 2))) & 0x0F;
  }
}

float block_q4_q5(DType dtype, const uint8_t* row, int64_t i, const Q8KBlock& a, float acc) {
  int q[256], sc[8], mn[8];
  float d = 0.0f, dmin = 0.0f;
  if (dtype == DType::kQ4_K) {
    const auto b = quant::load_block<quant::BlockQ4_K>(row, i);
    unpack_k4(b, q, sc, mn);
    d = f16_to_f32(b.d);
    dmin = f16_to_f32(b.dmin);
  } else {
    const auto b = quant::load_block<quant::BlockQ5_K>(row, i);
    unpack_k4(b, q, sc, mn);
    for (int e = 0; e < 256; ++e) q[e] |= ((b.qh[e % 32] >> (e / 32)) & 1) << 4;
    d = f16_to_f32(b.d);
    dmin = f16_to_f32(b.dmin);
  }
  int32_t s_sum = 0, m_sum = 0;
  for (int s = 0; s < 8; ++s) {
    int32_t dot = 0;
    for (int l = 0; l < 32; ++l) dot += q[32 * s + l] * a.qs[32 * s + l];
    s_sum += sc[s] * dot;
    m_sum += mn[s] * (a.bsums[2 * s] + a.bsums[2 * s + 1]);
  }
  acc = std::fma(d * a.d, static_cast<float>(s_sum), acc);
  return std::fma(-(dmin * a.d), static_cast<float>(m_sum), acc);
}

float block_q6(const uint8_t* row, int64_t i, const Q8KBlock& a, float acc) {
  const auto b = quant::load_block<quant::BlockQ6_K>(row, i);
  int32_t s_sum = 0;
  for (int s = 0; s < 16; ++s) {
    int32_t dot = 0;
    for (int l = 0; l < 16; ++l) {
      // Element e = 128h + 32k + l' (see BlockQ6_K): low nibble in ql, top bits in qh.
      const int e = 16 * s + l;
      const int h = e / 128, kk = (e / 32) % 4, ll = e % 32;
      const int low = (b.ql[64 * h + 32 * (kk & 1) + ll] >> (kk >= 2 ? 4 : 0)) & 0x0F;
      const int high = (b.qh[32 * h + ll] >> (2 * kk)) & 3;
      dot += (low | (high << 4)) * a.qs[e];
    }
    s_sum += b.scales[s] * (dot - 32 * a.bsums[s]);
  }
  return std::fma(f16_to_f32(b.d) * a.d, static_cast<float>(s_sum), acc);
}

}  // namespace

void quantize_row_q8k_ref(const float* x, int64_t k, Q8KBlock* out) {
  for (int64_t i = 0; i < k / kQ8KBlockSize; ++i, x += kQ8KBlockSize) {
    Q8KBlock& y = out[i];
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < kQ8KBlockSize; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      y = Q8KBlock{};
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQ8KBlockSize; ++j) {
      const int v = nearest_int(iscale * x[j]);
      y.qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    for (int g = 0; g < kQ8KBlockSize / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y.qs[16 * g + l];
      y.bsums[g] = static_cast<int16_t>(sum);
    }
    y.d = 1.0f / iscale;
  }
}

bool q8k_weight_supported(DType dtype) {
  return dtype == DType::kQ4_K || dtype == DType::kQ5_K || dtype == DType::kQ6_K;
}

float dot_kquant_q8k_ref(DType weight_dtype, const uint8_t* w_row, const Q8KBlock* act,
                         int64_t nblocks) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nblocks; ++b) {
    acc = weight_dtype == DType::kQ6_K ? block_q6(w_row, b, act[b], acc)
                                       : block_q4_q5(weight_dtype, w_row, b, act[b], acc);
  }
  return acc;
}

StatusCode matmul_q8k_ref(DType weight_dtype, const void* w, int64_t row_bytes, int64_t k,
                          const float* bias, const Q8KBlock* act, int64_t m, float* y,
                          int64_t y_stride, int64_t n_begin, int64_t n_end) {
  if (!q8k_weight_supported(weight_dtype)) return StatusCode::kUnsupported;
  if (k <= 0 || k % kQ8KBlockSize != 0 || m < 0 || n_begin < 0 || n_begin > n_end)
    return StatusCode::kInvalidArgument;
  const int64_t nb = k / kQ8KBlockSize;
  if (row_bytes < nb * dtype_block_bytes(weight_dtype) || (m > 1 && y_stride < n_end))
    return StatusCode::kInvalidArgument;
  if (m > 0 && n_end > n_begin && (w == nullptr || act == nullptr || y == nullptr))
    return StatusCode::kInvalidArgument;
  const auto* rows = static_cast<const uint8_t*>(w);
  for (int64_t j = n_begin; j < n_end; ++j) {
    for (int64_t i = 0; i < m; ++i) {
      const float acc = dot_kquant_q8k_ref(weight_dtype, rows + j * row_bytes, act + i * nb, nb);
      y[i * y_stride + j] = bias ? acc + bias[j] : acc;
    }
  }
  return StatusCode::kOk;
}

}  // namespace llmos::kernels
