// Perplexity against a naive double-precision reference that follows the llama-perplexity
// recipe literally: chunks of n_ctx, first token replaced by BOS, second half scored with the
// logits one position earlier.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/backend.h"
#include "core/error.h"
#include "engine/perplexity.h"
#include "model/random_model.h"
#include "support/naive_llama.h"
#include "support/test_paths.h"

namespace llmos {
namespace {

double reference_ppl(const test::NaiveLlama& naive, std::vector<TokenId> tokens, int n_ctx, int chunks,
                     TokenId bos) {
  double nll = 0.0;
  int64_t count = 0;
  for (int c = 0; c < chunks; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    if (bos >= 0) chunk[0] = bos;
    const Eigen::MatrixXd logits = naive.logits(chunk);
    for (int pos = n_ctx / 2; pos < n_ctx - 1; ++pos) {
      const Eigen::VectorXd row = logits.row(pos).transpose();
      const double max = row.maxCoeff();
      const double log_sum = std::log((row.array() - max).exp().sum()) + max;
      nll += log_sum - row(chunk[static_cast<size_t>(pos + 1)]);
      ++count;
    }
  }
  return std::exp(nll / static_cast<double>(count));
}

std::vector<TokenId> random_tokens(size_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<TokenId> t(n);
  for (auto& x : t) x = static_cast<TokenId>(3 + rng() % static_cast<uint32_t>(vocab - 3));
  return t;
}

TEST(Perplexity, MatchesNaiveReferenceOnARandomModel) {
  RandomModelSpec spec;
  spec.seed = 21;
  const std::string path = test::temp_dir() + "/ppl.gguf";
  write_random_model(spec, path);
  std::shared_ptr<Backend> backend = create_backend({Device::cpu(), 2});
  auto model = LlamaModel::load(path, backend);
  const test::NaiveLlama naive(model->file());
  const auto tokens = random_tokens(100, model->config().vocab_size, 5);

  PerplexityOptions options;
  options.n_ctx = 24;
  options.n_batch = 7;  // chunks are evaluated in several uneven steps
  options.max_chunks = 3;
  options.kv_dtype = DType::kF32;
  int progress_calls = 0;
  const PerplexityResult r = compute_perplexity(*model, tokens, options, [&](int32_t chunk, int32_t total, double ppl) {
    EXPECT_EQ(chunk, progress_calls++);
    EXPECT_EQ(total, 3);
    EXPECT_GT(ppl, 1.0);
  });
  EXPECT_EQ(progress_calls, 3);
  EXPECT_EQ(r.chunks, 3);
  EXPECT_EQ(r.scored_tokens, 3 * (24 - 1 - 12));
  const double expected = reference_ppl(naive, tokens, 24, 3, model->tokenizer().vocab().bos);
  EXPECT_NEAR(r.ppl, expected, 1e-5 * expected);
  EXPECT_GT(r.ppl_error, 0.0);

  // All whole chunks when --chunks is not given (100 / 24 = 4), and a batch as large as the chunk.
  options.max_chunks = -1;
  options.n_batch = 2048;
  const PerplexityResult all = compute_perplexity(*model, tokens, options);
  EXPECT_EQ(all.chunks, 4);
  const double expected_all = reference_ppl(naive, tokens, 24, 4, model->tokenizer().vocab().bos);
  EXPECT_NEAR(all.ppl, expected_all, 1e-5 * expected_all);
}

TEST(Perplexity, Stories260KAgreesWithReferenceAndAcrossCacheTypes) {
  LLMOS_REQUIRE_SHARED("models/stories260K.gguf");
  std::shared_ptr<Backend> backend = create_backend({Device::cpu(), 2});
  auto model = LlamaModel::load(test::shared_path("models/stories260K.gguf"), backend);
  const std::vector<TokenId> tokens = model->tokenizer().encode(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
      "One day, she saw a big, red ball. She wanted to play with it, but it was too high. Lily's mom said, "
      "\"Lily, let's go to the park.\" Lily was sad and didn't know what to do. Tom and Lily went to the park.",
      /*add_special=*/true);
  PerplexityOptions options;
  options.n_ctx = 32;
  options.kv_dtype = DType::kF32;
  const PerplexityResult f32 = compute_perplexity(*model, tokens, options);
  const test::NaiveLlama naive(model->file());
  const double expected = reference_ppl(naive, tokens, 32, f32.chunks, 1);
  EXPECT_NEAR(f32.ppl, expected, 1e-5 * expected);
  EXPECT_LT(f32.ppl, 20.0) << "a trained model should predict its own kind of text well";
  options.kv_dtype = DType::kF16;
  const PerplexityResult f16 = compute_perplexity(*model, tokens, options);
  EXPECT_NEAR(f16.ppl, f32.ppl, 2e-3 * f32.ppl);
}

TEST(Perplexity, TooShortTextIsAClearError) {
  RandomModelSpec spec;
  const std::string path = test::temp_dir() + "/ppl-short.gguf";
  write_random_model(spec, path);
  std::shared_ptr<Backend> backend = create_backend({Device::cpu(), 1});
  auto model = LlamaModel::load(path, backend);
  const auto tokens = random_tokens(10, model->config().vocab_size, 1);
  PerplexityOptions options;
  options.n_ctx = 16;
  try {
    compute_perplexity(*model, tokens, options);
    FAIL() << "10 tokens accepted for a 16-token chunk";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.message().find("at least 16"), std::string::npos) << e.message();
  }
  options.n_ctx = 2;
  EXPECT_THROW(compute_perplexity(*model, tokens, options), Error);
}

TEST(Perplexity, NegativeLogLikelihoodMatchesFormula) {
  const std::vector<float> logits{1.0f, 3.0f, -2.0f, 0.5f};
  double denom = 0;
  for (float l : logits) denom += std::exp(static_cast<double>(l));
  for (TokenId t = 0; t < 4; ++t) {
    EXPECT_NEAR(negative_log_likelihood(logits, t), -std::log(std::exp(static_cast<double>(logits[t])) / denom), 1e-12);
  }
  EXPECT_THROW(negative_log_likelihood(logits, 4), Error);
}

}  // namespace
}  // namespace llmos
