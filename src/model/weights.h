// The tensors of a Llama-family model, bound by GGUF name and checked against the config's
// shapes. Tensors are zero-copy views into the mapped file (or uploaded to the device).
#pragma once

#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"
#include "io/gguf_reader.h"
#include "model/model_config.h"

namespace llmos {

struct LayerWeights {
  Tensor attn_norm;                 // f32 [dim]
  Tensor wq, wk, wv, wo;            // [q_dim, dim], [kv_dim, dim], [kv_dim, dim], [dim, q_dim]
  Tensor bq, bk, bv;                // optional f32 biases (qwen2)
  Tensor ffn_norm;                  // f32 [dim]
  Tensor w_gate, w_up, w_down;      // [ffn, dim], [ffn, dim], [dim, ffn]
};

struct ModelWeights {
  Tensor token_embd;                // [vocab, dim]
  Tensor output_norm;               // f32 [dim]
  Tensor output;                    // [vocab, dim]; the embedding table when tied
  bool tied_output = false;
  Tensor rope_freqs;                // optional f32 [rope_dim / 2]
  std::vector<LayerWeights> layers;

  // Binds every tensor by name; kFormat names a missing tensor or one with a wrong shape or
  // dtype (norms and biases must be f32; matrices any dtype llmos can dequantize).
  static ModelWeights from_gguf(const gguf::File& file, const ModelConfig& config, Backend& backend);
  int64_t total_bytes() const;
};

}  // namespace llmos
