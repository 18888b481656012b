// Hyper-parameters and weights that a file may carry but llmos cannot run correctly are
// rejected at load with kFormat (or kUnsupported) naming the file and the key or tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "backend/backend.h"
#include "core/error.h"
#include "model/llama_model.h"
#include "model/random_model.h"
#include "support/test_paths.h"

namespace llmos {
namespace {

// Writes a small random model after `edit` changed its writer, then loads it.
void load_edited(const std::string& label, const std::function<void(gguf::Writer&)>& edit,
                 const RandomModelSpec& spec = RandomModelSpec()) {
  gguf::Writer w = make_random_model(spec);
  edit(w);
  const std::string path = test::temp_dir() + "/" + label + ".gguf";
  w.write_file(path);
  std::shared_ptr<Backend> backend = create_backend({Device::cpu(), 1});
  LlamaModel::load(path, backend);
}

void expect_rejected(const std::string& label, const std::function<void(gguf::Writer&)>& edit,
                     const std::string& fragment, StatusCode code = StatusCode::kFormat,
                     const RandomModelSpec& spec = RandomModelSpec()) {
  try {
    load_edited(label, edit, spec);
    ADD_FAILURE() << label << ": the model loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << label << ": " << e.message();
    EXPECT_NE(e.message().find(label + ".gguf"), std::string::npos) << label << ": " << e.message();
    EXPECT_NE(e.message().find(fragment), std::string::npos) << label << ": " << e.message();
  }
}

TEST(ModelConfig, ValidRandomModelLoadsWithExpectedHyperParameters) {
  RandomModelSpec spec;
  spec.dim = 96;
  spec.num_heads = 6;
  spec.num_kv_heads = 2;
  const std::string path = test::temp_dir() + "/valid.gguf";
  write_random_model(spec, path);
  const ModelConfig c = ModelConfig::from_gguf(gguf::File::open(path));
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.dim, 96);
  EXPECT_EQ(c.num_heads, 6);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.rope_dim, 16);
  EXPECT_FALSE(c.rope_neox);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.rope_scaling, RopeScaling::kNone);
}

TEST(ModelConfig, RejectsInconsistentHyperParameters) {
  expect_rejected("kv_heads", [](gguf::Writer& w) { w.set("llama.attention.head_count_kv", gguf::Value(uint32_t{3})); },
                  "head_count_kv");
  expect_rejected("zero_heads", [](gguf::Writer& w) { w.set("llama.attention.head_count", gguf::Value(uint32_t{0})); },
                  "head_count");
  expect_rejected("odd_rope", [](gguf::Writer& w) { w.set("llama.rope.dimension_count", gguf::Value(uint32_t{7})); },
                  "rope.dimension_count");
  expect_rejected("inf_factor",
                  [](gguf::Writer& w) {
                    w.set("llama.rope.scaling.type", gguf::Value(std::string("linear")));
                    w.set("llama.rope.scaling.factor", gguf::Value(std::numeric_limits<float>::infinity()));
                  },
                  "rope.scaling.factor");
  expect_rejected("llama3_factors",
                  [](gguf::Writer& w) {
                    w.set("llama.rope.scaling.type", gguf::Value(std::string("llama3")));
                    w.set("llama.rope.scaling.low_freq_factor", gguf::Value(4.0f));
                    w.set("llama.rope.scaling.high_freq_factor", gguf::Value(4.0f));
                  },
                  "low_freq_factor");
  expect_rejected("yarn", [](gguf::Writer& w) { w.set("llama.rope.scaling.type", gguf::Value(std::string("yarn"))); },
                  "rope scaling type 'yarn'", StatusCode::kUnsupported);
  expect_rejected("nan_eps",
                  [](gguf::Writer& w) {
                    w.set("llama.attention.layer_norm_rms_epsilon", gguf::Value(std::numeric_limits<float>::quiet_NaN()));
                  },
                  "layer_norm_rms_epsilon");
  expect_rejected("vocab_size", [](gguf::Writer& w) { w.set("llama.vocab_size", gguf::Value(uint32_t{7})); },
                  "vocab_size is 7");
  expect_rejected("arch", [](gguf::Writer& w) { w.set("general.architecture", gguf::Value(std::string("mamba"))); },
                  "architecture 'mamba'", StatusCode::kUnsupported);
  expect_rejected("no_blocks",
                  [](gguf::Writer& w) { w.set("llama.block_count", gguf::Value(std::string("two"))); },
                  "block_count");
}

TEST(ModelConfig, RejectsBadTensors) {
  RandomModelSpec spec;
  spec.num_layers = 2;
  expect_rejected("late_bias",
                  [](gguf::Writer& w) { w.add_tensor("blk.1.attn_q.bias", Tensor::zeros({64}, DType::kF32)); },
                  "blk.1.attn_q.bias", StatusCode::kFormat, spec);
  expect_rejected("rope_freqs_zero",
                  [](gguf::Writer& w) { w.add_tensor("rope_freqs.weight", Tensor::zeros({8}, DType::kF32)); },
                  "rope_freqs.weight[0]", StatusCode::kFormat, spec);
  expect_rejected("f16_rope_freqs",
                  [](gguf::Writer& w) { w.add_tensor("rope_freqs.weight", Tensor::zeros({8}, DType::kF16)); },
                  "must be f32", StatusCode::kFormat, spec);
}

}  // namespace
}  // namespace llmos
