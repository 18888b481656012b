// Per-format row kernels behind quant.h's dispatch. Each works on whole blocks: src/dst point at
// nblocks packed blocks (any alignment) and nblocks * block_size floats. Arguments are checked by
// the dispatcher (quant.cc), so these trust their inputs; quantizers expect finite values.
#pragma once

#include <cstdint>

namespace llmos::quant {

// Legacy 32-element formats (quant_legacy.cc).
void dequantize_q4_0(const uint8_t* src, float* dst, int64_t nblocks);
void dequantize_q4_1(const uint8_t* src, float* dst, int64_t nblocks);
void dequantize_q5_0(const uint8_t* src, float* dst, int64_t nblocks);
void dequantize_q5_1(const uint8_t* src, float* dst, int64_t nblocks);
void dequantize_q8_0(const uint8_t* src, float* dst, int64_t nblocks);
void quantize_q4_0(const float* src, uint8_t* dst, int64_t nblocks);
void quantize_q4_1(const float* src, uint8_t* dst, int64_t nblocks);
void quantize_q5_0(const float* src, uint8_t* dst, int64_t nblocks);
void quantize_q5_1(const float* src, uint8_t* dst, int64_t nblocks);
void quantize_q8_0(const float* src, uint8_t* dst, int64_t nblocks);

// 256-element K formats (quant_q2_k.cc ... quant_q6_k.cc).
void dequantize_q2_k(const uint8_t* src, float* dst, int64_t nblocks);
void dequantize_q3_k(const uint8_t* src, float* dst, int64_t nblocks);
void dequantize_q4_k(const uint8_t* src, float* dst, int64_t nblocks);
void dequantize_q5_k(const uint8_t* src, float* dst, int64_t nblocks);
void dequantize_q6_k(const uint8_t* src, float* dst, int64_t nblocks);
void quantize_q2_k(const float* src, uint8_t* dst, int64_t nblocks);
void quantize_q3_k(const float* src, uint8_t* dst, int64_t nblocks);
void quantize_q4_k(const float* src, uint8_t* dst, int64_t nblocks);
void quantize_q5_k(const float* src, uint8_t* dst, int64_t nblocks);
void quantize_q6_k(const float* src, uint8_t* dst, int64_t nblocks);

}  // namespace llmos::quant
