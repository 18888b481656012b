// Request lifecycle edge cases: what a cancelled request still reports, snapshots handed over
// at the end, prefix hits counted per request, KV budgets that cannot work, and host memory
// accounting when swapped contexts end.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "engine_test_util.h"

namespace llmos {
namespace {

using namespace std::chrono_literals;

EngineConfig roomy() {
  EngineConfig c;
  c.kv_cache_blocks = 256;
  c.max_sequences = 8;
  return c;
}

EngineRequest greedy(const std::string& prompt, int max_tokens) {
  EngineRequest r;
  r.prompt = prompt;
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0.0f;
  r.ignore_eos = true;
  return r;
}

// A cancelled request reports the tokens it produced, even while others keep running, and a
// kept context is still handed over.
TEST(EngineLifecycle, CancelledRequestKeepsItsTokensAndContext) {
  auto model = test::load_engine_test_model();
  Engine engine(model, roomy());
  const uint64_t busy = engine.submit(greedy("Tom had a dog.", 400));  // keeps the engine busy
  EngineRequest r = greedy("Once upon a time", 400);
  r.keep_context = true;
  const uint64_t id = engine.submit(r);
  int tokens_seen = 0;
  while (tokens_seen < 5) {
    auto ev = engine.next_event(id, 10s);
    ASSERT_TRUE(ev.has_value()) << "no token within 10 s";
    ASSERT_FALSE(ev->finished);
    ++tokens_seen;
  }
  ASSERT_TRUE(engine.cancel(id));
  RequestResult res = engine.wait(id);
  EXPECT_EQ(res.finish_reason, RequestFinishReason::kCancelled);
  EXPECT_GE(static_cast<int>(res.tokens.size()), tokens_seen);
  EXPECT_FALSE(res.text.empty());
  std::shared_ptr<ContextSnapshot> snap = engine.take_snapshot(id);
  ASSERT_NE(snap, nullptr);
  EXPECT_EQ(snap->tokens.size(), res.prompt_tokens.size() + res.tokens.size());
  engine.cancel(busy);
  engine.wait(busy);
}

// The final callback may take the snapshot at once.
TEST(EngineLifecycle, SnapshotIsReadyInTheFinalCallback) {
  auto model = test::load_engine_test_model();
  Engine engine(model, roomy());
  std::atomic<int> taken{-1};
  EngineRequest r = greedy("Lily", 6);
  r.keep_context = true;
  uint64_t id = 0;
  std::atomic<bool> id_ready{false};
  r.on_event = [&](const TokenEvent& ev) {
    if (!ev.finished) return;
    while (!id_ready.load()) std::this_thread::yield();
    try {
      taken = engine.take_snapshot(id) != nullptr ? 1 : 0;
    } catch (const Error&) {
      taken = 0;
    }
  };
  id = engine.submit(r);
  id_ready = true;
  for (int i = 0; i < 1000 && taken.load() < 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(taken.load(), 1);
}

// A prompt of k full blocks + 1 token reuses all k cached blocks, and the request says so.
TEST(EngineLifecycle, PrefixHitsCoverEveryFullBlockAndAreReported) {
  auto model = test::load_engine_test_model();
  EngineConfig c = roomy();
  c.block_size = 4;
  Engine engine(model, c);
  EngineRequest r = greedy("", 3);
  for (int i = 0; i < 13; ++i) r.prompt_tokens.push_back(10 + i);  // 3 full blocks + 1
  const RequestResult first = engine.wait(engine.submit(r));
  const RequestResult second = engine.wait(engine.submit(r));
  EXPECT_EQ(first.num_cached_prompt_tokens, 0);
  EXPECT_EQ(second.num_cached_prompt_tokens, 12);
  EXPECT_EQ(first.tokens, second.tokens);
}

TEST(EngineLifecycle, KvBudgetBelowOneBlockIsAnError) {
  auto model = test::load_engine_test_model();
  EngineConfig c;
  c.kv_cache_bytes = 100;
  try {
    Engine engine(model, c);
    FAIL() << "a 100-byte KV budget was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("kv_cache_bytes"), std::string::npos) << e.what();
  }
}

// A restored context bigger than the whole KV pool fails instead of waiting forever.
TEST(EngineLifecycle, RestoredContextLargerThanThePoolFails) {
  auto model = test::load_engine_test_model();
  std::shared_ptr<ContextSnapshot> snap;
  {
    Engine big(model, roomy());
    EngineRequest r = greedy("Once upon a time there was a girl", 60);
    r.keep_context = true;
    const uint64_t id = big.submit(r);
    big.wait(id);
    snap = big.take_snapshot(id);
  }
  EngineConfig tiny;
  tiny.kv_cache_blocks = 2;  // 32 tokens: far less than the snapshot
  Engine engine(model, tiny);
  EngineRequest r = greedy("", 4);
  r.resume = snap;
  const RequestResult res = engine.wait(engine.submit(r));
  EXPECT_EQ(res.finish_reason, RequestFinishReason::kError);
  EXPECT_NE(res.error.find("does not fit"), std::string::npos) << res.error;
}

// Host memory of swapped-out contexts is returned when they end, kept or not.
TEST(EngineLifecycle, SwapSpaceIsReturnedWhenSwappedRequestsEnd) {
  auto model = test::load_engine_test_model();
  EngineConfig c;
  c.block_size = 4;
  c.kv_cache_blocks = 24;
  c.watermark = 0.0;
  c.preemption = PreemptionMode::kSwap;
  Engine engine(model, c);
  std::vector<uint64_t> ids;
  for (int i = 0; i < 6; ++i) {
    EngineRequest r = greedy(test::engine_test_prompts()[static_cast<size_t>(i)], 40);
    r.keep_context = (i % 2) == 0;
    ids.push_back(engine.submit(r));
  }
  // Cancel a few mid-flight, some of them possibly while swapped out.
  std::this_thread::sleep_for(50ms);
  engine.cancel(ids[1]);
  engine.cancel(ids[2]);
  for (uint64_t id : ids) engine.wait(id);
  for (size_t i = 0; i < ids.size(); i += 2) {
    try {
      engine.take_snapshot(ids[i]);
    } catch (const Error&) {
    }
  }
  EngineStats st;
  for (int i = 0; i < 100; ++i) {
    st = engine.stats();
    if (st.kv.used_blocks == 0 && st.swap_used_bytes == 0) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_GT(st.total_preemptions, 0) << "the budget did not force swapping";
  EXPECT_EQ(st.swap_used_bytes, 0);
  EXPECT_EQ(st.num_swapped, 0);
  EXPECT_EQ(st.kv.used_blocks, 0);
}

// A callback that throws ends its own request with an error; the engine keeps serving.
TEST(EngineLifecycle, ThrowingCallbackFailsOnlyItsRequest) {
  auto model = test::load_engine_test_model();
  Engine engine(model, roomy());
  std::atomic<bool> done{false};
  std::atomic<int> reason{-1};
  EngineRequest bad = greedy("Tom had a dog.", 50);
  bad.on_event = [&](const TokenEvent& ev) {
    if (ev.finished) {
      reason = static_cast<int>(ev.finish_reason);
      done = true;
      return;
    }
    throw std::runtime_error("client bug");
  };
  engine.submit(bad);
  for (int i = 0; i < 1000 && !done.load(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(done.load()) << "the failing request never ended";
  EXPECT_EQ(reason.load(), static_cast<int>(RequestFinishReason::kError));
  const RequestResult ok = engine.wait(engine.submit(greedy("Lily", 4)));
  EXPECT_EQ(ok.finish_reason, RequestFinishReason::kLength);
  EXPECT_EQ(ok.tokens.size(), 4u);
}

}  // namespace
}  // namespace llmos
