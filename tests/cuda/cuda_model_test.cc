// The model and the engine on the GPU: greedy stories260K continuations must reproduce the
// reference text (f32 weights, f32 and f16 KV caches, whole and 2-token prefill chunks), and a
// batch of prompts through the engine must give each prompt its solitary greedy tokens. Skips,
// saying why, without a CUDA device or without the shared model.
#include <gtest/gtest.h>

#if LLMOS_HAVE_CUDA

#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_probe.h"
#include "engine/engine.h"
#include "engine/generator.h"
#include "model/llama_model.h"
#include "support/mini_json.h"
#include "support/test_paths.h"
#include "cuda_test_support.h"

namespace llmos {
namespace {

constexpr const char* kModel = "models/stories260K.gguf";
constexpr const char* kExpected = "models/stories260K.greedy.json";

std::shared_ptr<LlamaModel> load_gpu_model() {
  std::shared_ptr<Backend> backend = create_backend({Device::cuda(0)});
  return LlamaModel::load(test::shared_path(kModel), backend);
}

std::string generate_text(LlamaModel& model, const std::string& prompt, int n, DType kv_dtype, int chunk) {
  GenerateOptions options;
  options.max_tokens = n;
  options.sampling.temperature = 0.0f;
  options.kv_dtype = kv_dtype;
  options.prefill_chunk = chunk;
  Generator generator(model, options);
  std::string text;
  generator.generate(prompt, [&](TokenId, std::string_view piece) {
    text += piece;
    return true;
  });
  return text;
}

TEST(CudaModel, Stories260KGreedyContinuationsMatchReference) {
  REQUIRE_CUDA_DEVICE();
  LLMOS_REQUIRE_SHARED(kModel);
  LLMOS_REQUIRE_SHARED(kExpected);
  auto model = load_gpu_model();
  EXPECT_EQ(model->backend().device(), Device::cuda(0));
  const test::JsonValue doc = test::parse_json(test::read_file(test::shared_path(kExpected)));
  ASSERT_FALSE(doc.array.empty());
  for (const auto& entry : doc.array) {
    const std::string prompt = entry.at("prompt").string;
    const int n = static_cast<int>(entry.at("n_predict").number);
    const std::string want = entry.at("continuation").string;
    EXPECT_EQ(generate_text(*model, prompt, n, DType::kF32, 512), want) << "prompt '" << prompt << "', f32 cache";
    EXPECT_EQ(generate_text(*model, prompt, n, DType::kF16, 2), want)
        << "prompt '" << prompt << "', f16 cache, 2-token prefill chunks";
  }
}

TEST(CudaModel, EngineBatchGivesEveryPromptItsSolitaryTokens) {
  REQUIRE_CUDA_DEVICE();
  LLMOS_REQUIRE_SHARED(kModel);
  std::shared_ptr<LlamaModel> model = load_gpu_model();
  const std::vector<std::string> prompts{
      "Once upon a time, there was a little girl named Lily. She loved to play outside. One day",
      "Tom had a dog.", "Once upon a time, there was a little girl named Lily. Her mom said",
      "The sun was", "Lily"};
  constexpr int kMaxTokens = 24;
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& p : prompts) {
    GenerateOptions options;
    options.max_tokens = kMaxTokens;
    options.sampling.temperature = 0.0f;
    options.kv_dtype = DType::kF16;
    expected.push_back(Generator(*model, options).generate_tokens(model->tokenizer().encode(p, true)).tokens);
  }
  for (int chunk : {0, 7}) {
    EngineConfig config;
    config.kv_cache_blocks = 256;
    config.block_size = chunk ? 4 : 16;
    config.max_sequences = 8;
    if (chunk) config.max_batched_tokens = chunk;
    Engine engine(model, config);
    EngineRequest settings;
    settings.max_tokens = kMaxTokens;
    settings.sampling.temperature = 0.0f;
    const std::vector<RequestResult> results = engine.generate(prompts, settings);
    ASSERT_EQ(results.size(), expected.size());
    for (size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i].tokens, expected[i]) << "prompt " << i << ", max_batched_tokens " << chunk << ": "
                                                << results[i].error;
    }
  }
}

}  // namespace
}  // namespace llmos

#else

TEST(CudaModel, Skipped) { GTEST_SKIP() << "built without CUDA"; }

#endif
