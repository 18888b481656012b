#include "model/random_model.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "io/gguf_reader.h"
#include "model/builtin_vocab.h"
#include "quant/quant.h"

namespace llmos {
namespace {

// Deterministic on every platform: splitmix64 plus a Box-Muller normal.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double normal() {
    const double u1 = 1.0 - uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

Tensor random_tensor(Rng& rng, const std::vector<int64_t>& shape, DType dtype, double stddev,
                     double mean) {
  int64_t cols = shape.back();
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  std::vector<float> row(static_cast<size_t>(cols));
  Tensor t = Tensor::empty(shape, dtype);
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : row) v = static_cast<float>(mean + stddev * rng.normal());
    quantize_row(dtype, row.data(), t.row(r), cols);
  }
  return t;
}

void copy_tokenizer_keys(const std::string& path, gguf::Writer& writer) {
  const gguf::File source = gguf::File::open(path);
  bool any = false;
  for (const auto& [key, value] : source.metadata()) {
    if (key.rfind("tokenizer.", 0) == 0) {
      writer.set(key, value);
      any = true;
    }
  }
  if (!any) throw_error(StatusCode::kFormat, path, ": no tokenizer.* keys to copy");
}

int64_t vocab_size_of(const std::string& path) {
  const gguf::File source = gguf::File::open(path);
  return static_cast<int64_t>(source.get_array("tokenizer.ggml.tokens").items.size());
}

}  // namespace

RandomModelSpec default_demo_model_spec() {
  RandomModelSpec spec;
  spec.name = "llmos embedded default (random weights)";
  spec.dim = 128;
  spec.num_layers = 4;
  spec.num_heads = 8;
  spec.num_kv_heads = 4;
  spec.ffn_dim = 352;
  spec.context_length = 1024;
  spec.seed = 20261129;
  return spec;
}

gguf::Writer make_random_model(const RandomModelSpec& s) {
  LLMOS_CHECK_ARG(s.architecture == "llama" || s.architecture == "qwen2",
                  "random model: architecture must be llama or qwen2, got '", s.architecture, "'");
  LLMOS_CHECK_ARG(s.num_heads > 0 && s.num_kv_heads > 0 && s.num_heads % s.num_kv_heads == 0 &&
                      s.dim % s.num_heads == 0,
                  "random model: dim ", s.dim, ", heads ", s.num_heads, " and KV heads ",
                  s.num_kv_heads, " are inconsistent");
  gguf::Writer w;
  const std::string a = s.architecture + ".";
  const int64_t head_dim = s.dim / s.num_heads;
  w.set("general.architecture", gguf::Value(s.architecture));
  w.set("general.name", gguf::Value(s.name));
  w.set(a + "context_length", gguf::Value(static_cast<uint32_t>(s.context_length)));
  w.set(a + "embedding_length", gguf::Value(static_cast<uint32_t>(s.dim)));
  w.set(a + "block_count", gguf::Value(static_cast<uint32_t>(s.num_layers)));
  w.set(a + "feed_forward_length", gguf::Value(static_cast<uint32_t>(s.ffn_dim)));
  w.set(a + "attention.head_count", gguf::Value(static_cast<uint32_t>(s.num_heads)));
  w.set(a + "attention.head_count_kv", gguf::Value(static_cast<uint32_t>(s.num_kv_heads)));
  w.set(a + "attention.layer_norm_rms_epsilon", gguf::Value(1e-5f));
  w.set(a + "rope.freq_base", gguf::Value(s.rope_freq_base));
  w.set(a + "rope.dimension_count", gguf::Value(static_cast<uint32_t>(s.rope_dim ? s.rope_dim : head_dim)));
  if (!s.rope_scaling.empty()) {
    w.set(a + "rope.scaling.type", gguf::Value(s.rope_scaling));
    w.set(a + "rope.scaling.factor", gguf::Value(s.rope_scaling_factor));
    if (s.rope_scaling == "llama3") {
      w.set(a + "rope.scaling.original_context_length", gguf::Value(uint32_t{64}));
    }
  }
  const int64_t vocab = s.vocab_from.empty() ? add_builtin_vocab(w) : vocab_size_of(s.vocab_from);
  if (!s.vocab_from.empty()) copy_tokenizer_keys(s.vocab_from, w);

  Rng rng(s.seed);
  const double in_scale = 1.0 / std::sqrt(static_cast<double>(s.dim));
  const double ffn_scale = 1.0 / std::sqrt(static_cast<double>(s.ffn_dim));
  const int64_t q_dim = s.num_heads * head_dim;
  const int64_t kv_dim = s.num_kv_heads * head_dim;
  w.add_tensor("token_embd.weight", random_tensor(rng, {vocab, s.dim}, s.embedding_dtype, 1.0, 0.0));
  for (int64_t l = 0; l < s.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    w.add_tensor(p + "attn_norm.weight", random_tensor(rng, {s.dim}, DType::kF32, 0.1, 1.0));
    w.add_tensor(p + "attn_q.weight", random_tensor(rng, {q_dim, s.dim}, s.matrix_dtype, in_scale, 0.0));
    w.add_tensor(p + "attn_k.weight", random_tensor(rng, {kv_dim, s.dim}, s.matrix_dtype, in_scale, 0.0));
    w.add_tensor(p + "attn_v.weight", random_tensor(rng, {kv_dim, s.dim}, s.matrix_dtype, in_scale, 0.0));
    if (s.architecture == "qwen2") {
      w.add_tensor(p + "attn_q.bias", random_tensor(rng, {q_dim}, DType::kF32, 0.1, 0.0));
      w.add_tensor(p + "attn_k.bias", random_tensor(rng, {kv_dim}, DType::kF32, 0.1, 0.0));
      w.add_tensor(p + "attn_v.bias", random_tensor(rng, {kv_dim}, DType::kF32, 0.1, 0.0));
    }
    w.add_tensor(p + "attn_output.weight", random_tensor(rng, {s.dim, q_dim}, s.matrix_dtype, in_scale, 0.0));
    w.add_tensor(p + "ffn_norm.weight", random_tensor(rng, {s.dim}, DType::kF32, 0.1, 1.0));
    w.add_tensor(p + "ffn_gate.weight", random_tensor(rng, {s.ffn_dim, s.dim}, s.matrix_dtype, in_scale, 0.0));
    w.add_tensor(p + "ffn_up.weight", random_tensor(rng, {s.ffn_dim, s.dim}, s.matrix_dtype, in_scale, 0.0));
    w.add_tensor(p + "ffn_down.weight", random_tensor(rng, {s.dim, s.ffn_dim}, s.matrix_dtype, ffn_scale, 0.0));
  }
  w.add_tensor("output_norm.weight", random_tensor(rng, {s.dim}, DType::kF32, 0.1, 1.0));
  if (!s.rope_freq_factors.empty()) {
    Tensor factors = Tensor::empty({static_cast<int64_t>(s.rope_freq_factors.size())}, DType::kF32);
    std::copy(s.rope_freq_factors.begin(), s.rope_freq_factors.end(), factors.data_as<float>());
    w.add_tensor("rope_freqs.weight", factors);
  }
  if (!s.tied_output) {
    w.add_tensor("output.weight", random_tensor(rng, {vocab, s.dim}, s.output_dtype, in_scale * 4.0, 0.0));
  }
  return w;
}

void write_random_model(const RandomModelSpec& spec, const std::string& path) {
  make_random_model(spec).write_file(path);
}

}  // namespace llmos
