// A naive double-precision Llama/Qwen2 forward pass over whole sequences (no KV cache, no
// paging, no batching), written directly from the model equations with Eigen. It is the
// oracle the real forward pass is compared with.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <vector>

#include "io/gguf_reader.h"
#include "model/model_config.h"

namespace llmos::test {

class NaiveLlama {
 public:
  explicit NaiveLlama(const gguf::File& file);
  // Logits for every position of `tokens`: [tokens.size(), vocab].
  Eigen::MatrixXd logits(const std::vector<int32_t>& tokens) const;
  const ModelConfig& config() const { return config_; }

 private:
  struct Layer {
    Eigen::VectorXd attn_norm, ffn_norm, bq, bk, bv;
    Eigen::MatrixXd wq, wk, wv, wo, gate, up, down;
  };
  Eigen::MatrixXd matrix(const gguf::File& file, const std::string& name) const;
  Eigen::VectorXd vector(const gguf::File& file, const std::string& name) const;
  void rope(Eigen::VectorXd& head, int64_t pos) const;

  ModelConfig config_;
  Eigen::MatrixXd embd_, output_;
  Eigen::VectorXd output_norm_;
  std::vector<double> inv_freq_;
  std::vector<Layer> layers_;
};

}  // namespace llmos::test
