// Device-side element decoders for the weight formats the CUDA kernels read: element j of a
// row, exactly as quant/ dequantizes it (same float association), addressed by bytes so rows
// need no alignment beyond what the plain types require.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "core/dtype.h"

namespace llmos::kernels::cuda {

__device__ __forceinline__ uint32_t ld_u16(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8);
}
__device__ __forceinline__ float half_bits_to_float(uint32_t bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}
__device__ __forceinline__ float ld_half(const uint8_t* p) { return half_bits_to_float(ld_u16(p)); }
__device__ __forceinline__ float bf16_bits_to_float(uint32_t bits) { return __uint_as_float(bits << 16); }

// Nibble j of the 16-byte Q4-style layout: low nibbles hold elements 0..15, high ones 16..31.
__device__ __forceinline__ int nibble32(const uint8_t* qs, int l) {
  return l < 16 ? (qs[l] & 0x0F) : (qs[l - 16] >> 4);
}

__device__ __forceinline__ void k4_scale_min(int g, const uint8_t* q, int* sc, int* mn) {
  if (g < 4) {
    *sc = q[g] & 63;
    *mn = q[g + 4] & 63;
  } else {
    *sc = (q[g + 4] & 0x0F) | ((q[g - 4] >> 6) << 4);
    *mn = (q[g + 4] >> 4) | ((q[g] >> 6) << 4);
  }
}

// a * b + c rounded twice, as the host reference computes it (nvcc would fuse it into an FMA).
__device__ __forceinline__ float mul_add(float a, float b, float c) { return __fadd_rn(__fmul_rn(a, b), c); }

template <DType DT>
__device__ __forceinline__ float dq_elem(const uint8_t* row, int64_t j) {
  if constexpr (DT == DType::kF32) {
    return reinterpret_cast<const float*>(row)[j];
  } else if constexpr (DT == DType::kF16) {
    return half_bits_to_float(reinterpret_cast<const uint16_t*>(row)[j]);
  } else if constexpr (DT == DType::kBF16) {
    return bf16_bits_to_float(reinterpret_cast<const uint16_t*>(row)[j]);
  } else if constexpr (DT == DType::kQ4_0) {
    const uint8_t* b = row + (j / 32) * 18;
    return static_cast<float>(nibble32(b + 2, static_cast<int>(j % 32)) - 8) * ld_half(b);
  } else if constexpr (DT == DType::kQ4_1) {
    const uint8_t* b = row + (j / 32) * 20;
    return mul_add(static_cast<float>(nibble32(b + 4, static_cast<int>(j % 32))), ld_half(b), ld_half(b + 2));
  } else if constexpr (DT == DType::kQ5_0) {
    const uint8_t* b = row + (j / 32) * 22;
    const int l = static_cast<int>(j % 32);
    const uint32_t qh = ld_u16(b + 2) | (ld_u16(b + 4) << 16);
    const int q = nibble32(b + 6, l) | static_cast<int>(((qh >> l) & 1u) << 4);
    return static_cast<float>(q - 16) * ld_half(b);
  } else if constexpr (DT == DType::kQ5_1) {
    const uint8_t* b = row + (j / 32) * 24;
    const int l = static_cast<int>(j % 32);
    const uint32_t qh = ld_u16(b + 4) | (ld_u16(b + 6) << 16);
    const int q = nibble32(b + 8, l) | static_cast<int>(((qh >> l) & 1u) << 4);
    return mul_add(static_cast<float>(q), ld_half(b), ld_half(b + 2));
  } else if constexpr (DT == DType::kQ8_0) {
    const uint8_t* b = row + (j / 32) * 34;
    return static_cast<float>(static_cast<int8_t>(b[2 + j % 32])) * ld_half(b);
  } else if constexpr (DT == DType::kQ4_K || DT == DType::kQ5_K) {
    constexpr int kBytes = DT == DType::kQ4_K ? 144 : 176;
    const uint8_t* b = row + (j / 256) * kBytes;
    const int e = static_cast<int>(j % 256);
    const int g = e / 32, l = e % 32;
    int sc = 0, mn = 0;
    k4_scale_min(g, b + 4, &sc, &mn);
    const uint8_t* qs = b + (DT == DType::kQ4_K ? 16 : 48);
    int q = (qs[32 * (g / 2) + l] >> (4 * (g % 2))) & 0x0F;
    if constexpr (DT == DType::kQ5_K) q |= ((b[16 + l] >> g) & 1) << 4;
    const float dg = ld_half(b) * static_cast<float>(sc);
    const float mg = ld_half(b + 2) * static_cast<float>(mn);
    return mul_add(dg, static_cast<float>(q), -mg);
  } else if constexpr (DT == DType::kQ6_K) {
    const uint8_t* b = row + (j / 256) * 210;
    const int e = static_cast<int>(j % 256);
    const int low = (b[64 * (e / 128) + 32 * ((e / 32) % 2) + e % 32] >> ((e % 128) >= 64 ? 4 : 0)) & 0x0F;
    const int high = (b[128 + 32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    const int q = (low | (high << 4)) - 32;
    const float scale = static_cast<float>(static_cast<int8_t>(b[192 + e / 16]));
    return ld_half(b + 208) * scale * static_cast<float>(q);
  } else {
    static_assert(DT == DType::kF32, "dq_elem: dtype without a CUDA decoder");
    return 0.0f;
  }
}

// Calls f.template run<DT>() for a runtime dtype; returns false for a dtype the CUDA kernels
// cannot decode (the caller reports it).
template <typename F>
__host__ bool dispatch_weight_dtype(DType dtype, F& f) {
  switch (dtype) {
    case DType::kF32: f.template run<DType::kF32>(); return true;
    case DType::kF16: f.template run<DType::kF16>(); return true;
    case DType::kBF16: f.template run<DType::kBF16>(); return true;
    case DType::kQ4_0: f.template run<DType::kQ4_0>(); return true;
    case DType::kQ4_1: f.template run<DType::kQ4_1>(); return true;
    case DType::kQ5_0: f.template run<DType::kQ5_0>(); return true;
    case DType::kQ5_1: f.template run<DType::kQ5_1>(); return true;
    case DType::kQ8_0: f.template run<DType::kQ8_0>(); return true;
    case DType::kQ4_K: f.template run<DType::kQ4_K>(); return true;
    case DType::kQ5_K: f.template run<DType::kQ5_K>(); return true;
    case DType::kQ6_K: f.template run<DType::kQ6_K>(); return true;
    default: return false;
  }
}

}  // namespace llmos::kernels::cuda
