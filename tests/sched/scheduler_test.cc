#include "sched/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "sched/fake_kv_slots.h"

namespace llmos {
namespace {

using test::FakeKvSlots;

RequestParams make(int32_t prompt_len, int32_t max_tokens,
                   Priority priority = Priority::kInteractive, std::string client = "") {
  RequestParams p;
  p.client_id = std::move(client);
  p.priority = priority;
  p.prompt.resize(static_cast<size_t>(prompt_len));
  std::iota(p.prompt.begin(), p.prompt.end(), 1);
  p.max_tokens = max_tokens;
  return p;
}

// One engine step: schedule, then "sample" `token` for every request that reached its end.
SchedulerOutput step(Scheduler& s, int32_t token = 7,
                     std::vector<FinishedRequest>* finished = nullptr) {
  SchedulerOutput out = s.schedule();
  std::vector<SampledToken> sampled;
  for (const auto& r : out.scheduled) {
    if (r.samples) sampled.push_back({r.request_id, token});
  }
  auto fin = s.update_from_output(out, sampled);
  if (finished) *finished = fin;
  return out;
}

const ScheduledRequest* entry(const SchedulerOutput& out, uint64_t id) {
  for (const auto& r : out.scheduled) {
    if (r.request_id == id) return &r;
  }
  return nullptr;
}

TEST(Scheduler, DecodesComeBeforePrefillChunksAndBudgetIsKept) {
  FakeKvSlots kv(100, 4);
  SchedulerConfig cfg;
  cfg.max_batched_tokens = 8;
  Scheduler s(cfg, kv);
  const uint64_t a = s.add_request(make(4, 10));
  SchedulerOutput o0 = step(s);
  ASSERT_EQ(o0.scheduled.size(), 1u);
  EXPECT_EQ(o0.scheduled[0].num_new_tokens, 4);
  EXPECT_TRUE(o0.scheduled[0].samples);

  const uint64_t b = s.add_request(make(20, 3));
  // B's 20-token prompt advances by the 7 tokens left after A's decode, step after step.
  const int expected_starts[] = {0, 7, 14};
  const int expected_lens[] = {7, 7, 6};
  for (int i = 0; i < 3; ++i) {
    SchedulerOutput o = step(s);
    ASSERT_EQ(o.scheduled.size(), 2u) << "step " << i;
    EXPECT_EQ(o.scheduled[0].request_id, a);
    EXPECT_TRUE(o.scheduled[0].is_decode);
    EXPECT_EQ(o.scheduled[0].num_new_tokens, 1);
    EXPECT_EQ(o.scheduled[0].start_position, 4 + i);
    EXPECT_EQ(o.scheduled[1].request_id, b);
    EXPECT_FALSE(o.scheduled[1].is_decode);
    EXPECT_EQ(o.scheduled[1].start_position, expected_starts[i]);
    EXPECT_EQ(o.scheduled[1].num_new_tokens, expected_lens[i]);
    EXPECT_EQ(o.scheduled[1].samples, i == 2);
    EXPECT_LE(o.num_batched_tokens, cfg.max_batched_tokens);
  }
  EXPECT_EQ(s.find(b)->num_generated(), 1);
  EXPECT_EQ(kv.tokens_of(b), 20);
}

TEST(Scheduler, LongPromptIsChunkedByTheDefaultBudget) {
  FakeKvSlots kv(1000, 16);
  Scheduler s(SchedulerConfig{}, kv);
  const uint64_t id = s.add_request(make(1300, 2));
  std::vector<int> chunks;
  while (s.has_unfinished()) {
    SchedulerOutput o = step(s);
    ASSERT_EQ(o.scheduled.size(), 1u);
    EXPECT_LE(o.num_batched_tokens, 512);
    chunks.push_back(o.scheduled[0].num_new_tokens);
  }
  EXPECT_EQ(chunks, (std::vector<int>{512, 512, 276, 1}));
  EXPECT_EQ(s.find(id)->finish_reason, RequestFinishReason::kLength);
  EXPECT_EQ(kv.used_blocks(), 0);
}

TEST(Scheduler, MaxSequencesLimitsRunningRequests) {
  FakeKvSlots kv(100, 4);
  SchedulerConfig cfg;
  cfg.max_sequences = 2;
  Scheduler s(cfg, kv);
  const uint64_t a = s.add_request(make(3, 1));
  const uint64_t b = s.add_request(make(3, 5));
  const uint64_t c = s.add_request(make(3, 5));
  SchedulerOutput o = step(s);
  EXPECT_EQ(o.scheduled.size(), 2u);
  EXPECT_NE(entry(o, a), nullptr);
  EXPECT_NE(entry(o, b), nullptr);
  EXPECT_EQ(entry(o, c), nullptr);
  EXPECT_EQ(s.find(c)->state, RequestState::kWaiting);
  // A finished (max_tokens 1), which frees a sequence for C.
  o = step(s);
  EXPECT_EQ(s.num_running(), 2);
  ASSERT_NE(entry(o, c), nullptr);
  EXPECT_EQ(o.finished.size(), 1u);
  EXPECT_EQ(o.finished[0].request_id, a);
}

TEST(Scheduler, PreemptionPicksLowestPriorityAndTheVictimResumes) {
  FakeKvSlots kv(6, 4);  // three 8-token prompts fill it exactly
  Scheduler s(SchedulerConfig{}, kv);
  const uint64_t x = s.add_request(make(8, 3, Priority::kInteractive));
  const uint64_t y = s.add_request(make(8, 3, Priority::kBackground));
  const uint64_t z = s.add_request(make(8, 3, Priority::kInteractive));
  SchedulerOutput o = step(s);
  EXPECT_EQ(o.scheduled.size(), 3u);
  EXPECT_EQ(kv.free_blocks(), 0);
  // Every decode now needs a new block: the background request is the victim.
  o = step(s);
  ASSERT_EQ(o.preempted, (std::vector<uint64_t>{y}));
  EXPECT_EQ(s.find(y)->state, RequestState::kPreempted);
  EXPECT_EQ(s.find(y)->num_computed_tokens, 0);  // recompute: progress reset
  EXPECT_FALSE(kv.on_device(y));
  EXPECT_NE(entry(o, x), nullptr);
  EXPECT_NE(entry(o, z), nullptr);
  // Y comes back later, recomputes its prompt plus its first generated token (9 tokens from
  // position 0), then finishes normally.
  bool recomputed = false;
  std::vector<FinishedRequest> finished, all;
  for (int i = 0; i < 50 && s.has_unfinished(); ++i) {
    o = step(s, 7, &finished);
    all.insert(all.end(), finished.begin(), finished.end());
    const ScheduledRequest* e = entry(o, y);
    if (e != nullptr && e->start_position == 0) {
      EXPECT_EQ(e->num_new_tokens, 9);
      recomputed = true;
    }
  }
  EXPECT_TRUE(recomputed);
  EXPECT_FALSE(s.has_unfinished());
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all.back().request_id, y);  // the victim finishes last
  for (const auto& f : all) EXPECT_EQ(f.reason, RequestFinishReason::kLength);
  EXPECT_EQ(kv.used_blocks(), 0);
}

TEST(Scheduler, PreemptionAmongEqualsPicksTheMostRecentlyAdmitted) {
  FakeKvSlots kv(6, 4);
  Scheduler s(SchedulerConfig{}, kv);
  const uint64_t a = s.add_request(make(8, 4));
  const uint64_t b = s.add_request(make(8, 4));
  const uint64_t c = s.add_request(make(8, 4));
  step(s);  // admitted in arrival order a, b, c; the pool is full
  SchedulerOutput o = step(s);
  ASSERT_EQ(o.preempted, (std::vector<uint64_t>{c}));
  EXPECT_NE(entry(o, a), nullptr);
  EXPECT_NE(entry(o, b), nullptr);
  while (s.has_unfinished()) step(s);
  EXPECT_EQ(kv.used_blocks(), 0);
}

TEST(Scheduler, SwapPreemptionKeepsProgress) {
  FakeKvSlots kv(6, 4, 0, /*host_blocks=*/10);
  SchedulerConfig cfg;
  cfg.preemption = PreemptionMode::kSwap;
  Scheduler s(cfg, kv);
  s.add_request(make(8, 3, Priority::kInteractive));
  const uint64_t y = s.add_request(make(8, 3, Priority::kBackground));
  s.add_request(make(8, 3, Priority::kInteractive));
  step(s, 11);
  SchedulerOutput o = step(s, 12);
  ASSERT_EQ(o.preempted, (std::vector<uint64_t>{y}));
  EXPECT_EQ(o.swapped_out, (std::vector<uint64_t>{y}));
  EXPECT_TRUE(kv.on_host(y));
  EXPECT_EQ(s.find(y)->num_computed_tokens, 8);  // kept
  bool resumed = false;
  while (s.has_unfinished()) {
    o = step(s, 13);
    if (!o.swapped_in.empty()) {
      ASSERT_EQ(o.swapped_in[0], y);
      const ScheduledRequest* e = entry(o, y);
      ASSERT_NE(e, nullptr);
      EXPECT_EQ(e->start_position, 8);  // continues where it stopped: no recompute
      EXPECT_EQ(e->num_new_tokens, 1);
      resumed = true;
    }
  }
  EXPECT_TRUE(resumed);
  EXPECT_EQ(kv.used_blocks(), 0);
  EXPECT_EQ(kv.num_host_seqs(), 0u);
}

// max_sequences 1 and a fresh interactive request every step: only aging lets the background
// request through.
int64_t steps_until_background_runs(int32_t aging_steps, int max_steps) {
  FakeKvSlots kv(1000, 4);
  SchedulerConfig cfg;
  cfg.max_sequences = 1;
  cfg.aging_steps = aging_steps;
  Scheduler s(cfg, kv);
  s.add_request(make(4, 1, Priority::kInteractive));
  const uint64_t bg = s.add_request(make(4, 1, Priority::kBackground));
  for (int i = 0; i < max_steps; ++i) {
    s.add_request(make(4, 1, Priority::kInteractive));
    SchedulerOutput o = step(s);
    if (entry(o, bg) != nullptr) return i;
  }
  return -1;
}

TEST(Scheduler, AgingPreventsStarvation) {
  EXPECT_EQ(steps_until_background_runs(0, 200), -1);  // without aging it starves
  const int64_t at = steps_until_background_runs(5, 200);
  EXPECT_GE(at, 5);
  EXPECT_LE(at, 12);
}

TEST(Scheduler, RunningQuotaMakesExtraRequestsWait) {
  FakeKvSlots kv(100, 4);
  SchedulerConfig cfg;
  cfg.quotas["a"] = ClientQuota{1, 0};
  Scheduler s(cfg, kv);
  const uint64_t a1 = s.add_request(make(4, 2, Priority::kInteractive, "a"));
  const uint64_t a2 = s.add_request(make(4, 2, Priority::kInteractive, "a"));
  const uint64_t b1 = s.add_request(make(4, 2, Priority::kInteractive, "b"));
  SchedulerOutput o = step(s);
  EXPECT_NE(entry(o, a1), nullptr);
  EXPECT_EQ(entry(o, a2), nullptr);
  EXPECT_NE(entry(o, b1), nullptr);  // b is not held back by a's quota
  EXPECT_EQ(s.find(a2)->state, RequestState::kWaiting);
  o = step(s);  // a1 finishes here
  EXPECT_EQ(entry(o, a2), nullptr);
  o = step(s);
  ASSERT_NE(entry(o, a2), nullptr);
  EXPECT_EQ(entry(o, a2)->start_position, 0);
}

TEST(Scheduler, BlockQuotaMakesExtraRequestsWait) {
  FakeKvSlots kv(100, 4);
  SchedulerConfig cfg;
  cfg.default_quota = ClientQuota{0, 3};
  Scheduler s(cfg, kv);
  const uint64_t c1 = s.add_request(make(8, 2));  // 2 blocks
  const uint64_t c2 = s.add_request(make(8, 2));  // 2 more would make 4 > 3
  SchedulerOutput o = step(s);
  EXPECT_NE(entry(o, c1), nullptr);
  EXPECT_EQ(entry(o, c2), nullptr);
  while (s.find(c1) && !s.find(c1)->is_finished()) step(s);
  o = step(s);
  EXPECT_NE(entry(o, c2), nullptr);
}

TEST(Scheduler, CancelWaitingRunningAndPreemptedFreesEverything) {
  FakeKvSlots kv(6, 4, 0, 10);
  SchedulerConfig cfg;
  cfg.preemption = PreemptionMode::kSwap;
  cfg.max_sequences = 3;
  Scheduler s(cfg, kv);
  const uint64_t x = s.add_request(make(8, 9));
  const uint64_t y = s.add_request(make(8, 9, Priority::kBackground));
  const uint64_t z = s.add_request(make(8, 9));
  const uint64_t w = s.add_request(make(8, 9, Priority::kBackground));  // waits: max_sequences
  step(s);
  step(s);
  ASSERT_EQ(s.find(y)->state, RequestState::kPreempted);
  ASSERT_TRUE(kv.on_host(y));
  ASSERT_EQ(s.find(w)->state, RequestState::kWaiting);
  ASSERT_EQ(s.find(x)->state, RequestState::kRunning);

  EXPECT_TRUE(s.cancel(y));
  EXPECT_FALSE(kv.on_host(y));
  EXPECT_TRUE(s.cancel(w));
  EXPECT_TRUE(s.cancel(x));
  EXPECT_FALSE(kv.on_device(x));
  EXPECT_FALSE(s.cancel(x));  // already finished
  EXPECT_FALSE(s.cancel(12345));
  for (uint64_t id : {x, y, w}) {
    EXPECT_EQ(s.find(id)->state, RequestState::kFinished);
    EXPECT_EQ(s.find(id)->finish_reason, RequestFinishReason::kCancelled);
  }
  SchedulerOutput o = s.schedule();
  EXPECT_EQ(o.finished.size(), 3u);
  EXPECT_EQ(s.find(x), nullptr);  // reported once, then gone
  // Cancelled between schedule and update: its sampled token is simply dropped.
  ASSERT_NE(entry(o, z), nullptr);
  EXPECT_TRUE(s.cancel(z));
  EXPECT_TRUE(s.update_from_output(o, {}).empty());
  EXPECT_EQ(kv.used_blocks(), 0);
  EXPECT_FALSE(s.has_unfinished());
}

TEST(Scheduler, StopConditions) {
  FakeKvSlots kv(100, 4);
  SchedulerConfig cfg;
  cfg.eos_token_ids = {2};
  cfg.max_model_len = 12;
  cfg.stop_string_check = [](const Request& r) { return r.tokens.back() == 40; };
  Scheduler s(cfg, kv);
  RequestParams stop = make(4, 10);
  stop.stop_token_ids = {30};
  RequestParams str = make(4, 10);
  str.stop_strings = {"end"};
  const uint64_t e = s.add_request(make(4, 10));
  const uint64_t st = s.add_request(stop);
  const uint64_t ss = s.add_request(str);
  const uint64_t len = s.add_request(make(4, 2));
  const uint64_t ctx = s.add_request(make(10, 100));
  SchedulerOutput o = s.schedule();
  std::vector<SampledToken> toks = {{e, 2}, {st, 30}, {ss, 40}, {len, 40}, {ctx, 5}};
  auto fin = s.update_from_output(o, toks);
  ASSERT_EQ(fin.size(), 3u);
  EXPECT_EQ(s.find(e)->finish_reason, RequestFinishReason::kEos);
  EXPECT_EQ(s.find(st)->finish_reason, RequestFinishReason::kStop);
  EXPECT_EQ(s.find(ss)->finish_reason, RequestFinishReason::kStop);
  EXPECT_EQ(s.find(st)->generated().back(), 30);  // the stop token is kept
  o = step(s);
  EXPECT_EQ(s.find(len)->finish_reason, RequestFinishReason::kLength);
  EXPECT_EQ(s.find(len)->num_generated(), 2);
  EXPECT_EQ(s.find(ctx)->finish_reason, RequestFinishReason::kLength);  // hit max_model_len 12
  EXPECT_EQ(s.find(ctx)->num_tokens(), 12);
}

TEST(Scheduler, MisuseIsReported) {
  FakeKvSlots kv(100, 4);
  Scheduler s(SchedulerConfig{}, kv);
  const uint64_t a = s.add_request(make(4, 3));
  SchedulerOutput o = s.schedule();
  EXPECT_THROW(s.schedule(), Error);                        // update first
  EXPECT_THROW(s.update_from_output(o, {}), Error);         // a's token is missing
  const SampledToken twice[] = {{a, 1}, {a, 1}};
  EXPECT_THROW(s.update_from_output(o, twice), Error);
  const SampledToken stranger[] = {{a, 1}, {999, 1}};
  EXPECT_THROW(s.update_from_output(o, stranger), Error);
  const SampledToken ok[] = {{a, 1}};
  EXPECT_NO_THROW(s.update_from_output(o, ok));
  EXPECT_THROW(s.update_from_output(o, ok), Error);  // not pending any more
  EXPECT_EQ(s.find(a)->num_generated(), 1);
}

TEST(Scheduler, PrefixHitSkipsCachedTokens) {
  FakeKvSlots kv(100, 4);
  kv.prefix_hit_tokens = 8;
  Scheduler s(SchedulerConfig{}, kv);
  s.add_request(make(10, 2));
  SchedulerOutput o = step(s);
  ASSERT_EQ(o.scheduled.size(), 1u);
  EXPECT_EQ(o.scheduled[0].start_position, 8);
  EXPECT_EQ(o.scheduled[0].num_new_tokens, 2);
}

TEST(Scheduler, RequestTooBigForTheCacheFailsInsteadOfWaitingForever) {
  FakeKvSlots kv(2, 4);
  Scheduler s(SchedulerConfig{}, kv);
  const uint64_t big = s.add_request(make(12, 2));
  const uint64_t grows = s.add_request(make(7, 5));
  step(s);
  EXPECT_EQ(s.find(big)->finish_reason, RequestFinishReason::kError);
  EXPECT_FALSE(s.find(big)->error.empty());
  for (int i = 0; i < 10 && s.has_unfinished(); ++i) step(s);
  EXPECT_EQ(s.find(grows)->finish_reason, RequestFinishReason::kError);
  EXPECT_EQ(kv.used_blocks(), 0);
}

}  // namespace
}  // namespace llmos
