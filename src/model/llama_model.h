// The Llama-family forward pass (architectures llama and qwen2), written as straight code over
// the backend ops. One call computes one step of a flattened batch: it writes the batch's K/V
// into the cache and returns logits for the batch's logits rows.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "io/gguf_reader.h"
#include "kv/kv_cache.h"
#include "model/batch.h"
#include "model/model_config.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace llmos {

class LlamaModel {
 public:
  // Opens and validates a GGUF file, binds its weights (zero-copy on the CPU) and its tokenizer.
  static std::unique_ptr<LlamaModel> load(const std::string& path, std::shared_ptr<Backend> backend);
  static std::unique_ptr<LlamaModel> from_file(gguf::File file, std::shared_ptr<Backend> backend);

  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const gguf::File& file() const { return file_; }
  const ModelWeights& weights() const { return weights_; }
  Backend& backend() const { return *backend_; }

  // A KV cache spec that fits this model (layers, heads, head_dim) with the given capacity.
  KvCacheSpec kv_cache_spec(int64_t num_blocks, int block_size, DType dtype) const;

  // Runs one step. `logits` receives [batch.logits_rows.size(), vocab] f32 on the host.
  // Not re-entrant: one step at a time per model (the engine's step loop is one thread).
  void forward(const Batch& batch, KvCache& cache, Tensor& logits);

 private:
  LlamaModel(gguf::File file, std::shared_ptr<Backend> backend);
  void ensure_workspace(int64_t tokens);

  gguf::File file_;
  std::shared_ptr<Backend> backend_;
  ModelConfig config_;
  ModelWeights weights_;
  RopeSpec rope_;
  std::unique_ptr<Tokenizer> tokenizer_;

  // Activation buffers, grown to the largest batch seen.
  struct Workspace {
    int64_t capacity = 0;
    Tensor x, h, q, k, v, attn, proj, gate, up;
  } ws_;
};

}  // namespace llmos
