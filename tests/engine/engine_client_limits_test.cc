// Hard per-client limits enforced at submission: outstanding requests (kBusy) and the list of
// known clients (kInvalidArgument). Soft quotas (running sequences, KV blocks) make requests
// wait instead; they are covered by the scheduler and engine API tests.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "core/error.h"
#include "engine_test_util.h"

namespace llmos {
namespace {

StatusCode submit_code(Engine& engine, EngineRequest r) {
  try {
    engine.wait(engine.submit(std::move(r)));
    return StatusCode::kOk;
  } catch (const Error& e) {
    return e.code();
  }
}

TEST(EngineClientLimits, OutstandingLimitRefusesWithBusyAndRecovers) {
  auto model = test::load_engine_test_model();
  EngineConfig config;
  config.kv_cache_blocks = 256;
  config.max_sequences = 1;  // later requests stay queued while the first runs
  config.quotas["shell"].max_outstanding = 2;
  Engine engine(model, config);

  // A gate request parks the engine thread in its first token's callback, so the shell's
  // requests stay outstanding however fast the engine is, until the gate opens.
  std::mutex mu;
  std::condition_variable cv;
  bool parked = false, open = false;
  EngineRequest gate;
  gate.prompt = "Once";
  gate.max_tokens = 1;
  gate.client_id = "gate";
  gate.on_event = [&](const TokenEvent& ev) {
    if (ev.finished) return;
    std::unique_lock<std::mutex> lk(mu);
    parked = true;
    cv.notify_all();
    cv.wait(lk, [&] { return open; });
  };
  engine.submit(std::move(gate));
  auto open_gate = [&] {
    std::lock_guard<std::mutex> lk(mu);
    open = true;
    cv.notify_all();
  };
  {
    std::unique_lock<std::mutex> lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(60), [&] { return parked; }))
        << "the gate request never produced a token";
  }

  EngineRequest r;
  r.prompt = "Once upon a time";
  r.max_tokens = 8;
  r.client_id = "shell";
  const uint64_t a = engine.submit(r);
  const uint64_t b = engine.submit(r);
  try {
    engine.submit(r);
    open_gate();
    FAIL() << "a third outstanding request was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kBusy);
    EXPECT_NE(std::string(e.what()).find("shell"), std::string::npos) << e.what();
  }
  open_gate();
  // Other clients are not affected by the shell's limit.
  EngineRequest other = r;
  other.client_id = "assistant";
  EXPECT_EQ(submit_code(engine, other), StatusCode::kOk);
  engine.wait(a);
  engine.wait(b);
  EXPECT_EQ(submit_code(engine, r), StatusCode::kOk) << "the limit must free up when requests end";
}

TEST(EngineClientLimits, UnknownClientsAreRefusedWhenConfigured) {
  auto model = test::load_engine_test_model();
  EngineConfig config;
  config.kv_cache_blocks = 64;
  config.quotas["hub"] = ClientQuota{};
  config.reject_unknown_clients = true;
  Engine engine(model, config);
  EngineRequest r;
  r.prompt = "Hello";
  r.max_tokens = 2;
  r.client_id = "hub";
  EXPECT_EQ(submit_code(engine, r), StatusCode::kOk);
  r.client_id = "intruder";
  try {
    engine.submit(r);
    FAIL() << "unknown client accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("intruder"), std::string::npos) << e.what();
  }
}

TEST(EngineClientLimits, NegativeLimitIsABadConfiguration) {
  auto model = test::load_engine_test_model();
  EngineConfig config;
  config.kv_cache_blocks = 64;
  config.quotas["x"].max_outstanding = -1;
  try {
    Engine engine(model, config);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace llmos
