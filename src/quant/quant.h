// Scalar reference (de)quantization for every dtype llmos knows, bit-exact with the GGUF block
// layouts. These are the oracle that every fast kernel is tested against; they favour clarity.
//
// n is a count of elements and must be a multiple of the dtype's block size (kInvalidArgument
// otherwise). Plain types (f32, f16, bf16) are accepted too, so callers need not special-case
// them. Integer types (i8, i16, i32) are not convertible and give kUnsupported.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace llmos {

// dst[0..n) = the values encoded in the blocks at src.
void dequantize_row(DType dtype, const void* src, float* dst, int64_t n);

// Encodes src[0..n) into blocks at dst (dtype_row_bytes(dtype, n) bytes), with the same
// rounding and scale search as the GGUF reference quantizers, so files written by llmos
// quantize the way other GGUF tools do.
void quantize_row(DType dtype, const float* src, void* dst, int64_t n);

// True when quantize_row supports dtype.
bool can_quantize(DType dtype);

}  // namespace llmos
