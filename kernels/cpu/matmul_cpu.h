// Fast CPU matrix multiplication: y[m, n] = x[m, k] · W[n, k]^T (+ bias), W in any GGUF dtype,
// x and y f32 (see kernels/matmul.h for the reference and the GGUF row layout).
//
// A call runs in two phases so threads never redo shared work:
//   1. quantize_activations(): x rows -> the integer format the weight's dot product uses
//      (q8_0-style blocks of 32 for Q4_0/Q8_0, q8_K-style blocks of 256 for K-quants, bf16 for
//      BF16 weights; nothing for F32/F16, which read x directly). Rows are independent: split
//      them over threads.
//   2. matmul_columns(): output columns [n_begin, n_end) for all m rows: split over threads.
//
// Batch invariance (a contract every implementation keeps): y[i][j] depends only on x row i,
// weight row j and the ISA — never on m, on which other rows share the call, or on the column
// split. So a prompt gives the same logits alone or batched with others (the engine's
// "batched output == solitary output" guarantee), and decode (m = 1) and prefill (m > 1) agree.
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
  DType dtype = DType::kF32;     // the GGUF dtype of the weight
  int64_t n = 0, k = 0;          // rows (output features), columns (input features)
  Isa isa = Isa::kScalar;        // the kernels it was packed for
  int layout = 0;                // 0: GGUF rows as stored (row_bytes apart); others: ISA-specific
  const void* data = nullptr;    // the weight bytes in `layout`
  int64_t row_bytes = 0;         // layout 0 only
  std::shared_ptr<void> owned;   // a repacked copy, when there is one
  size_t owned_bytes = 0;
};

// Whether `isa` has a fast path for weights of `dtype` (others fall back to the reference).
bool has_fast_matmul(Isa isa, DType dtype);

// Prepares a weight for `isa`. Returns a view (no copy) or a repacked copy. Throws
// kInvalidArgument for shapes the dtype cannot have (k not a multiple of its block).
PackedWeight pack_weight(Isa isa, DType dtype, const void* data, int64_t n, int64_t k,
                         int64_t row_bytes);

// Bytes of quantized activations for m rows (0 when the kernel reads f32 x directly).
size_t activation_bytes(const PackedWeight& w, int64_t m);

struct MatmulArgs {
  const PackedWeight* weight = nullptr;
  const float* bias = nullptr;   // [n] or null
  const float* x = nullptr;      // [m, k], row stride x_stride floats
  int64_t x_stride = 0;
  const void* act = nullptr;     // quantize_activations() output (when activation_bytes > 0)
  float* y = nullptr;            // [m, n], row stride y_stride floats
  int64_t y_stride = 0;
  int64_t m = 0;
};

// Phase 1: quantizes x rows [row_begin, row_end) into `act` (activation_bytes(w, m) bytes).
StatusCode quantize_activations(const PackedWeight& w, const float* x, int64_t x_stride,
                                int64_t row_begin, int64_t row_end, void* act);

// Phase 2: output columns [n_begin, n_end) for all m rows.
StatusCode matmul_columns(const MatmulArgs& args, int64_t n_begin, int64_t n_end);

}  // namespace llmos::kernels::cpu
