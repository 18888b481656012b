// Greedy generation on a real trained model (stories260K) must reproduce the reference
// continuations exactly, token for token and byte for byte.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "engine/generator.h"
#include "model/llama_model.h"
#include "support/mini_json.h"
#include "support/test_paths.h"

namespace llmos {
namespace {

constexpr const char* kModel = "models/stories260K.gguf";
constexpr const char* kExpected = "models/stories260K.greedy.json";

struct Continuation {
  std::string prompt;
  int n_predict;
  std::string text;
};

std::vector<Continuation> load_expected() {
  std::vector<Continuation> out;
  const test::JsonValue doc = test::parse_json(test::read_file(test::shared_path(kExpected)));
  for (const auto& entry : doc.array) {
    out.push_back({entry.at("prompt").string, static_cast<int>(entry.at("n_predict").number),
                   entry.at("continuation").string});
  }
  return out;
}

std::string generate_text(LlamaModel& model, const Continuation& c, DType kv_dtype, int threads_hint,
                          int prefill_chunk) {
  (void)threads_hint;
  GenerateOptions options;
  options.max_tokens = c.n_predict;
  options.sampling.temperature = 0.0f;
  options.kv_dtype = kv_dtype;
  options.prefill_chunk = prefill_chunk;
  Generator generator(model, options);
  std::string text;
  generator.generate(c.prompt, [&](TokenId, std::string_view piece) {
    text += piece;
    return true;
  });
  return text;
}

TEST(Stories260K, GreedyContinuationsMatchReference) {
  LLMOS_REQUIRE_SHARED(kModel);
  LLMOS_REQUIRE_SHARED(kExpected);
  const auto expected = load_expected();
  ASSERT_FALSE(expected.empty());
  for (int threads : {1, 2}) {
    std::shared_ptr<Backend> backend = create_backend({Device::cpu(), threads});
    auto model = LlamaModel::load(test::shared_path(kModel), backend);
    for (const auto& c : expected) {
      EXPECT_EQ(generate_text(*model, c, DType::kF32, threads, 512), c.text)
          << "prompt '" << c.prompt << "', " << threads << " threads";
    }
  }
}

// The same continuations with a half-precision KV cache and a prompt prefilled in 2-token chunks.
TEST(Stories260K, GreedyParityHoldsWithF16CacheAndChunkedPrefill) {
  LLMOS_REQUIRE_SHARED(kModel);
  LLMOS_REQUIRE_SHARED(kExpected);
  std::shared_ptr<Backend> backend = create_backend({Device::cpu(), 2});
  auto model = LlamaModel::load(test::shared_path(kModel), backend);
  for (const auto& c : load_expected()) {
    EXPECT_EQ(generate_text(*model, c, DType::kF16, 2, 2), c.text) << "prompt '" << c.prompt << "'";
  }
}

TEST(Stories260K, SeededSamplingIsReproducibleAndSeedDependent) {
  LLMOS_REQUIRE_SHARED(kModel);
  std::shared_ptr<Backend> backend = create_backend({Device::cpu(), 2});
  auto model = LlamaModel::load(test::shared_path(kModel), backend);
  auto run = [&](uint64_t seed) {
    GenerateOptions options;
    options.max_tokens = 48;
    options.sampling.temperature = 1.0f;
    options.sampling.top_k = 0;
    options.sampling.top_p = 1.0f;
    options.sampling.min_p = 0.0f;
    options.sampling.seed = seed;
    options.stop_at_eos = false;
    return Generator(*model, options).generate("The dog").tokens;
  };
  const auto a = run(7);
  EXPECT_EQ(a.size(), 48u);
  EXPECT_EQ(a, run(7));
  EXPECT_NE(a, run(8));
}

}  // namespace
}  // namespace llmos
