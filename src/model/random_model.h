// Seeded random-weight Llama-family GGUF files, written with llmos's own GGUF writer. Used by
// the tests (naive-reference comparisons), by the benchmark models, and as the embedded default
// model the CLI falls back to when no model file is given. The weights are random: the text
// such a model generates is meaningless by design.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/gguf_writer.h"

namespace llmos {

struct RandomModelSpec {
  std::string architecture = "llama";  // "llama" or "qwen2" (qwen2 adds q/k/v biases)
  std::string name = "llmos-random";
  int64_t dim = 64;
  int64_t num_layers = 2;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;
  int64_t ffn_dim = 160;
  int64_t context_length = 512;
  float rope_freq_base = 10000.0f;
  int64_t rope_dim = 0;                 // 0: the head dimension
  std::string rope_scaling;             // "", "linear" or "llama3"
  float rope_scaling_factor = 1.0f;
  std::vector<float> rope_freq_factors;  // non-empty: written as rope_freqs.weight [rope_dim / 2]
  bool tied_output = false;
  DType matrix_dtype = DType::kF32;     // attention and FFN matrices
  DType embedding_dtype = DType::kF32;  // token_embd
  DType output_dtype = DType::kF32;     // output (when not tied)
  uint64_t seed = 1;
  // Tokenizer: empty = llmos's built-in small SentencePiece vocabulary (bytes, letters and
  // common English words); otherwise the path of a GGUF file whose tokenizer.* keys are copied.
  std::string vocab_from;
};

// Builds the writer (metadata + tensors) without touching the disk.
gguf::Writer make_random_model(const RandomModelSpec& spec);
void write_random_model(const RandomModelSpec& spec, const std::string& path);

// The embedded default model: small, fixed seed, built-in vocabulary.
RandomModelSpec default_demo_model_spec();

}  // namespace llmos
