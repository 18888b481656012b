// Hyper-parameters of a Llama-family model, read from GGUF metadata ({arch}.* keys).
#pragma once

#include <cstdint>
#include <string>

#include "io/gguf_reader.h"

namespace llmos {

enum class RopeScaling { kNone, kLinear, kLlama3 };

struct ModelConfig {
  std::string architecture;    // "llama" or "qwen2"
  std::string name;            // general.name (may be empty)
  int64_t vocab_size = 0;
  int64_t context_length = 0;
  int64_t dim = 0;             // embedding_length
  int64_t num_layers = 0;      // block_count
  int64_t ffn_dim = 0;         // feed_forward_length
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;        // attention.key_length, default dim / num_heads
  float norm_eps = 1e-5f;      // attention.layer_norm_rms_epsilon

  // Rotary embedding.
  float rope_freq_base = 10000.0f;
  int64_t rope_dim = 0;        // rope.dimension_count, default head_dim
  bool rope_neox = false;      // qwen2: rotate halves; llama: adjacent pairs
  RopeScaling rope_scaling = RopeScaling::kNone;
  float rope_scale_factor = 1.0f;
  int64_t rope_original_context = 0;
  float rope_low_freq_factor = 1.0f;   // llama3 scaling
  float rope_high_freq_factor = 4.0f;  // llama3 scaling

  bool attention_bias = false;  // q/k/v biases (qwen2)

  // Reads and validates the hyper-parameters (kFormat naming the key; kUnsupported for an
  // architecture llmos does not run).
  static ModelConfig from_gguf(const gguf::File& file);
  void validate() const;
  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
};

const char* rope_scaling_name(RopeScaling scaling);

}  // namespace llmos
