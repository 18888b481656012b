// Fast CPU matrix multiplication: y[m, n] = x[m, k] · W[n, k]^T (+ bias), W in any GGUF dtype,
// x and y f32 (see kernels/matmul.h for the reference and the GGUF row layout).
//
// A call runs in two phases so threads never redo shared work:
//   1. quantize_activations(): x rows -> the format the weight's dot product uses (q8_0-style
//      int8 blocks of 32 for Q4_0/Q8_0, bf16 for BF16 weights; nothing for F32/F16, which read
//      x directly, nor for dtypes on the reference fallback). Rows are independent: split them
//      over threads. The layout of that buffer belongs to the kernels.
//   2. matmul_columns(): output columns [n_begin, n_end) for all m rows: split over threads.
//
// Batch invariance (a contract every implementation keeps): y[i][j] depends only on x row i,
// weight row j and the ISA — never on m, on which other rows share the call, or on the column
// split. So a prompt gives the same logits alone or batched with others (the engine's
// "batched output == solitary output" guarantee), and decode (m = 1) and prefill (m > 1) agree.
//
// The arithmetic of the Q4_0, Q8_0, F32, F16 and BF16 paths is fixed by the exact references in
// kernels/matmul_q8.h, which every ISA (scalar, AVX2, AVX-512) reproduces bit for bit; other
// dtypes (K-quants, Q4_1, Q5_x, ...) run kernels::matmul_ref for now.
//
// Weights may be repacked once at load into a layout the kernels stream faster (pack_weight);
// a PackedWeight that is a view of the GGUF bytes is fine too. Kernels never allocate or throw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/isa.h"

namespace llmos::kernels::cpu {

struct PackedWeight {
  DType dtype = DType::kF32;    // the GGUF dtype of the weight
  int64_t n = 0, k = 0;         // rows (output features), columns (input features)
  Isa isa = Isa::kScalar;       // the kernels it was packed for
  int layout = 0;               // 0: GGUF rows as stored (row_bytes apart); others: ISA-specific
                                // column groups (kernels/cpu/matmul_cpu_internal.h)
  const void* data = nullptr;   // the weight bytes in `layout`
  int64_t row_bytes = 0;        // layout 0: bytes between GGUF rows; others: between groups
  std::shared_ptr<void> owned;  // a repacked copy, when there is one (64-byte aligned)
  size_t owned_bytes = 0;
};

// Whether `isa` has a fast path for weights of `dtype` (others fall back to the reference).
bool has_fast_matmul(Isa isa, DType dtype);

// Prepares a weight for `isa`. Returns a view (no copy) or a repacked copy. Throws
// kInvalidArgument for shapes the dtype cannot have (k not a multiple of its block, row_bytes
// shorter than a row, empty), kUnsupported for an ISA this CPU lacks.
PackedWeight pack_weight(Isa isa, DType dtype, const void* data, int64_t n, int64_t k,
                         int64_t row_bytes);

// Bytes of quantized activations for m rows (0 when the kernel reads f32 x directly).
size_t activation_bytes(const PackedWeight& w, int64_t m);

// Floats of per-thread scratch matmul_columns needs: k for dtypes on the reference fallback
// (kernels::matmul_ref dequantizes one weight row there), 0 otherwise.
size_t scratch_floats(const PackedWeight& w);

// Column ranges that start at a multiple of this (the kernels' column group: 16 for AVX-512,
// 8 for AVX2, 1 for views) split the work without redundant columns; any split is correct.
int64_t column_granule(const PackedWeight& w);

struct MatmulArgs {
  const PackedWeight* weight = nullptr;
  const float* bias = nullptr;  // [n] or null
  const float* x = nullptr;     // [m, k], row stride x_stride floats
  int64_t x_stride = 0;
  const void* act = nullptr;  // quantize_activations() output (when activation_bytes > 0)
  float* y = nullptr;         // [m, n], row stride y_stride floats
  int64_t y_stride = 0;
  int64_t m = 0;
  float* scratch = nullptr;  // scratch_floats(*weight) floats private to the calling thread
};

// Phase 1: quantizes x rows [row_begin, row_end) into `act` (activation_bytes(w, m) bytes).
StatusCode quantize_activations(const PackedWeight& w, const float* x, int64_t x_stride,
                                int64_t row_begin, int64_t row_end, void* act);

// Phase 2: output columns [n_begin, n_end) for all m rows.
StatusCode matmul_columns(const MatmulArgs& args, int64_t n_begin, int64_t n_end);

}  // namespace llmos::kernels::cpu
