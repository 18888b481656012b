// The engine's central promise: with greedy sampling, a batch of different
// prompts gives each prompt exactly the tokens it gives alone — whatever the
// scheduler does to get there (prefix reuse, chunked or unchunked prefill,
// preemption by recompute or by swap).
#include <gtest/gtest.h>

#include "engine_test_util.h"

namespace llmos {
namespace {

struct Case {
  const char* name;
  EngineConfig config;
  bool expect_preemption = false;
  bool expect_prefix_hits = false;
};

EngineConfig base_config() {
  EngineConfig c;
  c.kv_cache_blocks = 512;
  c.block_size = 16;
  c.max_sequences = 8;
  return c;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  {
    Case c{"default", base_config()};
    c.expect_prefix_hits = true;
    out.push_back(c);
  }
  {
    Case c{"no_prefix_cache", base_config()};
    c.config.enable_prefix_caching = false;
    out.push_back(c);
  }
  {
    Case c{"unchunked_prefill", base_config()};
    c.config.chunked_prefill = false;
    c.expect_prefix_hits = true;
    out.push_back(c);
  }
  {
    Case c{"small_chunks", base_config()};
    c.config.max_batched_tokens = 7;
    c.config.block_size = 4;
    c.expect_prefix_hits = true;
    out.push_back(c);
  }
  for (PreemptionMode mode : {PreemptionMode::kRecompute, PreemptionMode::kSwap}) {
    Case c{mode == PreemptionMode::kSwap ? "preempt_swap" : "preempt_recompute", base_config()};
    c.config.block_size = 4;
    c.config.kv_cache_blocks = 40;  // ~160 tokens for 8 sequences of ~60-100 tokens
    c.config.watermark = 0.0;
    c.config.preemption = mode;
    c.expect_preemption = true;
    out.push_back(c);
  }
  return out;
}

class EngineBatching : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = test::load_engine_test_model();
    for (const std::string& p : test::engine_test_prompts()) {
      std::vector<int32_t> ids = model_->tokenizer().encode(p, true);
      expected_.push_back(test::generate_alone(*model_, ids, kMaxTokens));
    }
  }
  static void TearDownTestSuite() { model_.reset(); }

  static constexpr int kMaxTokens = 24;
  static std::shared_ptr<LlamaModel> model_;
  static std::vector<std::vector<int32_t>> expected_;
};
std::shared_ptr<LlamaModel> EngineBatching::model_;
std::vector<std::vector<int32_t>> EngineBatching::expected_;

TEST_F(EngineBatching, EveryPromptGetsItsSolitaryTokens) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    Engine engine(model_, c.config);
    EngineRequest settings;
    settings.max_tokens = kMaxTokens;
    settings.sampling.temperature = 0.0f;
    // Twice: the second round finds the first round's blocks in the prefix
    // cache.
    for (int round = 0; round < 2; ++round) {
      std::vector<RequestResult> results = engine.generate(test::engine_test_prompts(), settings);
      ASSERT_EQ(results.size(), expected_.size());
      for (size_t i = 0; i < results.size(); ++i) {
        EXPECT_EQ(results[i].tokens, expected_[i]) << "prompt " << i << ", round " << round;
        EXPECT_TRUE(results[i].finish_reason == RequestFinishReason::kLength ||
                    results[i].finish_reason == RequestFinishReason::kEos)
            << request_finish_reason_name(results[i].finish_reason) << " " << results[i].error;
      }
    }
    const EngineStats st = engine.stats();
    EXPECT_EQ(st.kv.used_blocks, 0) << "blocks leaked after every request finished";
    EXPECT_EQ(st.kv.used_blocks + st.kv.cached_blocks + st.kv.free_blocks, st.kv.total_blocks);
    EXPECT_EQ(st.num_running + st.num_waiting + st.num_preempted, 0);
    if (c.expect_preemption) {
      EXPECT_GT(st.total_preemptions, 0) << "the KV budget did not force preemption";
    }
    if (c.expect_prefix_hits) {
      EXPECT_GT(st.kv.prefix_hit_tokens, 0);
    }
    if (!c.config.enable_prefix_caching) {
      EXPECT_EQ(st.kv.prefix_hit_tokens, 0);
    }
  }
}

// Seeded sampling through the engine is reproducible and does not depend on
// batch company.
TEST_F(EngineBatching, SeededSamplingDoesNotDependOnTheBatch) {
  EngineRequest settings;
  settings.max_tokens = 16;
  settings.sampling.temperature = 0.9f;
  settings.sampling.seed = 1234;
  const std::vector<std::string> prompts = test::engine_test_prompts();
  std::vector<std::vector<int32_t>> alone;
  {
    Engine engine(model_, base_config());
    for (const std::string& p : prompts) alone.push_back(engine.generate({p}, settings)[0].tokens);
  }
  EngineConfig tight = base_config();
  tight.block_size = 4;
  tight.kv_cache_blocks = 40;
  tight.watermark = 0.0;
  Engine engine(model_, tight);
  std::vector<RequestResult> together = engine.generate(prompts, settings);
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(together[i].tokens, alone[i]) << "prompt " << i;
  EXPECT_GT(engine.stats().total_preemptions, 0);
}

}  // namespace
}  // namespace llmos
