// Rotary position embedding, in place, on rows of [heads, head_dim] vectors.
// Two pairings exist in GGUF models: "normal" rotates adjacent pairs (x[2i], x[2i+1]) (llama
// architecture, whose q/k weights were permuted at conversion), "neox" rotates (x[i],
// x[i + rot_dim/2]) (qwen2). Only the first rot_dim dimensions of each head rotate.
// The angle for pair i at position p is p * inv_freq[i]; inv_freq already carries any
// frequency scaling (linear, llama3, per-dimension factors), and `attn_factor` scales cos/sin.
#pragma once

#include <cstdint>

#include "core/error.h"

namespace llmos::kernels {

struct RopeParams {
  float* x = nullptr;           // [rows, heads * head_dim], row stride x_stride floats
  int64_t x_stride = 0;
  int64_t rows = 0;
  int heads = 0;
  int head_dim = 0;
  int rot_dim = 0;              // even, <= head_dim
  const int32_t* positions = nullptr;  // [rows]
  const float* inv_freq = nullptr;     // [rot_dim / 2]
  float attn_factor = 1.0f;
  bool neox = false;
};

StatusCode rope_ref(const RopeParams& p, int64_t row_begin, int64_t row_end);

}  // namespace llmos::kernels
