// Scalar reference (de)quantization for every dtype llmos knows, bit-exact with the GGUF block
// layouts. These are the oracle that every fast kernel is tested against; they favour clarity.
//
// n is a count of elements and must be a multiple of the dtype's block size (kInvalidArgument
// otherwise). Plain types (f32, f16, bf16) are accepted too, so callers need not special-case
// them. Integer types (i8, i16, i32) and unknown dtype ids give kUnsupported. src and dst may
// be null only when n == 0. The packed side (a GGUF row) needs no particular alignment.
//
// Implementation map: quant.cc (this dispatch and f32/f16/bf16), quant_legacy.cc (Q4_0 ... Q8_0),
// quant_q2_k.cc ... quant_q6_k.cc (K formats), k_quant_search.* and k4_super_block.* (the
// reference scale searches), block_formats.h (the byte layouts).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace llmos {

// dst[0..n) = the values encoded in the blocks at src.
void dequantize_row(DType dtype, const void* src, float* dst, int64_t n);

// Encodes src[0..n) into blocks at dst (dtype_row_bytes(dtype, n) bytes), with the same
// rounding and scale search as the GGUF reference quantizers, so files written by llmos
// quantize the way other GGUF tools do. For the block formats every src value must be finite
// (kInvalidArgument names the first one that is not); f16/bf16 convert inf and nan as IEEE does.
void quantize_row(DType dtype, const float* src, void* dst, int64_t n);

// True when quantize_row supports dtype.
bool can_quantize(DType dtype);

}  // namespace llmos
