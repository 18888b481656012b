// The Engine's client-facing contract: pull and callback streaming, cancellation in every
// state, request and configuration validation, stop conditions, priorities, aging, client
// quotas, generate()'s order and shutdown with requests in flight. Expected outputs always come
// from another run of the same greedy request (or from the unconstrained run a constraint is
// derived from), never from hard-coded model output.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "engine_test_util.h"

namespace llmos {
namespace {

using namespace std::chrono_literals;

// Long enough for a Debug + sanitizer build on a loaded machine; only reached when the engine
// hangs, which then fails the test instead of blocking it.
constexpr std::chrono::milliseconds kEventTimeout = 60s;

EngineConfig small_config() {
  EngineConfig c;
  c.kv_cache_blocks = 256;
  c.block_size = 16;
  c.max_sequences = 8;
  return c;
}

EngineRequest greedy(const std::string& prompt, int32_t max_tokens, bool ignore_eos = true) {
  EngineRequest r;
  r.prompt = prompt;
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0.0f;
  r.ignore_eos = ignore_eos;
  return r;
}

const char* reason_name(RequestFinishReason r) { return request_finish_reason_name(r); }

// Runs `f`, which must throw llmos::Error with `code` and a message containing every one of
// `words`.
template <typename F>
void expect_error(StatusCode code, F&& f, const std::vector<std::string>& words,
                  const std::string& what) {
  SCOPED_TRACE(what);
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << status_code_name(e.code()) << ": " << e.what();
    for (const std::string& w : words) {
      EXPECT_NE(std::string(e.what()).find(w), std::string::npos)
          << "message \"" << e.what() << "\" does not name \"" << w << "\"";
    }
  }
}

// Every event of a pull-streamed request. A missing event fails the test instead of hanging.
struct Pulled {
  std::vector<TokenEvent> tokens;
  std::optional<TokenEvent> final;
  std::vector<int32_t> token_ids() const {
    std::vector<int32_t> out;
    for (const TokenEvent& e : tokens) out.push_back(e.token);
    return out;
  }
  std::string text() const {
    std::string out;
    for (const TokenEvent& e : tokens) out += e.text;
    if (final) out += final->text;
    return out;
  }
};

Pulled pull_all(Engine& engine, uint64_t id, Pulled p = {}) {
  for (;;) {
    std::optional<TokenEvent> ev = engine.next_event(id, kEventTimeout);
    if (!ev) {
      ADD_FAILURE() << "request " << id << ": no event within the timeout";
      return p;
    }
    EXPECT_EQ(ev->request_id, id);
    if (ev->finished) {
      p.final = std::move(*ev);
      return p;
    }
    p.tokens.push_back(std::move(*ev));
  }
}

// The events of one callback-streamed request, as the engine thread delivered them.
class Recorder {
 public:
  std::function<void(const TokenEvent&)> callback() {
    return [this](const TokenEvent& ev) {
      std::lock_guard<std::mutex> lk(mu_);
      if (finished_) ++after_final_;
      events_.push_back(ev);
      threads_.push_back(std::this_thread::get_id());
      if (ev.finished) finished_ = true;
      cv_.notify_all();
    };
  }
  // Waits until at least `n` events (or the final one) arrived.
  bool wait_events(size_t n) {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, kEventTimeout, [&] { return finished_ || events_.size() >= n; });
  }
  bool wait_finished() {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, kEventTimeout, [&] { return finished_; });
  }
  std::vector<TokenEvent> events() const {
    std::lock_guard<std::mutex> lk(mu_);
    return events_;
  }
  std::vector<std::thread::id> threads() const {
    std::lock_guard<std::mutex> lk(mu_);
    return threads_;
  }
  int after_final() const {
    std::lock_guard<std::mutex> lk(mu_);
    return after_final_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<TokenEvent> events_;
  std::vector<std::thread::id> threads_;
  bool finished_ = false;
  int after_final_ = 0;
};

// Holds the engine thread inside a request's first token callback until released, so that
// the requests a test submits meanwhile all reach the engine before its next step, whatever
// the thread timing. Declare it before the engine: it must outlive the callback.
class Gate {
 public:
  ~Gate() { release(); }
  std::function<void(const TokenEvent&)> callback() {
    return [this](const TokenEvent& ev) {
      if (ev.finished) return;
      std::unique_lock<std::mutex> lk(mu_);
      if (entered_) return;
      entered_ = true;
      cv_.notify_all();
      cv_.wait_for(lk, kEventTimeout, [&] { return released_; });
    };
  }
  bool wait_entered() {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, kEventTimeout, [&] { return entered_; });
  }
  void release() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool released_ = false;
};

// The order, across requests, in which first tokens and final events were delivered. Callbacks
// run one after another on the engine thread, so this is the engine's own order.
class OrderLog {
 public:
  enum Kind { kFirstToken, kFinished };
  struct Entry {
    std::string tag;
    Kind kind;
    RequestFinishReason reason;
  };

  // `then` runs after the event is logged (on the engine thread, outside the log's lock).
  std::function<void(const TokenEvent&)> callback(
      const std::string& tag, std::function<void(const TokenEvent&)> then = {}) {
    return [this, tag, then](const TokenEvent& ev) {
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (ev.finished) {
          entries_.push_back({tag, kFinished, ev.finish_reason});
          ++num_finished_;
          (void)num_tokens_[tag];  // the key exists even for zero tokens
        } else {
          if (num_tokens_[tag]++ == 0) entries_.push_back({tag, kFirstToken, {}});
        }
      }
      cv_.notify_all();
      if (then) then(ev);
    };
  }
  bool wait_finished(int n) {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, kEventTimeout, [&] { return num_finished_ >= n; });
  }
  // Position of the entry, or -1.
  int index(const std::string& tag, Kind kind) const {
    std::lock_guard<std::mutex> lk(mu_);
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i].tag == tag && entries_[i].kind == kind) return static_cast<int>(i);
    }
    return -1;
  }
  std::vector<std::string> first_token_order() const {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<std::string> out;
    for (const Entry& e : entries_) {
      if (e.kind == kFirstToken) out.push_back(e.tag);
    }
    return out;
  }
  RequestFinishReason reason(const std::string& tag) const {
    std::lock_guard<std::mutex> lk(mu_);
    for (const Entry& e : entries_) {
      if (e.tag == tag && e.kind == kFinished) return e.reason;
    }
    return RequestFinishReason::kNone;
  }
  int tokens(const std::string& tag) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = num_tokens_.find(tag);
    return it == num_tokens_.end() ? 0 : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Entry> entries_;
  std::map<std::string, int> num_tokens_;
  int num_finished_ = 0;
};

// Once every request has ended the engine holds nothing: no queued or running request and no
// used KV block. The stats are refreshed after each step, so poll briefly.
void expect_idle(const Engine& engine) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  EngineStats st = engine.stats();
  while ((st.num_running != 0 || st.num_waiting != 0 || st.num_preempted != 0 ||
          st.kv.used_blocks != 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
    st = engine.stats();
  }
  EXPECT_EQ(st.num_running, 0);
  EXPECT_EQ(st.num_waiting, 0);
  EXPECT_EQ(st.num_preempted, 0);
  EXPECT_EQ(st.kv.used_blocks, 0) << "KV blocks leaked";
  EXPECT_EQ(st.kv.used_blocks + st.kv.cached_blocks + st.kv.free_blocks, st.kv.total_blocks);
}

class EngineApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = test::load_engine_test_model(); }
  static void TearDownTestSuite() { model_.reset(); }

  static std::vector<int32_t> encode(const std::string& text) {
    return model_->tokenizer().encode(text, /*add_special=*/true);
  }
  static std::string prompt(size_t i) {
    const std::vector<std::string> p = test::engine_test_prompts();
    return p[i % p.size()];
  }

  static std::shared_ptr<LlamaModel> model_;
};
std::shared_ptr<LlamaModel> EngineApi::model_;

// ---------------------------------------------------------------------------------------------
// Streaming

TEST_F(EngineApi, PullStreamingYieldsOneEventPerTokenThenOneFinalEvent) {
  Engine engine(model_, small_config());
  const uint64_t id = engine.submit(greedy(prompt(0), 20));
  const Pulled p = pull_all(engine, id);
  ASSERT_TRUE(p.final.has_value());

  // The same greedy request again, collected with wait().
  const RequestResult ref = engine.wait(engine.submit(greedy(prompt(0), 20)));
  ASSERT_EQ(ref.finish_reason, RequestFinishReason::kLength) << reason_name(ref.finish_reason);
  ASSERT_EQ(ref.tokens.size(), 20u);
  EXPECT_EQ(ref.prompt_tokens, encode(prompt(0)));
  EXPECT_FALSE(ref.text.empty());

  EXPECT_EQ(p.tokens.size(), ref.tokens.size()) << "one event per generated token";
  EXPECT_EQ(p.token_ids(), ref.tokens);
  EXPECT_EQ(p.text(), ref.text) << "the streamed deltas concatenate to the result text";
  EXPECT_EQ(p.final->finish_reason, ref.finish_reason);
  EXPECT_TRUE(p.final->error.empty());

  // The final event released the request.
  expect_error(
      StatusCode::kNotFound, [&] { engine.next_event(id, 0ms); }, {std::to_string(id)},
      "next_event after the final event");
  expect_error(
      StatusCode::kNotFound, [&] { engine.wait(id); }, {std::to_string(id)},
      "wait after the final event");
  expect_error(
      StatusCode::kNotFound, [&] { engine.next_event(987654321, 0ms); }, {"987654321"},
      "next_event of an unknown id");
  expect_idle(engine);
}

TEST_F(EngineApi, CallbackStreamingDeliversInOrderOnTheEngineThread) {
  Recorder rec;
  Engine engine(model_, small_config());
  EngineRequest r = greedy(prompt(2), 16);
  r.on_event = rec.callback();
  const uint64_t id = engine.submit(std::move(r));
  ASSERT_TRUE(rec.wait_finished());
  const RequestResult ref = engine.wait(engine.submit(greedy(prompt(2), 16)));
  ASSERT_EQ(ref.tokens.size(), 16u);

  const std::vector<TokenEvent> events = rec.events();
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.back().finished) << "the final event comes last";
  std::vector<int32_t> tokens;
  std::string text;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].request_id, id);
    EXPECT_EQ(events[i].finished, i + 1 == events.size()) << "event " << i;
    if (!events[i].finished) tokens.push_back(events[i].token);
    text += events[i].text;
  }
  EXPECT_EQ(tokens, ref.tokens);
  EXPECT_EQ(text, ref.text);
  EXPECT_EQ(events.back().finish_reason, RequestFinishReason::kLength);

  const std::vector<std::thread::id> threads = rec.threads();
  for (const std::thread::id& t : threads) {
    EXPECT_NE(t, std::this_thread::get_id()) << "callbacks run on the engine thread";
    EXPECT_EQ(t, threads.front()) << "all callbacks run on one thread";
  }
  // A callback request is not pulled or waited for.
  expect_error(
      StatusCode::kNotFound, [&] { engine.next_event(id, 0ms); }, {std::to_string(id)},
      "next_event of a callback request");
  expect_error(
      StatusCode::kNotFound, [&] { engine.wait(id); }, {std::to_string(id)},
      "wait of a callback request");
  expect_idle(engine);
  EXPECT_EQ(rec.after_final(), 0) << "events after the final one";
}

// ---------------------------------------------------------------------------------------------
// Cancellation

TEST_F(EngineApi, CancelQueuedRequest) {
  EngineConfig c = small_config();
  c.max_sequences = 1;  // B and C wait while A runs
  Engine engine(model_, c);
  // A runs long enough that B is surely still queued when the cancel lands, even when this
  // thread is descheduled for a while on a busy machine.
  constexpr size_t kLongA = 400;  // fits the 512-token fallback model too
  const uint64_t a = engine.submit(greedy(prompt(1), kLongA));
  const uint64_t b = engine.submit(greedy(prompt(3), 8));
  const uint64_t cc = engine.submit(greedy(prompt(6), 4));
  // Once A streams, B is in the scheduler's queue.
  std::optional<TokenEvent> first = engine.next_event(a, kEventTimeout);
  ASSERT_TRUE(first.has_value());
  ASSERT_FALSE(first->finished);
  EXPECT_TRUE(engine.cancel(b));

  const RequestResult rb = engine.wait(b);
  EXPECT_EQ(rb.finish_reason, RequestFinishReason::kCancelled) << reason_name(rb.finish_reason);
  EXPECT_TRUE(rb.tokens.empty()) << "a queued request never generated";
  Pulled pa;
  pa.tokens.push_back(*first);
  pa = pull_all(engine, a, pa);
  ASSERT_TRUE(pa.final.has_value());
  EXPECT_EQ(pa.final->finish_reason, RequestFinishReason::kLength);
  EXPECT_EQ(pa.tokens.size(), kLongA);
  const RequestResult rc = engine.wait(cc);
  EXPECT_EQ(rc.finish_reason, RequestFinishReason::kLength);
  EXPECT_EQ(rc.tokens.size(), 4u);
  EXPECT_FALSE(engine.cancel(b)) << "released";
  expect_idle(engine);
  const EngineStats st = engine.stats();
  EXPECT_EQ(st.cancelled_requests, 1);
  EXPECT_EQ(st.finished_requests, 3);
}

TEST_F(EngineApi, CancelRunningRequestMidGeneration) {
  Engine engine(model_, small_config());
  constexpr int kMax = 200;
  const uint64_t id = engine.submit(greedy(prompt(3), kMax));
  const uint64_t other = engine.submit(greedy(prompt(1), 12));
  Pulled p;
  std::optional<TokenEvent> first = engine.next_event(id, kEventTimeout);
  ASSERT_TRUE(first.has_value());
  ASSERT_FALSE(first->finished);
  p.tokens.push_back(*first);
  EXPECT_TRUE(engine.cancel(id));
  p = pull_all(engine, id, p);
  ASSERT_TRUE(p.final.has_value());
  EXPECT_EQ(p.final->finish_reason, RequestFinishReason::kCancelled)
      << reason_name(p.final->finish_reason);
  EXPECT_LT(p.tokens.size(), static_cast<size_t>(kMax)) << "generation went on after cancel";
  // The other request is unaffected.
  const RequestResult ro = engine.wait(other);
  EXPECT_EQ(ro.finish_reason, RequestFinishReason::kLength);
  EXPECT_EQ(ro.tokens, engine.wait(engine.submit(greedy(prompt(1), 12))).tokens);
  expect_idle(engine);
  EXPECT_EQ(engine.stats().cancelled_requests, 1);
}

TEST_F(EngineApi, CancelFinishedRequestReturnsFalse) {
  EngineConfig c = small_config();
  c.max_sequences = 1;  // B runs after A has ended
  Recorder rec;
  Engine engine(model_, c);
  const uint64_t a = engine.submit(greedy(prompt(1), 3));
  const uint64_t b = engine.submit(greedy(prompt(3), 3));
  ASSERT_EQ(engine.wait(b).tokens.size(), 3u);
  // A has ended, its events are still queued: too late to cancel.
  EXPECT_FALSE(engine.cancel(a));
  const Pulled pa = pull_all(engine, a);
  ASSERT_TRUE(pa.final.has_value());
  EXPECT_EQ(pa.final->finish_reason, RequestFinishReason::kLength);
  EXPECT_EQ(pa.tokens.size(), 3u);
  EXPECT_FALSE(engine.cancel(a));
  EXPECT_FALSE(engine.cancel(b));
  EXPECT_FALSE(engine.cancel(123456789));

  // A callback request, once a later request (queued behind it) has ended.
  EngineRequest r = greedy(prompt(0), 2);
  r.on_event = rec.callback();
  const uint64_t cb = engine.submit(std::move(r));
  ASSERT_EQ(engine.wait(engine.submit(greedy(prompt(2), 2))).tokens.size(), 2u);
  ASSERT_TRUE(rec.wait_finished());
  EXPECT_FALSE(engine.cancel(cb));
  expect_idle(engine);
  EXPECT_EQ(engine.stats().cancelled_requests, 0);
}

// A cancelled request's result holds the tokens it generated before the cancel took effect:
// at least those already streamed. Runs the request alone (`companion` = false) or beside a
// long request that keeps the scheduler busy.
void check_cancelled_result_keeps_tokens(const std::shared_ptr<LlamaModel>& model, bool companion) {
  Engine engine(model, small_config());
  const std::vector<std::string> prompts = test::engine_test_prompts();
  const uint64_t id = engine.submit(greedy(prompts[3], 200));
  uint64_t other = 0;
  if (companion) other = engine.submit(greedy(prompts[1], 400));
  std::vector<int32_t> streamed;
  while (streamed.size() < 3) {
    std::optional<TokenEvent> ev = engine.next_event(id, kEventTimeout);
    ASSERT_TRUE(ev.has_value());
    ASSERT_FALSE(ev->finished);
    streamed.push_back(ev->token);
  }
  ASSERT_TRUE(engine.cancel(id));
  const RequestResult r = engine.wait(id);
  EXPECT_EQ(r.finish_reason, RequestFinishReason::kCancelled);
  ASSERT_GE(r.tokens.size(), streamed.size()) << "the result lost the generated tokens";
  EXPECT_TRUE(std::equal(streamed.begin(), streamed.end(), r.tokens.begin()));
  EXPECT_FALSE(r.text.empty());
  if (companion) {
    EXPECT_TRUE(engine.cancel(other));
    EXPECT_EQ(engine.wait(other).finish_reason, RequestFinishReason::kCancelled);
  }
  expect_idle(engine);
}

TEST_F(EngineApi, CancelledResultKeepsGeneratedTokens) {
  check_cancelled_result_keeps_tokens(model_, /*companion=*/false);
}

// Beside another request the scheduler keeps stepping, and schedule() forgets requests that
// finished since the previous step: the engine must collect the cancelled one's result first.
TEST_F(EngineApi, CancelledResultKeepsGeneratedTokensBesideOtherRequests) {
  check_cancelled_result_keeps_tokens(model_, /*companion=*/true);
}

// BUG (src/engine/engine.cc, Engine::wait): two threads waiting for the same request both
// return. Each holds the Channel from channel(id); once it ends, the first erases it and moves
// the result out, the second (woken by the same notify_all) returns the moved-from result: no
// tokens, no error, instead of kNotFound ("already released"). next_event has the same shape:
// a puller blocked while another thread releases the request waits out its whole timeout and
// gets nullopt. Fix: after waking, check that channels_ still maps id to this Channel (or mark
// the Channel released) and throw kNotFound otherwise.
TEST_F(EngineApi, ConcurrentWaitersGetTheResultOnce) {
  Engine engine(model_, small_config());
  for (int round = 0; round < 3; ++round) {
    const uint64_t id = engine.submit(greedy(prompt(1), 40));
    std::mutex mu;
    std::vector<size_t> results;
    int not_found = 0;
    auto waiter = [&] {
      try {
        const RequestResult r = engine.wait(id);
        std::lock_guard<std::mutex> lk(mu);
        results.push_back(r.tokens.size());
      } catch (const Error& e) {
        std::lock_guard<std::mutex> lk(mu);
        if (e.code() == StatusCode::kNotFound) ++not_found;
      }
    };
    std::thread a(waiter), b(waiter);
    a.join();
    b.join();
    EXPECT_EQ(results, std::vector<size_t>{40}) << "round " << round;
    EXPECT_EQ(not_found, 1) << "round " << round;
  }
  expect_idle(engine);
}

// wait_for gives up after its timeout and leaves the request running and waitable; once the
// request ends it returns the same result wait() would, and releases it.
TEST_F(EngineApi, WaitForTimesOutWithoutReleasingTheRequest) {
  Engine engine(model_, small_config());
  // Parked in its first token's callback until released, so it cannot end during the timeout.
  std::mutex mu;
  std::condition_variable cv;
  bool go = false;
  EngineRequest parked = greedy(prompt(2), 6);
  std::atomic<int> events{0};
  parked.on_event = [&](const TokenEvent&) {
    if (events.fetch_add(1) == 0) {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [&] { return go; });
    }
  };
  engine.submit(std::move(parked));
  const uint64_t id = engine.submit(greedy(prompt(1), 8));
  EXPECT_FALSE(engine.wait_for(id, std::chrono::milliseconds(0)).has_value());
  EXPECT_FALSE(engine.wait_for(id, std::chrono::milliseconds(30)).has_value());
  {
    std::lock_guard<std::mutex> lk(mu);
    go = true;
  }
  cv.notify_all();
  std::optional<RequestResult> r;
  for (int tries = 0; tries < 600 && !r; ++tries) r = engine.wait_for(id, std::chrono::milliseconds(100));
  ASSERT_TRUE(r.has_value()) << "request did not end within a minute";
  EXPECT_EQ(r->finish_reason, RequestFinishReason::kLength);
  EXPECT_EQ(r->tokens, engine.wait(engine.submit(greedy(prompt(1), 8))).tokens);
  expect_error(
      StatusCode::kNotFound, [&] { engine.wait_for(id, std::chrono::milliseconds(0)); },
      {std::to_string(id)}, "wait_for after release");
  expect_error(
      StatusCode::kInvalidArgument, [&] { engine.wait_for(id, std::chrono::milliseconds(-1)); },
      {"timeout"}, "negative timeout");
  expect_idle(engine);
}

// ---------------------------------------------------------------------------------------------
// Validation

TEST_F(EngineApi, InvalidRequestsThrowNamingTheProblem) {
  EngineConfig c = small_config();
  c.max_model_len = 32;
  Engine engine(model_, c);
  const int32_t vocab = static_cast<int32_t>(model_->config().vocab_size);
  const std::vector<int32_t> ids = encode(prompt(5));  // a natural prompt of > 32 tokens
  ASSERT_GT(ids.size(), 32u);
  auto tokens = [&](size_t n) { return std::vector<int32_t>(ids.begin(), ids.begin() + n); };
  auto expect_invalid = [&](EngineRequest r, const std::vector<std::string>& words,
                            const std::string& what) {
    expect_error(
        StatusCode::kInvalidArgument, [&] { engine.submit(std::move(r)); }, words, what);
  };

  // An empty text prompt is just BOS when the vocabulary adds one.
  const Vocab& v = model_->tokenizer().vocab();
  if (v.add_bos && v.bos != kNoToken) {
    const RequestResult r = engine.wait(engine.submit(greedy("", 3)));
    EXPECT_EQ(r.prompt_tokens, std::vector<int32_t>{v.bos});
    EXPECT_EQ(r.tokens.size(), 3u);
  } else {
    expect_invalid(greedy("", 3), {"prompt", "empty"}, "empty prompt without BOS");
  }

  EngineRequest r = greedy("", 4);
  r.prompt_tokens = {ids[0], ids[1], vocab};
  expect_invalid(r, {"prompt[2]", std::to_string(vocab)}, "token id == vocab size");
  r.prompt_tokens = {-3, ids[1]};
  expect_invalid(r, {"prompt[0]", "-3"}, "negative token id");

  r.prompt_tokens = tokens(32);
  expect_invalid(r, {"prompt", "32"}, "prompt as long as max_model_len");
  r.prompt_tokens = ids;
  expect_invalid(r, {"prompt", std::to_string(ids.size())}, "prompt longer than max_model_len");
  r.prompt.clear();
  r.prompt_tokens.clear();
  r.prompt = prompt(5);
  expect_invalid(r, {"prompt", "32"}, "text prompt longer than max_model_len");

  for (int32_t bad : {0, -1}) {
    EngineRequest m = greedy(prompt(1), bad);
    expect_invalid(m, {"max_tokens", std::to_string(bad)}, "max_tokens " + std::to_string(bad));
  }

  EngineRequest s = greedy(prompt(1), 4);
  s.sampling.temperature = -0.5f;
  expect_invalid(s, {"temperature"}, "negative temperature");
  s.sampling.temperature = std::numeric_limits<float>::quiet_NaN();
  expect_invalid(s, {"temperature"}, "NaN temperature");
  s.sampling.temperature = 0.7f;
  s.sampling.top_p = 1.5f;
  expect_invalid(s, {"top_p"}, "top_p > 1");

  EngineRequest st = greedy(prompt(1), 4);
  st.stop_strings = {"ok", ""};
  expect_invalid(st, {"stop_strings[1]"}, "empty stop string");
  st.stop_strings.clear();
  st.stop_token_ids = {-2};
  expect_invalid(st, {"stop_token_ids[0]"}, "negative stop token");
  EngineRequest pr = greedy(prompt(1), 4);
  pr.priority = static_cast<Priority>(7);
  expect_invalid(pr, {"priority"}, "priority outside the enum");

  // Nothing rejected reached the engine, and it still serves: the longest prompt that leaves
  // room for one token gets exactly that one token.
  EngineRequest edge = greedy("", 10);
  edge.prompt_tokens = tokens(31);
  const RequestResult re = engine.wait(engine.submit(edge));
  EXPECT_EQ(re.finish_reason, RequestFinishReason::kLength) << reason_name(re.finish_reason);
  EXPECT_EQ(re.tokens.size(), 1u) << "the context of max_model_len tokens is full";
  const EngineStats stats = engine.stats();
  EXPECT_EQ(stats.total_requests, v.add_bos && v.bos != kNoToken ? 2 : 1);
  expect_idle(engine);
}

TEST_F(EngineApi, UnchunkedPrefillRejectsPromptsOverTheTokenBudget) {
  EngineConfig c = small_config();
  c.chunked_prefill = false;
  c.max_batched_tokens = 16;
  Engine engine(model_, c);
  const std::vector<int32_t> ids = encode(prompt(5));
  ASSERT_GT(ids.size(), 17u);
  EngineRequest r = greedy("", 4);
  r.prompt_tokens.assign(ids.begin(), ids.begin() + 17);
  expect_error(
      StatusCode::kInvalidArgument, [&] { engine.submit(r); }, {"max_batched_tokens", "17"},
      "17 tokens over a budget of 16");
  r.prompt_tokens.assign(ids.begin(), ids.begin() + 16);
  const RequestResult ok = engine.wait(engine.submit(r));
  EXPECT_EQ(ok.tokens.size(), 4u);

  // With chunked prefill the same long prompt is fine.
  c.chunked_prefill = true;
  Engine chunked(model_, c);
  EngineRequest l = greedy(prompt(5), 4);
  EXPECT_EQ(chunked.wait(chunked.submit(l)).tokens.size(), 4u);
  expect_idle(engine);
  expect_idle(chunked);
}

TEST_F(EngineApi, BadConfigurationThrowsAtConstruction) {
  struct Bad {
    const char* field;
    std::function<void(EngineConfig&)> edit;
  };
  const int64_t context = model_->config().context_length;
  const std::vector<Bad> bad = {
      {"block_size", [](EngineConfig& c) { c.block_size = 0; }},
      {"block_size", [](EngineConfig& c) { c.block_size = -16; }},
      {"watermark", [](EngineConfig& c) { c.watermark = 1.5; }},
      {"watermark", [](EngineConfig& c) { c.watermark = -0.1; }},
      {"watermark", [](EngineConfig& c) { c.watermark = std::nan(""); }},
      {"kv_dtype", [](EngineConfig& c) { c.kv_dtype = DType::kQ4_0; }},
      {"max_batched_tokens", [](EngineConfig& c) { c.max_batched_tokens = 0; }},
      {"max_sequences", [](EngineConfig& c) { c.max_sequences = 0; }},
      {"aging_steps", [](EngineConfig& c) { c.aging_steps = -1; }},
      {"kv_cache_blocks", [](EngineConfig& c) { c.kv_cache_blocks = -4; }},
      {"kv_cache_bytes", [](EngineConfig& c) { c.kv_cache_bytes = -4; }},
      {"swap_space_bytes", [](EngineConfig& c) { c.swap_space_bytes = -1; }},
      {"max_model_len", [](EngineConfig& c) { c.max_model_len = -1; }},
      {"max_model_len",
       [context](EngineConfig& c) { c.max_model_len = static_cast<int32_t>(context + 1); }},
      {"quota", [](EngineConfig& c) { c.default_quota.max_running = -1; }},
      {"quota", [](EngineConfig& c) { c.quotas["alice"].max_kv_blocks = -1; }},
  };
  for (const Bad& b : bad) {
    EngineConfig c = small_config();
    b.edit(c);
    expect_error(
        StatusCode::kInvalidArgument, [&] { Engine e(model_, c); }, {b.field}, b.field);
  }
  expect_error(
      StatusCode::kInvalidArgument, [] { Engine e(nullptr, small_config()); }, {"model"},
      "null model");
}

// ---------------------------------------------------------------------------------------------
// Stop conditions and limits

TEST_F(EngineApi, StopTokenIdsFinishWithStopAndKeepTheToken) {
  Engine engine(model_, small_config());
  const RequestResult free_run = engine.wait(engine.submit(greedy(prompt(0), 24)));
  ASSERT_EQ(free_run.tokens.size(), 24u);
  // The first position >= 2 whose token did not occur before it.
  size_t k = 2;
  while (k < free_run.tokens.size() &&
         std::find(free_run.tokens.begin(), free_run.tokens.begin() + static_cast<long>(k),
                   free_run.tokens[k]) != free_run.tokens.begin() + static_cast<long>(k)) {
    ++k;
  }
  ASSERT_LT(k, free_run.tokens.size()) << "no fresh token in the greedy continuation";
  EngineRequest r = greedy(prompt(0), 24);
  r.stop_token_ids = {free_run.tokens[k]};
  const uint64_t id = engine.submit(r);
  const Pulled p = pull_all(engine, id);
  ASSERT_TRUE(p.final.has_value());
  EXPECT_EQ(p.final->finish_reason, RequestFinishReason::kStop)
      << reason_name(p.final->finish_reason);
  const std::vector<int32_t> expected(free_run.tokens.begin(),
                                      free_run.tokens.begin() + static_cast<long>(k) + 1);
  EXPECT_EQ(p.token_ids(), expected) << "stops at the token, which is kept";
  const RequestResult res = engine.wait(engine.submit(r));
  EXPECT_EQ(res.finish_reason, RequestFinishReason::kStop);
  EXPECT_EQ(res.tokens, expected);
  EXPECT_EQ(res.text, p.text());
  expect_idle(engine);
}

TEST_F(EngineApi, StopStringsCutTheTextAndAreNeverStreamed) {
  Engine engine(model_, small_config());
  const Tokenizer& tok = model_->tokenizer();
  const RequestResult free_run = engine.wait(engine.submit(greedy(prompt(1), 40)));
  const std::string& text = free_run.text;
  ASSERT_GT(text.size(), 24u);
  // A 5-byte stop string from the middle of the continuation; it is cut at its first
  // occurrence, which may be earlier.
  std::string stop;
  size_t cut = std::string::npos;
  for (size_t at = text.size() / 2; at + 5 <= text.size(); ++at) {
    stop = text.substr(at, 5);
    cut = text.find(stop);
    if (cut > 0) break;
  }
  ASSERT_NE(cut, std::string::npos);
  ASSERT_GT(cut, 0u);
  const std::string expected = text.substr(0, cut);

  EngineRequest r = greedy(prompt(1), 40);
  r.stop_strings = {"#%#%#%#", stop};  // a longer one that never matches holds back more
  const Pulled p = pull_all(engine, engine.submit(r));
  ASSERT_TRUE(p.final.has_value());
  EXPECT_EQ(p.final->finish_reason, RequestFinishReason::kStop)
      << reason_name(p.final->finish_reason) << "; stop string \"" << stop << "\"";
  EXPECT_EQ(p.text(), expected) << "stop string \"" << stop << "\"";

  const RequestResult res = engine.wait(engine.submit(r));
  EXPECT_EQ(res.finish_reason, RequestFinishReason::kStop);
  EXPECT_EQ(res.text, expected);
  EXPECT_EQ(res.tokens, p.token_ids());
  // Generation ended on the token that completed the stop string.
  ASSERT_FALSE(res.tokens.empty());
  ASSERT_LE(res.tokens.size(), free_run.tokens.size());
  EXPECT_TRUE(std::equal(res.tokens.begin(), res.tokens.end(), free_run.tokens.begin()));
  EXPECT_NE(tok.decode(res.tokens).find(stop), std::string::npos);
  const std::vector<int32_t> but_last(res.tokens.begin(), res.tokens.end() - 1);
  EXPECT_EQ(tok.decode(but_last).find(stop), std::string::npos);
  expect_idle(engine);
}

TEST_F(EngineApi, MaxTokensIsRespected) {
  Engine engine(model_, small_config());
  for (int32_t n : {1, 5, 17}) {
    SCOPED_TRACE(n);
    const uint64_t id = engine.submit(greedy(prompt(4), n));
    const Pulled p = pull_all(engine, id);
    ASSERT_TRUE(p.final.has_value());
    EXPECT_EQ(p.final->finish_reason, RequestFinishReason::kLength);
    EXPECT_EQ(p.tokens.size(), static_cast<size_t>(n));
    const RequestResult r = engine.wait(engine.submit(greedy(prompt(4), n)));
    EXPECT_EQ(r.finish_reason, RequestFinishReason::kLength);
    EXPECT_EQ(r.tokens.size(), static_cast<size_t>(n));
    // Without ignore_eos the limit still holds; an earlier end is an end-of-generation token.
    const RequestResult e = engine.wait(engine.submit(greedy(prompt(4), n, false)));
    EXPECT_LE(e.tokens.size(), static_cast<size_t>(n));
    if (e.finish_reason == RequestFinishReason::kEos) {
      ASSERT_FALSE(e.tokens.empty());
      EXPECT_TRUE(model_->tokenizer().is_eog(e.tokens.back()));
    } else {
      EXPECT_EQ(e.finish_reason, RequestFinishReason::kLength);
      EXPECT_EQ(e.tokens.size(), static_cast<size_t>(n));
    }
  }
  expect_idle(engine);
}

// ---------------------------------------------------------------------------------------------
// Scheduling policy seen from the client

TEST_F(EngineApi, RealtimeRequestOvertakesQueuedBackgroundOnes) {
  EngineConfig c = small_config();
  c.max_sequences = 1;
  OrderLog log;
  // B1's first token holds the engine thread until R is queued behind B2..B6.
  Gate gate;
  Engine engine(model_, c);
  for (int i = 1; i <= 6; ++i) {
    EngineRequest r = greedy(prompt(static_cast<size_t>(i)), 4);
    r.priority = Priority::kBackground;
    const std::string tag = "B" + std::to_string(i);
    r.on_event = i == 1 ? log.callback(tag, gate.callback()) : log.callback(tag);
    engine.submit(std::move(r));
  }
  ASSERT_TRUE(gate.wait_entered());
  EngineRequest rt = greedy(prompt(0), 4);
  rt.priority = Priority::kRealtime;
  rt.on_event = log.callback("R");
  engine.submit(std::move(rt));
  gate.release();
  ASSERT_TRUE(log.wait_finished(7));
  const std::vector<std::string> expected = {"B1", "R", "B2", "B3", "B4", "B5", "B6"};
  EXPECT_EQ(log.first_token_order(), expected);
  for (const std::string& tag : expected) {
    EXPECT_EQ(log.reason(tag), RequestFinishReason::kLength) << tag;
    EXPECT_EQ(log.tokens(tag), 4) << tag;
  }
  expect_idle(engine);
}

// One background request (B) queued behind interactive ones, with a new interactive request
// submitted each time one finishes until `stream` have been submitted: the queue always holds
// interactive work ahead of B. Returns how many interactive requests finished before B did.
int interactive_done_before_background(const std::shared_ptr<LlamaModel>& model,
                                       int32_t aging_steps, int stream) {
  EngineConfig c = small_config();
  c.max_sequences = 1;
  c.aging_steps = aging_steps;
  std::mutex mu;
  std::condition_variable cv;
  int submitted = 0;
  int interactive_done = 0;
  int done_before_b = -1;
  Engine* engine_ptr = nullptr;
  std::function<EngineRequest()> interactive;
  interactive = [&] {
    EngineRequest r = greedy(test::engine_test_prompts()[3], 3);
    r.priority = Priority::kInteractive;
    r.on_event = [&](const TokenEvent& ev) {
      if (!ev.finished) return;
      bool more = false;
      {
        std::lock_guard<std::mutex> lk(mu);
        ++interactive_done;
        more = submitted < stream;
        if (more) ++submitted;
      }
      cv.notify_all();
      // Submitted from the engine thread, so it is queued before the next step.
      if (more) engine_ptr->submit(interactive());
    };
    return r;
  };
  Gate gate;
  Engine engine(model, c);
  engine_ptr = &engine;
  {
    std::lock_guard<std::mutex> lk(mu);
    submitted = 3;
  }
  // The engine waits in the gate request's callback until the initial queue is complete.
  EngineRequest g = greedy(test::engine_test_prompts()[6], 1);
  g.priority = Priority::kRealtime;
  g.on_event = gate.callback();
  engine.submit(std::move(g));
  EXPECT_TRUE(gate.wait_entered());
  engine.submit(interactive());
  EngineRequest b = greedy(test::engine_test_prompts()[1], 3);
  b.priority = Priority::kBackground;
  b.on_event = [&](const TokenEvent& ev) {
    if (!ev.finished) return;
    std::lock_guard<std::mutex> lk(mu);
    done_before_b = interactive_done;
    cv.notify_all();
  };
  engine.submit(std::move(b));
  engine.submit(interactive());
  engine.submit(interactive());
  gate.release();
  std::unique_lock<std::mutex> lk(mu);
  const bool done = cv.wait_for(lk, kEventTimeout,
                                [&] { return done_before_b >= 0 && interactive_done == stream; });
  EXPECT_TRUE(done) << "background " << done_before_b << ", interactive " << interactive_done;
  lk.unlock();
  expect_idle(engine);
  return done_before_b;
}

TEST_F(EngineApi, AgingLetsBackgroundRunBehindAStreamOfInteractiveRequests) {
  constexpr int kStream = 12;
  const int before = interactive_done_before_background(model_, /*aging_steps=*/2, kStream);
  EXPECT_GE(before, 1);
  EXPECT_LE(before, kStream / 2) << "the background request waited for the whole stream";
}

// The control for the test above: without aging the same stream starves B until it ends, so
// the aging test does measure aging.
TEST_F(EngineApi, WithoutAgingBackgroundWaitsForTheWholeStream) {
  constexpr int kStream = 8;
  EXPECT_EQ(interactive_done_before_background(model_, /*aging_steps=*/0, kStream), kStream);
}

// A client at its max_running quota gets further requests queued, not refused: both finish,
// one after the other, while a client without a limit runs its two at once.
TEST_F(EngineApi, ClientQuotaQueuesRequestsOverTheLimit) {
  struct Case {
    const char* name;
    EngineConfig config;
    std::string limited, unlimited;
  };
  std::vector<Case> cases;
  {
    Case c{"named quota", small_config(), "alice", "bob"};
    c.config.quotas["alice"].max_running = 1;
    cases.push_back(c);
  }
  {
    Case c{"default quota for unknown clients", small_config(), "stranger", "vip"};
    c.config.default_quota.max_running = 1;
    c.config.quotas["vip"] = ClientQuota{};  // 0 = unlimited
    cases.push_back(c);
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    OrderLog log;
    Gate gate;
    Engine engine(model_, c.config);
    // All four reach the engine at once, while a gate request holds its thread.
    EngineRequest g = greedy(prompt(6), 2);
    g.client_id = "gatekeeper";
    g.on_event = gate.callback();
    engine.submit(std::move(g));
    ASSERT_TRUE(gate.wait_entered());
    const std::vector<std::pair<std::string, std::string>> reqs = {
        {"L1", c.limited}, {"L2", c.limited}, {"U1", c.unlimited}, {"U2", c.unlimited}};
    for (size_t i = 0; i < reqs.size(); ++i) {
      EngineRequest r = greedy(prompt(i), 8);
      r.client_id = reqs[i].second;
      r.on_event = log.callback(reqs[i].first);
      ASSERT_NO_THROW(engine.submit(std::move(r)));
    }
    gate.release();
    ASSERT_TRUE(log.wait_finished(4));
    for (const auto& [tag, client] : reqs) {
      EXPECT_EQ(log.reason(tag), RequestFinishReason::kLength) << tag;
      EXPECT_EQ(log.tokens(tag), 8) << tag;
    }
    // The limited client's requests never overlap...
    EXPECT_LT(log.index("L1", OrderLog::kFinished), log.index("L2", OrderLog::kFirstToken));
    // ...while the unlimited client's do.
    EXPECT_LT(log.index("U2", OrderLog::kFirstToken), log.index("U1", OrderLog::kFinished));
    expect_idle(engine);
  }
}

// ---------------------------------------------------------------------------------------------
// generate() and shutdown

TEST_F(EngineApi, GenerateReturnsResultsInInputOrder) {
  EngineConfig c = small_config();
  c.max_batched_tokens = 16;  // long prompts prefill over several steps and finish last
  Engine engine(model_, c);
  std::vector<std::string> prompts = test::engine_test_prompts();
  std::sort(prompts.begin(), prompts.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  EngineRequest settings = greedy("", 6);
  const std::vector<RequestResult> results = engine.generate(prompts, settings);
  ASSERT_EQ(results.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE(prompts[i]);
    EXPECT_EQ(results[i].prompt_tokens, encode(prompts[i]));
    EXPECT_EQ(results[i].finish_reason, RequestFinishReason::kLength);
    EXPECT_EQ(results[i].tokens, engine.generate({prompts[i]}, settings)[0].tokens);
    if (i > 0) {
      EXPECT_GT(results[i].id, results[i - 1].id);
    }
  }
  EXPECT_TRUE(engine.generate({}, settings).empty());
  expect_idle(engine);
}

TEST_F(EngineApi, GenerateWithABadPromptCancelsWhatItSubmitted) {
  EngineConfig c = small_config();
  c.max_model_len = 32;
  Engine engine(model_, c);
  ASSERT_GT(encode(prompt(5)).size(), 32u);
  EngineRequest settings = greedy("", 100);
  expect_error(
      StatusCode::kInvalidArgument,
      [&] {
        engine.generate({prompt(3), prompt(6), prompt(5)}, settings);
      },
      {"prompt"}, "third prompt too long");
  expect_idle(engine);
  const EngineStats st = engine.stats();
  EXPECT_EQ(st.total_requests, 2);
  EXPECT_EQ(st.finished_requests, 2);
}

TEST_F(EngineApi, DestroyingTheEngineCancelsRequestsInFlight) {
  constexpr int kRequests = 6;
  constexpr int kMaxTokens = 300;
  std::vector<Recorder> recs(kRequests + 1);
  auto engine = std::make_unique<Engine>(model_, [] {
    EngineConfig c = small_config();
    c.max_sequences = 2;  // some run, some wait
    return c;
  }());
  for (int i = 0; i < kRequests; ++i) {
    EngineRequest r = greedy(prompt(static_cast<size_t>(i)), kMaxTokens);
    r.on_event = recs[static_cast<size_t>(i)].callback();
    engine->submit(std::move(r));
  }
  ASSERT_TRUE(recs[0].wait_events(2));
  EngineRequest late = greedy(prompt(7), kMaxTokens);  // probably still in the inbox
  late.on_event = recs[kRequests].callback();
  engine->submit(std::move(late));

  const auto t0 = std::chrono::steady_clock::now();
  engine.reset();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 5.0) << "the destructor waited for the requests to finish";

  for (size_t i = 0; i < recs.size(); ++i) {
    SCOPED_TRACE(i);
    const std::vector<TokenEvent> events = recs[i].events();
    ASSERT_FALSE(events.empty()) << "no final event";
    EXPECT_TRUE(events.back().finished);
    EXPECT_EQ(events.back().finish_reason, RequestFinishReason::kCancelled)
        << reason_name(events.back().finish_reason);
    EXPECT_LT(events.size(), static_cast<size_t>(kMaxTokens));
    EXPECT_EQ(recs[i].after_final(), 0);
  }
}

}  // namespace
}  // namespace llmos
