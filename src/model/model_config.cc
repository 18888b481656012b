#include "model/model_config.h"

#include <cmath>

#include "core/error.h"

namespace llmos {
namespace {

bool is_supported_architecture(const std::string& arch) { return arch == "llama" || arch == "qwen2"; }

}  // namespace

const char* rope_scaling_name(RopeScaling scaling) {
  switch (scaling) {
    case RopeScaling::kNone: return "none";
    case RopeScaling::kLinear: return "linear";
    case RopeScaling::kLlama3: return "llama3";
  }
  return "unknown";
}

ModelConfig ModelConfig::from_gguf(const gguf::File& file) {
  ModelConfig c;
  c.architecture = file.get_string("general.architecture");
  if (!is_supported_architecture(c.architecture)) {
    throw_error(StatusCode::kUnsupported, file.path(), ": architecture '", c.architecture,
                "' is not supported (llmos runs llama and qwen2)");
  }
  const std::string a = c.architecture + ".";
  c.name = file.get_string_or("general.name", "");
  c.context_length = file.get_int(a + "context_length");
  c.dim = file.get_int(a + "embedding_length");
  c.num_layers = file.get_int(a + "block_count");
  c.ffn_dim = file.get_int(a + "feed_forward_length");
  c.num_heads = file.get_int(a + "attention.head_count");
  c.num_kv_heads = file.get_int_or(a + "attention.head_count_kv", c.num_heads);
  if (c.num_heads <= 0) {
    throw_error(StatusCode::kFormat, file.path(), ": ", a, "attention.head_count must be positive, got ",
                c.num_heads);
  }
  c.head_dim = file.get_int_or(a + "attention.key_length", c.dim / c.num_heads);
  const int64_t value_length = file.get_int_or(a + "attention.value_length", c.head_dim);
  if (value_length != c.head_dim) {
    throw_error(StatusCode::kUnsupported, file.path(), ": attention.value_length ", value_length,
                " differs from key_length ", c.head_dim);
  }
  c.norm_eps = static_cast<float>(file.get_float(a + "attention.layer_norm_rms_epsilon"));
  c.rope_freq_base = static_cast<float>(file.get_float_or(a + "rope.freq_base", 10000.0));
  c.rope_dim = file.get_int_or(a + "rope.dimension_count", c.head_dim);
  c.rope_neox = c.architecture == "qwen2";

  const std::string scaling = file.get_string_or(a + "rope.scaling.type", "none");
  const double factor = file.get_float_or(a + "rope.scaling.factor", 0.0);
  if (scaling == "linear" && factor > 0.0 && factor != 1.0) {
    c.rope_scaling = RopeScaling::kLinear;
    c.rope_scale_factor = static_cast<float>(factor);
  } else if (scaling == "llama3") {
    c.rope_scaling = RopeScaling::kLlama3;
  } else if (scaling != "none" && scaling != "linear") {
    throw_error(StatusCode::kUnsupported, file.path(), ": rope scaling type '", scaling,
                "' is not supported (none, linear, llama3)");
  }
  if (c.rope_scaling == RopeScaling::kLlama3) {
    c.rope_scale_factor = static_cast<float>(factor > 0.0 ? factor : 8.0);
    c.rope_original_context = file.get_int_or(a + "rope.scaling.original_context_length", 8192);
    c.rope_low_freq_factor = static_cast<float>(file.get_float_or(a + "rope.scaling.low_freq_factor", 1.0));
    c.rope_high_freq_factor = static_cast<float>(file.get_float_or(a + "rope.scaling.high_freq_factor", 4.0));
  }

  // Vocabulary size: the token list is authoritative; {arch}.vocab_size may restate it.
  const gguf::Value* tokens = file.find("tokenizer.ggml.tokens");
  if (tokens != nullptr && tokens->as_array() != nullptr) {
    c.vocab_size = static_cast<int64_t>(tokens->as_array()->items.size());
    const int64_t stated = file.get_int_or(a + "vocab_size", c.vocab_size);
    if (stated != c.vocab_size) {
      throw_error(StatusCode::kFormat, file.path(), ": ", a, "vocab_size is ", stated,
                  " but tokenizer.ggml.tokens holds ", c.vocab_size, " tokens");
    }
  } else {
    c.vocab_size = file.get_int(a + "vocab_size");
  }
  c.attention_bias = file.find_tensor("blk.0.attn_q.bias") != nullptr;
  try {
    c.validate();
  } catch (const Error& e) {
    throw_error(StatusCode::kFormat, file.path(), ": ", e.message());
  }
  return c;
}

void ModelConfig::validate() const {
  auto positive = [](int64_t v, const char* what) {
    LLMOS_CHECK_ARG(v > 0 && v <= (int64_t{1} << 31), what, " must be in [1, 2^31], got ", v);
  };
  positive(vocab_size, "vocab size");
  positive(context_length, "context_length");
  positive(dim, "embedding_length");
  positive(num_layers, "block_count");
  positive(ffn_dim, "feed_forward_length");
  positive(num_heads, "attention.head_count");
  positive(num_kv_heads, "attention.head_count_kv");
  positive(head_dim, "attention head dimension");
  LLMOS_CHECK_ARG(num_heads % num_kv_heads == 0, "attention.head_count ", num_heads,
                  " is not a multiple of attention.head_count_kv ", num_kv_heads);
  LLMOS_CHECK_ARG(rope_dim > 0 && rope_dim % 2 == 0 && rope_dim <= head_dim,
                  "rope.dimension_count ", rope_dim, " must be even and at most the head dimension ",
                  head_dim);
  LLMOS_CHECK_ARG(std::isfinite(norm_eps) && norm_eps > 0.0f && norm_eps < 1.0f, "attention.layer_norm_rms_epsilon ", norm_eps,
                  " must be in (0, 1)");
  auto finite_positive = [](float v) { return std::isfinite(v) && v > 0.0f; };
  LLMOS_CHECK_ARG(finite_positive(rope_freq_base), "rope.freq_base must be finite and positive, got ",
                  rope_freq_base);
  LLMOS_CHECK_ARG(finite_positive(rope_scale_factor), "rope.scaling.factor must be finite and positive, got ",
                  rope_scale_factor);
  if (rope_scaling == RopeScaling::kLlama3) {
    LLMOS_CHECK_ARG(rope_original_context > 0, "rope.scaling.original_context_length must be positive, got ",
                    rope_original_context);
    LLMOS_CHECK_ARG(finite_positive(rope_low_freq_factor) && finite_positive(rope_high_freq_factor) &&
                        rope_low_freq_factor < rope_high_freq_factor,
                    "rope.scaling.low_freq_factor ", rope_low_freq_factor, " and high_freq_factor ",
                    rope_high_freq_factor, " must be finite, positive and increasing");
  }
}

}  // namespace llmos
