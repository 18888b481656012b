// Fast CPU matmul for K-quant weights (Q4_K, Q5_K, Q6_K — what Q4_K_M files hold):
// y[m, n] = x[m, k] · W[n, k]^T (+ bias), x quantized per row to q8_K-style int8 blocks of 256.
//
// Same two phases as kernels/cpu/matmul_cpu.h:
//   1. kquant_quantize_activations(): rows of x -> act (split rows over threads).
//   2. kquant_matmul_*columns(): output columns [n_begin, n_end) for all m rows (split columns
//      over threads; splitting at multiples of kKquantPanel avoids computing a panel twice).
//
// The arithmetic is the one fixed in kernels/matmul_q8k.h: exact int32 sums per 256-block, then
// f32 fma steps per block in block order. So every ISA here (scalar, AVX2, AVX-512) gives results
// bit-identical to matmul_q8k_ref, and y[i][j] never depends on m, on the other rows, on the
// column split or on the row tiling (batch invariance, as in matmul_cpu.h).
//
// Weights: kquant_pack() repacks GGUF rows once (load time) into column panels of 16 rows of W,
// interleaved so that one 64-byte vector holds 4 consecutive codes of 16 output columns; the
// kernels then put output columns in SIMD lanes (no horizontal sums) and read each weight byte
// once per row tile. Packed size: Q4_K 148, Q5_K 180, Q6_K 210 bytes per 256 weights (GGUF: 144,
// 176, 210), n rounded up to 16; packing runs at about 3 GB/s of GGUF bytes on one core of the
// development machine (~35 ms per 100 MB at load). kquant_matmul_columns() takes GGUF rows as
// they are and packs panels on the fly into a stack buffer: same bits, but for small m the
// packing dominates (GEMV ~10x slower), so decode should use the packed form.
//
// Kernels never allocate or throw; they return kInvalidArgument / kUnsupported instead.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/isa.h"
#include "kernels/matmul_q8k.h"

namespace llmos::kernels::cpu {

// Output columns per packed panel (the lane count of one AVX-512 int32 vector).
inline constexpr int64_t kKquantPanel = 16;

// Q4_K, Q5_K or Q6_K.
bool kquant_weight_supported(DType dtype);

// Whether this CPU runs the kquant kernels of `isa` (same as isa_supported(): the AVX-512
// kernels use F, BW, VL and VNNI — never BF16 — and the AVX2 ones AVX2, FMA and F16C).
bool kquant_isa_usable(Isa isa);

// Bytes of one quantized activation row (0 when k is not a positive multiple of 256).
int64_t kquant_activation_row_bytes(int64_t k);
// Bytes of quantized activations for m rows.
size_t kquant_activation_bytes(int64_t m, int64_t k);

// Phase 1: quantizes x rows [row_begin, row_end) (row stride x_stride floats) into act, which
// holds all m rows (row i at i * kquant_activation_row_bytes(k)). act must be 4-byte aligned
// (64 is best); x, y and the weights need no alignment beyond their element type's.
StatusCode kquant_quantize_activations(Isa isa, const float* x, int64_t x_stride,
                                       int64_t row_begin, int64_t row_end, int64_t k, void* act);

// Reads block `block` of activation row `row` back as a q8_K block (for tests and debugging).
void kquant_read_activation_block(const void* act, int64_t k, int64_t row, int64_t block,
                                  Q8KBlock* out);

// Number of 16-column panels for n output columns, and bytes of the packed weight (0 when the
// dtype is not a K-quant this file handles or k is not a positive multiple of 256).
int64_t kquant_panel_count(int64_t n);
size_t kquant_packed_bytes(DType dtype, int64_t n, int64_t k);

// Repacks panels [panel_begin, panel_end) of the n x k GGUF weight (rows row_bytes apart) into
// `packed` (kquant_packed_bytes bytes; each panel lands at its own offset, so panels can be packed
// by several threads). Columns past n are zero.
StatusCode kquant_pack(DType dtype, const void* w, int64_t row_bytes, int64_t n, int64_t k,
                       void* packed, int64_t panel_begin, int64_t panel_end);

// Phase 2 on packed weights: y[i][j] for i < m, j in [n_begin, n_end) (n_end <= n).
StatusCode kquant_matmul_packed_columns(Isa isa, DType dtype, const void* packed, int64_t n,
                                        int64_t k, const float* bias, const void* act, int64_t m,
                                        float* y, int64_t y_stride, int64_t n_begin,
                                        int64_t n_end);

// Phase 2 on GGUF rows (row_bytes apart), packing each panel on the fly.
StatusCode kquant_matmul_columns(Isa isa, DType dtype, const void* w, int64_t row_bytes, int64_t k,
                                 const float* bias, const void* act, int64_t m, float* y,
                                 int64_t y_stride, int64_t n_begin, int64_t n_end);

// ---------------------------------------------------------------------------------------------
// Internals shared by matmul_kquant.cc and the ISA files (not for other callers).
namespace kquant_detail {

// An activation row: k int8 codes, then one KqActMeta per 256-block. The fields beyond q8_K's
// d and bsums are precomputed so the kernels can broadcast them straight from memory.
struct KqActMeta {
  int32_t neg32_bsums[16];  // -32 * bsums[g]: the Q6_K offset, used to seed the accumulators
  float d;
  int16_t bsums[16];        // sums of each 16 codes (q8_K's bsums)
  int16_t bsums32[8];       // sums of each 32 codes (for the Q4_K / Q5_K mins)
  uint8_t reserved[12];
};
static_assert(sizeof(KqActMeta) == 128);

// Helpers used by the ISA files are `static`: each file gets its own copy, so no copy compiled
// with ISA flags can be shared with generic code (scripts/check-isa-objects.sh checks).
static inline const KqActMeta* act_meta(const uint8_t* act_row, int64_t k) {
  return reinterpret_cast<const KqActMeta*>(act_row + k);
}

// Packed panel-block layouts (16 columns c, one 256-element block). A "step" (p, t) is the pair of
// 64-byte weight vectors W0, W1 the kernels feed to one vpdpbusd each: lane c of W0 holds codes
// 4t .. 4t + 3 of sub-block 2p of column c, W1 the same for sub-block 2p + 1.
struct PackQ4K {
  static constexpr int kD = 0;        // uint16 d[16] (f16 bits)
  static constexpr int kDmin = 32;    // uint16 dmin[16]
  static constexpr int kSc = 64;      // uint8 sc[8][16]: 6-bit scale of sub-block s, column c
  static constexpr int kMn = 192;     // uint8 mn[4][16][2]: mins of sub-blocks 2t, 2t + 1
  static constexpr int kQs = 320;     // uint8 qs[4][8][16][4]: step (p, t), column c, code i:
                                      // low nibble in W0, high nibble in W1
  static constexpr int kBytes = 2368;
};
struct PackQ5K : PackQ4K {
  static constexpr int kQh = 2368;    // uint8 qh[8][16][4]: bit s = fifth bit of element 32s+4t+i
  static constexpr int kBytes = 2880;
};
struct PackQ6K {
  static constexpr int kD = 0;        // uint16 d[16]
  static constexpr int kSc = 32;      // int8 sc[16][16]
  static constexpr int kQl = 288;     // uint8 ql[8][4][16][4]: low 4 bits, W0 low / W1 high nibble
  static constexpr int kQh = 2336;    // uint8 qh[4][4][16][4]: top 2 bits for steps (2pp, t) in
                                      // bits 0-1 (W0), 2-3 (W1) and (2pp+1, t) in bits 4-5, 6-7
  static constexpr int kBytes = 3360;
};
static_assert(PackQ4K::kQs + 2048 == PackQ4K::kBytes && PackQ5K::kQh + 512 == PackQ5K::kBytes);
static_assert(PackQ6K::kQh + 1024 == PackQ6K::kBytes);

int64_t pack_block_bytes(DType dtype);  // 0 for other dtypes

// One call of a panel kernel: columns [n_begin, n_end) (panels n_begin / 16 ... ), all m rows,
// blocks [block_begin, block_end). Block b of panel p sits at
// panels + (p - panel_base) * panel_stride + (b - block_begin) * pack_block_bytes(dtype).
// With first == false the running sums are read back from y (a previous call over earlier
// blocks stored them); with last == false they are stored without the bias.
struct PanelArgs {
  DType dtype = DType::kQ4_K;
  const uint8_t* panels = nullptr;
  int64_t panel_stride = 0;
  int64_t panel_base = 0;
  int64_t block_begin = 0, block_end = 0;
  const uint8_t* act = nullptr;
  int64_t act_row_bytes = 0;
  int64_t k = 0;
  int64_t m = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
  const float* bias = nullptr;
  int64_t n_begin = 0, n_end = 0;
  bool first = true, last = true;
};

void panels_scalar(const PanelArgs& a);
void panels_avx2(const PanelArgs& a);
void panels_avx512(const PanelArgs& a);

// Quantize `rows` rows of x into consecutive activation rows starting at act.
void quantize_rows_scalar(const float* x, int64_t x_stride, int64_t rows, int64_t k, uint8_t* act);
void quantize_rows_avx2(const float* x, int64_t x_stride, int64_t rows, int64_t k, uint8_t* act);
void quantize_rows_avx512(const float* x, int64_t x_stride, int64_t rows, int64_t k, uint8_t* act);

// Register-only loop for the benchmarks' int8 ceiling: iters x 16 independent vpdpbusd (zmm).
int32_t int8_peak_probe_avx512(int64_t iters);

// Fills the meta fields derived from bsums (bsums32, neg32_bsums) — shared by every quantizer.
static inline void finish_meta(KqActMeta* meta) {
  for (int s = 0; s < 8; ++s)
    meta->bsums32[s] = static_cast<int16_t>(meta->bsums[2 * s] + meta->bsums[2 * s + 1]);
  for (int g = 0; g < 16; ++g) meta->neg32_bsums[g] = -32 * meta->bsums[g];
  for (auto& r : meta->reserved) r = 0;
}

}  // namespace kquant_detail
}  // namespace llmos::kernels::cpu
