// Shared between the matmul dispatcher (matmul_cpu.cc, no ISA flags) and its ISA kernels
// (avx512/matmul_*_avx512.cc, avx2/matmul_*_avx2.cc): the packed weight layouts and the kernel
// entry points. Nothing here is inline code: a function defined in a header and compiled into
// both an AVX-512 file and a generic file could be linked from the AVX-512 copy and run on a
// CPU without AVX-512.
//
// Packed layouts ("column groups"). Output columns (weight rows) are taken L at a time, L = 16
// for AVX-512 (one zmm of f32 or int32 lanes) and 8 for AVX2; the last group is padded with zero
// rows. Group g (rows g*L .. g*L+L-1) starts at data + g * row_bytes (64-byte aligned) and holds
// everything those rows need, in the order the kernel reads it, so a group streams linearly:
//   kLayoutQ4_0:  [scales: nb blocks x L f16, padded to 64 bytes][codes: nb blocks x 4 chunks];
//                 chunk s of block b = for each row c, bytes qs[4s .. 4s+3] of its GGUF block b
//                 (low nibbles: elements 4s..4s+3, high nibbles: 16+4s..16+4s+3), L*4 bytes.
//   kLayoutQ8_0U8 / kLayoutQ8_0S8: as Q4_0 with 8 chunks of 4 codes per block; U8 stores
//                 code + 128 (the unsigned operand of vpdpbusd; AVX-512), S8 the code (AVX2).
//   kLayoutF32 / kLayoutF16: k steps of L values (element t of each row c).
//   kLayoutBf16 / kLayoutBf16Dp: ceil(k/2) steps of L dwords (elements 2p, 2p+1 of row c: low
//                 and high half), a zero pad element when k is odd. The activations differ:
//                 Bf16 (FMA kernels) takes rows of bf16-rounded f32 with each pair stored odd
//                 element first (the order the chain consumes them), Bf16Dp (vdpbf16ps) rows of
//                 bf16 pairs; both padded to an even length. Bf16Dp is chosen only where CPUID
//                 advertises AVX512_BF16.
// nb = k / 32.
//
// Activations for Q4_0 / Q8_0 are kernels::Q8ActBlock. Scalar and AVX2 keep them as rows of nb
// blocks. AVX-512 interleaves them in tiles of kActTileRows rows (the GEMM's register tile), block
// b of the tile's rows side by side, so a kernel walks a whole tile with one pointer:
//   block b of row i at ((i / kActTileRows) * nb + b) * kActTileRows + i % kActTileRows.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/matmul_cpu.h"
#include "kernels/matmul_q8.h"

namespace llmos::kernels::cpu::detail {

inline constexpr int kActTileRows = 12;

enum Layout : int {
  kLayoutGguf = 0,
  kLayoutQ4_0 = 1,
  kLayoutQ8_0U8 = 2,
  kLayoutQ8_0S8 = 3,
  kLayoutF32 = 4,
  kLayoutF16 = 5,
  kLayoutBf16 = 6,
  kLayoutBf16Dp = 7,
};

// Packs for `layout` with the given lanes; pack_weight() calls this, tests call it directly to
// force kLayoutBf16Dp. Throws like pack_weight.
PackedWeight pack_weight_layout(Isa isa, int layout, DType dtype, const void* data, int64_t n,
                                int64_t k, int64_t row_bytes);

// Block `block` of activation row `row` in the phase-1 output of a Q4_0 / Q8_0 weight.
const Q8ActBlock* q8_act_block(const PackedWeight& w, const void* act, int64_t row, int64_t block);

// ---- AVX-512 (call only when isa_supported(Isa::kAvx512); Dp only with vdpbf16ps) ----
// Quantizes one row into k / 32 blocks written `block_stride` blocks apart.
void quantize_q8_act_avx512(const float* x, int64_t k, Q8ActBlock* out, int64_t block_stride);
void round_bf16_row_avx512(const float* x, int64_t k, bool pairs, void* out);
// Columns [n_begin, n_end) for all args.m rows; arguments already validated.
void matmul_q4_0_avx512(const MatmulArgs& args, int64_t n_begin, int64_t n_end);
void matmul_q8_0_avx512(const MatmulArgs& args, int64_t n_begin, int64_t n_end);
void matmul_f32_avx512(const MatmulArgs& args, int64_t n_begin, int64_t n_end);
void matmul_f16_avx512(const MatmulArgs& args, int64_t n_begin, int64_t n_end);
void matmul_bf16_avx512(const MatmulArgs& args, int64_t n_begin, int64_t n_end);
void matmul_bf16_dp_avx512(const MatmulArgs& args, int64_t n_begin, int64_t n_end);

// ---- AVX2 + FMA + F16C ----
void quantize_q8_act_avx2(const float* x, int64_t k, Q8ActBlock* out);
void round_bf16_row_avx2(const float* x, int64_t k, void* out);  // bf16-rounded f32
void matmul_q4_0_avx2(const MatmulArgs& args, int64_t n_begin, int64_t n_end);
void matmul_q8_0_avx2(const MatmulArgs& args, int64_t n_begin, int64_t n_end);
void matmul_f32_avx2(const MatmulArgs& args, int64_t n_begin, int64_t n_end);
void matmul_f16_avx2(const MatmulArgs& args, int64_t n_begin, int64_t n_end);
void matmul_bf16_avx2(const MatmulArgs& args, int64_t n_begin, int64_t n_end);

// ---- Ceilings for benchmarks: register-only loops of one instruction, 12 independent chains ----
// Returns the operations done (a multiply-add counts 2): vpdpbusd (AVX2: vpmaddubsw), FMA,
// vdpbf16ps (AVX-512 with AVX512_BF16 only).
enum class PeakLoop { kInt8Dot, kFp32Fma, kBf16Dot };
double peak_loop_avx512(PeakLoop loop, int64_t iterations);
double peak_loop_avx2(PeakLoop loop, int64_t iterations);
// The Q4_0 GEMM's register tile (12 rows x 16 columns, exact q8 math with its per-block float
// step) over L1-resident data, `iterations` times; returns the int8 operations done. Its rate is
// the format's cap for the GEMM (benchmarks only).
double q4_0_tile_loop_avx512(int64_t iterations);
// Reads `bytes` (a multiple of 256, 64-byte aligned) with full-width loads; returns a checksum.
uint64_t read_loop_avx512(const void* data, size_t bytes);
uint64_t read_loop_avx2(const void* data, size_t bytes);

}  // namespace llmos::kernels::cpu::detail
