// Many clients at once. 1,000 requests (fewer under sanitizers; LLMOS_STRESS_REQUESTS
// overrides) come from 4 threads with random priorities, clients (some under soft quotas, one
// under a hard outstanding limit), prompt lengths, max_tokens, sampling and stop tokens; they
// are consumed through callbacks, next_event() and wait() while a 5th thread cancels some right
// after submission and some later. The KV budget is small enough that requests get preempted
// (by recompute, then by swap). Every request must end exactly once, greedy requests must still
// produce the tokens they produce alone, and the engine must end idle with every KV block
// accounted for. A watchdog turns a deadlock into a failure instead of a hung test.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "engine_test_util.h"

namespace llmos {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kSubmitters = 4;
constexpr auto kWatchdog = 120s;

// Sanitizer builds run several times slower; fewer requests keep them well inside the
// watchdog on a loaded 2-core machine.
#if defined(__SANITIZE_THREAD__)
constexpr int kDefaultRequests = 200;
#elif defined(__SANITIZE_ADDRESS__)
constexpr int kDefaultRequests = 400;
#else
constexpr int kDefaultRequests = 1000;
#endif

int stress_requests() {
  const char* v = std::getenv("LLMOS_STRESS_REQUESTS");
  const int n = v == nullptr ? 0 : std::atoi(v);
  return n > 0 ? n : kDefaultRequests;
}

enum class Consumer : uint8_t { kCallback, kPull, kWait };

// Everything known about one request slot. Written by the thread that consumes the request
// (the engine thread for callbacks), read by the checks after every thread is done.
struct Track {
  std::mutex mu;
  uint64_t id = 0;  // 0: refused at submission (over the hard outstanding limit)
  bool refused = false;
  Consumer consumer = Consumer::kCallback;
  int32_t max_tokens = 0;
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;
  int oracle = -1;  // greedy request on oracle prompt `oracle`
  std::atomic<bool> cancel_requested{false};

  int finals = 0;
  int after_final = 0;
  uint64_t event_id_mismatch = 0;    // an event carrying another request's id
  bool released_after_final = true;  // next_event threw kNotFound after the final event
  std::vector<int32_t> tokens;
  RequestFinishReason reason = RequestFinishReason::kNone;
  std::string error;
};

// A FIFO of request slots handed from the submitters to one kind of consumer.
class SlotQueue {
 public:
  void push(Track* t) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      q_.push_back(t);
    }
    cv_.notify_all();
  }
  void close() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }
  // Blocks up to `timeout` for a slot; nullopt when none came (or, once closed, none is left).
  std::optional<Track*> pop(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, timeout, [&] { return closed_ || !q_.empty(); });
    if (q_.empty()) return std::nullopt;
    Track* t = q_.front();
    q_.pop_front();
    return t;
  }
  bool drained() {
    std::lock_guard<std::mutex> lk(mu_);
    return closed_ && q_.empty();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Track*> q_;
  bool closed_ = false;
};

struct StressCounters {
  std::atomic<int> finals{0};
  std::atomic<int> accepted{0};
  std::atomic<int> refused{0};
  std::atomic<int> cancels_sent{0};
  std::atomic<int> unexpected_errors{0};
};

void record_final(Track& t, const TokenEvent& ev, StressCounters& counters) {
  std::lock_guard<std::mutex> lk(t.mu);
  ++t.finals;
  t.reason = ev.finish_reason;
  t.error = ev.error;
  counters.finals.fetch_add(1);
}

class EngineStress : public ::testing::TestWithParam<PreemptionMode> {
 protected:
  static void SetUpTestSuite() {
    model_ = test::load_engine_test_model();
    // The oracle: each oracle prompt alone, greedy, in an engine with room to spare.
    EngineConfig quiet;
    quiet.kv_cache_blocks = 256;
    Engine engine(model_, quiet);
    for (const std::string& p : test::engine_test_prompts()) {
      EngineRequest r;
      r.prompt_tokens = model_->tokenizer().encode(p, true);
      if (r.prompt_tokens.size() > 24) continue;  // keep within the stress prompt lengths
      r.max_tokens = kMaxTokens;
      r.ignore_eos = true;
      r.sampling.temperature = 0.0f;
      oracle_prompts_.push_back(r.prompt_tokens);
      oracle_tokens_.push_back(engine.wait(engine.submit(r)).tokens);
    }
  }
  static void TearDownTestSuite() { model_.reset(); }

  void run(PreemptionMode mode, int num_requests);

  static constexpr int32_t kMaxTokens = 8;
  static std::shared_ptr<LlamaModel> model_;
  static std::vector<std::vector<int32_t>> oracle_prompts_;
  static std::vector<std::vector<int32_t>> oracle_tokens_;
};
std::shared_ptr<LlamaModel> EngineStress::model_;
std::vector<std::vector<int32_t>> EngineStress::oracle_prompts_;
std::vector<std::vector<int32_t>> EngineStress::oracle_tokens_;

void EngineStress::run(PreemptionMode mode, int num_requests) {
  EngineConfig config;
  config.block_size = 4;
  config.kv_cache_blocks = 16;  // 64 tokens: the longest request (24 + 8 tokens) fits twice
  config.watermark = 0.0;
  config.max_sequences = 16;
  config.max_batched_tokens = 64;
  config.preemption = mode;
  config.aging_steps = 16;
  config.quotas["alice"].max_running = 2;
  config.quotas["bob"].max_running = 1;
  config.quotas["bob"].max_kv_blocks = 6;
  config.quotas["carol"].max_kv_blocks = 4;
  config.quotas["eve"].max_outstanding = 3;  // hard limit: refused with kBusy beyond it
  const std::vector<std::string> clients = {"", "alice", "bob", "carol", "dave", "eve"};

  const int32_t vocab = static_cast<int32_t>(model_->config().vocab_size);
  const std::vector<int32_t> shared_prefix =
      model_->tokenizer().encode(test::engine_test_prompts()[0], true);
  ASSERT_FALSE(oracle_prompts_.empty());

  std::vector<std::unique_ptr<Track>> tracks;
  for (int i = 0; i < num_requests; ++i) tracks.push_back(std::make_unique<Track>());
  StressCounters counters;
  SlotQueue to_cancel, to_pull, to_wait;

  Engine engine(model_, config);

  auto submitter = [&](int t) {
    std::mt19937 rng(1234u + static_cast<unsigned>(t) * 7919u +
                     static_cast<unsigned>(mode) * 104729u);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    const int begin = num_requests * t / kSubmitters;
    const int end = num_requests * (t + 1) / kSubmitters;
    for (int i = begin; i < end; ++i) {
      // Keep a bounded backlog, so cancels meet requests in every state.
      while (counters.accepted.load() - counters.finals.load() > 96) {
        std::this_thread::sleep_for(200us);
      }
      Track& tr = *tracks[static_cast<size_t>(i)];
      EngineRequest r;
      r.priority = static_cast<Priority>(pick(kNumPriorities));
      r.client_id = clients[static_cast<size_t>(pick(static_cast<int>(clients.size())))];
      r.max_tokens = 1 + pick(kMaxTokens);
      if (pick(4) == 0) {  // greedy on an oracle prompt: must match its solitary tokens
        tr.oracle = pick(static_cast<int>(oracle_prompts_.size()));
        r.prompt_tokens = oracle_prompts_[static_cast<size_t>(tr.oracle)];
        r.sampling.temperature = 0.0f;
        r.ignore_eos = true;
      } else {
        const int len = 1 + pick(16);
        if (pick(2) == 0) {  // shares a prefix with other requests: prefix-cache hits
          r.prompt_tokens.assign(
              shared_prefix.begin(),
              shared_prefix.begin() + std::min<long>(len, static_cast<long>(shared_prefix.size())));
        }
        while (static_cast<int>(r.prompt_tokens.size()) < len) {
          r.prompt_tokens.push_back(pick(vocab));
        }
        r.sampling.temperature = pick(2) == 0 ? 0.0f : 0.8f;
        r.sampling.seed = rng();
        r.ignore_eos = pick(2) == 0;
        if (pick(10) == 0) r.stop_token_ids = {pick(vocab)};
      }
      tr.max_tokens = r.max_tokens;
      tr.ignore_eos = r.ignore_eos;
      tr.stop_token_ids = r.stop_token_ids;
      const int kind = pick(5);
      tr.consumer = kind < 2 ? Consumer::kCallback : kind < 4 ? Consumer::kPull : Consumer::kWait;
      if (tr.consumer == Consumer::kCallback) {
        Track* tp = &tr;
        StressCounters* cp = &counters;
        r.on_event = [tp, cp](const TokenEvent& ev) {
          if (ev.finished) {
            std::lock_guard<std::mutex> lk(tp->mu);
            if (tp->finals > 0) ++tp->after_final;
            if (tp->id != 0 && ev.request_id != tp->id) tp->event_id_mismatch = ev.request_id;
          } else {
            std::lock_guard<std::mutex> lk(tp->mu);
            if (tp->finals > 0) ++tp->after_final;
            tp->tokens.push_back(ev.token);
            return;
          }
          record_final(*tp, ev, *cp);
        };
      }
      try {
        const uint64_t id = engine.submit(std::move(r));
        {
          std::lock_guard<std::mutex> lk(tr.mu);
          tr.id = id;
        }
        counters.accepted.fetch_add(1);
      } catch (const Error& e) {
        if (e.code() != StatusCode::kBusy) {
          ADD_FAILURE() << "submit: " << status_code_name(e.code()) << ": " << e.what();
          counters.unexpected_errors.fetch_add(1);
        }
        std::lock_guard<std::mutex> lk(tr.mu);
        tr.refused = true;
        counters.refused.fetch_add(1);
        continue;
      }
      to_cancel.push(&tr);
      if (tr.consumer == Consumer::kPull) to_pull.push(&tr);
      if (tr.consumer == Consumer::kWait) to_wait.push(&tr);
      if (pick(8) == 0) std::this_thread::sleep_for(std::chrono::microseconds(pick(500)));
    }
  };

  // Cancels ~8% of the requests at once and ~12% after 0-30 ms; a few twice.
  auto canceller = [&] {
    std::mt19937 rng(99u + static_cast<unsigned>(mode));
    std::vector<std::pair<Clock::time_point, Track*>> later;
    auto cancel = [&](Track* t) {
      t->cancel_requested.store(true);
      engine.cancel(t->id);
      counters.cancels_sent.fetch_add(1);
    };
    for (;;) {
      std::optional<Track*> t = to_cancel.pop(1ms);
      if (t) {
        const unsigned roll = rng() % 100;
        if (roll < 8) {
          cancel(*t);
          if (roll == 0) cancel(*t);
        } else if (roll < 20) {
          later.emplace_back(Clock::now() + std::chrono::microseconds(rng() % 30000), *t);
        }
      }
      const Clock::time_point now = Clock::now();
      for (auto it = later.begin(); it != later.end();) {
        if (it->first <= now) {
          cancel(it->second);
          it = later.erase(it);
        } else {
          ++it;
        }
      }
      if (!t && later.empty() && to_cancel.drained()) return;
    }
  };

  // Pulls every pull-consumed request's events, round robin over those in flight.
  auto puller = [&] {
    std::vector<Track*> active;
    for (;;) {
      while (std::optional<Track*> t = to_pull.pop(active.empty() ? 5ms : 0ms)) {
        active.push_back(*t);
      }
      if (active.empty()) {
        if (to_pull.drained()) return;
        continue;
      }
      bool progress = false;
      for (auto it = active.begin(); it != active.end();) {
        Track& tr = **it;
        std::optional<TokenEvent> ev;
        try {
          ev = engine.next_event(tr.id, 0ms);
        } catch (const Error& e) {
          ADD_FAILURE() << "next_event(" << tr.id << "): " << e.what();
          counters.unexpected_errors.fetch_add(1);
          it = active.erase(it);
          continue;
        }
        if (!ev) {
          ++it;
          continue;
        }
        progress = true;
        if (ev->request_id != tr.id) {
          std::lock_guard<std::mutex> lk(tr.mu);
          tr.event_id_mismatch = ev->request_id;
        }
        if (!ev->finished) {
          std::lock_guard<std::mutex> lk(tr.mu);
          tr.tokens.push_back(ev->token);
          ++it;
          continue;
        }
        record_final(tr, *ev, counters);
        bool released = false;
        try {
          engine.next_event(tr.id, 0ms);
        } catch (const Error& e) {
          released = e.code() == StatusCode::kNotFound;
        }
        {
          std::lock_guard<std::mutex> lk(tr.mu);
          tr.released_after_final = released;
        }
        it = active.erase(it);
      }
      if (!progress) std::this_thread::sleep_for(500us);
    }
  };

  auto waiter = [&] {
    for (;;) {
      std::optional<Track*> t = to_wait.pop(5ms);
      if (!t) {
        if (to_wait.drained()) return;
        continue;
      }
      Track& tr = **t;
      try {
        RequestResult res = engine.wait(tr.id);
        std::lock_guard<std::mutex> lk(tr.mu);
        if (res.id != tr.id) tr.event_id_mismatch = res.id;
        tr.tokens = std::move(res.tokens);
        ++tr.finals;
        tr.reason = res.finish_reason;
        tr.error = res.error;
        counters.finals.fetch_add(1);
      } catch (const Error& e) {
        ADD_FAILURE() << "wait(" << tr.id << "): " << e.what();
        counters.unexpected_errors.fetch_add(1);
      }
    }
  };

  std::vector<std::thread> submitters;
  for (int t = 0; t < kSubmitters; ++t) submitters.emplace_back(submitter, t);
  std::thread cancel_thread(canceller);
  std::thread pull_threads[2] = {std::thread(puller), std::thread(puller)};
  std::thread wait_thread(waiter);
  for (std::thread& t : submitters) t.join();
  to_cancel.close();
  to_pull.close();
  to_wait.close();
  cancel_thread.join();
  for (std::thread& t : pull_threads) t.join();
  wait_thread.join();
  // Callback requests end on the engine thread.
  while (counters.finals.load() < counters.accepted.load()) std::this_thread::sleep_for(1ms);

  // Every request ended exactly once, with a reason consistent with what it asked for.
  ASSERT_EQ(counters.accepted.load() + counters.refused.load(), num_requests);
  EXPECT_EQ(counters.unexpected_errors.load(), 0);
  std::set<uint64_t> ids;
  int cancelled = 0, greedy_checked = 0;
  for (size_t i = 0; i < tracks.size(); ++i) {
    Track& t = *tracks[i];
    std::lock_guard<std::mutex> lk(t.mu);
    if (t.refused) continue;
    SCOPED_TRACE("request " + std::to_string(t.id));
    EXPECT_TRUE(ids.insert(t.id).second) << "id handed out twice";
    EXPECT_EQ(t.finals, 1) << "final events";
    EXPECT_EQ(t.after_final, 0) << "events after the final one";
    EXPECT_EQ(t.event_id_mismatch, 0u) << "an event of another request";
    EXPECT_TRUE(t.released_after_final) << "next_event did not throw kNotFound after the end";
    EXPECT_LE(t.tokens.size(), static_cast<size_t>(t.max_tokens));
    switch (t.reason) {
      case RequestFinishReason::kLength:
        EXPECT_EQ(t.tokens.size(), static_cast<size_t>(t.max_tokens));
        break;
      case RequestFinishReason::kEos:
        EXPECT_FALSE(t.ignore_eos);
        EXPECT_TRUE(!t.tokens.empty() && model_->tokenizer().is_eog(t.tokens.back()));
        break;
      case RequestFinishReason::kStop:
        EXPECT_TRUE(!t.tokens.empty() && !t.stop_token_ids.empty() &&
                    t.tokens.back() == t.stop_token_ids[0]);
        break;
      case RequestFinishReason::kCancelled:
        EXPECT_TRUE(t.cancel_requested.load()) << "cancelled without a cancel() call";
        ++cancelled;
        break;
      default:
        ADD_FAILURE() << "finish reason " << request_finish_reason_name(t.reason) << ": "
                      << t.error;
    }
    if (t.oracle >= 0) {
      const std::vector<int32_t>& want = oracle_tokens_[static_cast<size_t>(t.oracle)];
      // Whatever it generated (all of it, or up to its cancellation) is the solitary prefix.
      EXPECT_TRUE(t.tokens.size() <= want.size() &&
                  std::equal(t.tokens.begin(), t.tokens.end(), want.begin()))
          << "greedy tokens differ from the request run alone";
      ++greedy_checked;
    }
  }
  EXPECT_EQ(static_cast<int>(ids.size()), counters.accepted.load());
  EXPECT_GT(greedy_checked, 0);

  // The engine is idle and every block is accounted for.
  EngineStats st = engine.stats();
  const Clock::time_point deadline = Clock::now() + 10s;
  while ((st.num_running != 0 || st.num_waiting != 0 || st.kv.used_blocks != 0) &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
    st = engine.stats();
  }
  EXPECT_EQ(st.total_requests, counters.accepted.load());
  EXPECT_EQ(st.finished_requests, counters.accepted.load());
  EXPECT_EQ(st.cancelled_requests, cancelled);
  EXPECT_EQ(st.num_running, 0);
  EXPECT_EQ(st.num_waiting, 0);
  EXPECT_EQ(st.num_preempted, 0);
  EXPECT_EQ(st.num_swapped, 0);
  EXPECT_EQ(st.swap_used_bytes, 0);
  EXPECT_EQ(st.kv.used_blocks, 0) << "KV blocks leaked";
  EXPECT_EQ(st.kv.used_blocks + st.kv.cached_blocks + st.kv.free_blocks, st.kv.total_blocks);
  EXPECT_GT(st.total_preemptions, 0) << "the KV budget did not force preemption";
  EXPECT_GT(cancelled, 0);
  EXPECT_GT(st.kv.prefix_hit_tokens, 0);

  // The hard limit's count came back down: the limited client can submit again.
  EngineRequest again;
  again.prompt = "Once upon a time";
  again.max_tokens = 2;
  again.client_id = "eve";
  for (int i = 0; i < 3; ++i) {
    EXPECT_NO_THROW(engine.wait(engine.submit(again))) << "eve's outstanding count leaked";
  }
  std::printf(
      "[ stress   ] %d requests: %d refused, %d cancel calls, %d cancelled, %lld "
      "preemptions, %lld steps (%.1f s busy), %lld prompt tokens computed, %lld generated, "
      "%lld prefix-cache hits\n",
      num_requests, counters.refused.load(), counters.cancels_sent.load(), cancelled,
      static_cast<long long>(st.total_preemptions), static_cast<long long>(st.steps),
      st.busy_seconds, static_cast<long long>(st.prompt_tokens_computed),
      static_cast<long long>(st.tokens_generated), static_cast<long long>(st.kv.prefix_hit_tokens));
}

TEST_P(EngineStress, EveryRequestEndsExactlyOnce) {
  const int n = stress_requests();
  const PreemptionMode mode = GetParam();
  // The body runs on its own thread so that a deadlock fails the test after the watchdog
  // period instead of hanging it; the process cannot unwind a deadlocked engine, so it exits.
  std::future<void> body = std::async(std::launch::async, [&] { run(mode, n); });
  if (body.wait_for(kWatchdog) != std::future_status::ready) {
    std::fprintf(stderr,
                 "engine stress watchdog: %d requests did not finish within %lld s (deadlock "
                 "or livelock)\n",
                 n, static_cast<long long>(kWatchdog.count()));
    std::fflush(stderr);
    std::_Exit(1);
  }
  body.get();
}

INSTANTIATE_TEST_SUITE_P(Preemption, EngineStress,
                         ::testing::Values(PreemptionMode::kRecompute, PreemptionMode::kSwap),
                         [](const ::testing::TestParamInfo<PreemptionMode>& p) {
                           return p.param == PreemptionMode::kSwap ? std::string("Swap")
                                                                   : std::string("Recompute");
                         });

}  // namespace
}  // namespace llmos
