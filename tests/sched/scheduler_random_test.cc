// Many random requests (priorities, clients with quotas, cancels, random stop tokens) through a
// small fake KV pool, checking the scheduler's invariants after every step and that everything
// finishes with all KV released.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "sched/fake_kv_slots.h"
#include "sched/scheduler.h"

namespace llmos {
namespace {

struct Scenario {
  uint32_t seed;
  PreemptionMode mode;
  int32_t prefix_hit;
};

class SchedulerRandom : public ::testing::TestWithParam<Scenario> {};

TEST_P(SchedulerRandom, InvariantsHoldAndEverythingFinishes) {
  const Scenario sc = GetParam();
  std::mt19937 rng(sc.seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

  test::FakeKvSlots kv(40, 4, /*watermark_blocks=*/1, /*host_blocks=*/24);
  kv.prefix_hit_tokens = sc.prefix_hit;
  SchedulerConfig cfg;
  cfg.max_batched_tokens = 32;
  cfg.max_sequences = 8;
  cfg.max_model_len = 128;
  cfg.preemption = sc.mode;
  cfg.aging_steps = 10;
  cfg.eos_token_ids = {2};
  cfg.quotas["c0"] = ClientQuota{2, 0};
  cfg.quotas["c1"] = ClientQuota{0, 12};
  Scheduler s(cfg, kv);

  const int kRequests = 150;
  std::set<uint64_t> submitted, finished;
  int added = 0;
  int64_t steps = 0;
  int preemptions = 0, swaps_in = 0;
  while ((added < kRequests || s.has_unfinished()) && steps < 20000) {
    for (int k = uniform(0, 2); k > 0 && added < kRequests; --k, ++added) {
      RequestParams p;
      p.client_id = "c" + std::to_string(uniform(0, 3));
      p.priority = static_cast<Priority>(uniform(0, kNumPriorities - 1));
      p.prompt.resize(static_cast<size_t>(uniform(1, 60)));
      for (auto& t : p.prompt) t = uniform(3, 99);
      p.max_tokens = uniform(1, 20);
      submitted.insert(s.add_request(std::move(p)));
    }
    if (uniform(0, 99) < 3 && !submitted.empty()) {
      const uint64_t victim = *std::next(submitted.begin(), uniform(0, int(submitted.size()) - 1));
      if (s.cancel(victim)) finished.insert(victim);
    }

    std::map<uint64_t, int32_t> computed_before;
    for (const Request* r : s.running()) computed_before[r->id] = r->num_computed_tokens;
    for (const Request* r : s.waiting()) computed_before[r->id] = r->num_computed_tokens;

    SchedulerOutput out = s.schedule();
    ++steps;
    preemptions += static_cast<int>(out.preempted.size());
    swaps_in += static_cast<int>(out.swapped_in.size());

    // Budget and sequence limits.
    int32_t total = 0;
    std::set<uint64_t> scheduled;
    for (const auto& e : out.scheduled) {
      total += e.num_new_tokens;
      EXPECT_GT(e.num_new_tokens, 0);
      EXPECT_TRUE(scheduled.insert(e.request_id).second) << "scheduled twice";
    }
    ASSERT_EQ(total, out.num_batched_tokens);
    ASSERT_LE(total, cfg.max_batched_tokens);
    ASSERT_LE(s.num_running(), cfg.max_sequences);
    // Decodes first.
    for (size_t i = 1; i < out.scheduled.size(); ++i) {
      if (out.scheduled[i].is_decode) {
        EXPECT_TRUE(out.scheduled[i - 1].is_decode);
      }
    }

    // Running and waiting are disjoint, and states and KV agree with them.
    std::set<uint64_t> running_ids, waiting_ids;
    std::map<std::string, int> running_per_client;
    for (const Request* r : s.running()) {
      running_ids.insert(r->id);
      ++running_per_client[r->params.client_id];
      EXPECT_EQ(r->state, RequestState::kRunning);
      EXPECT_EQ(kv.tokens_of(r->id), r->num_computed_tokens);
      EXPECT_LE(r->num_computed_tokens, r->num_tokens());
    }
    for (const Request* r : s.waiting()) {
      EXPECT_TRUE(waiting_ids.insert(r->id).second);
      EXPECT_FALSE(running_ids.contains(r->id)) << "request both running and waiting";
      EXPECT_TRUE(r->is_queued());
      EXPECT_FALSE(kv.on_device(r->id));
      EXPECT_EQ(kv.on_host(r->id), r->swapped_out);
      if (!r->swapped_out) {
        EXPECT_EQ(r->num_computed_tokens, 0);
      }
    }
    EXPECT_LE(running_per_client["c0"], 2);
    EXPECT_EQ(kv.num_device_seqs(), running_ids.size());
    for (const auto& e : out.scheduled) {
      EXPECT_TRUE(running_ids.contains(e.request_id));
      const Request* r = s.find(e.request_id);
      ASSERT_NE(r, nullptr);
      const bool resumed_swapped = std::count(out.swapped_in.begin(), out.swapped_in.end(),
                                              e.request_id) > 0;
      const int32_t before = computed_before[e.request_id];
      // Starts where it stopped (or at a prefix hit for a fresh start).
      if (before > 0 || resumed_swapped) {
        EXPECT_EQ(e.start_position, before);
      }
      EXPECT_EQ(e.start_position + e.num_new_tokens, r->num_computed_tokens);
      EXPECT_EQ(e.samples, r->num_computed_tokens == r->num_tokens());
    }
    for (uint64_t id : out.preempted) {
      EXPECT_FALSE(scheduled.contains(id)) << "preempted and scheduled in one step";
      EXPECT_TRUE(waiting_ids.contains(id));
    }
    for (const auto& f : out.finished) {
      EXPECT_TRUE(finished.contains(f.request_id)) << "reported but never returned";
      EXPECT_NE(f.reason, RequestFinishReason::kError);
    }

    std::vector<SampledToken> sampled;
    for (const auto& e : out.scheduled) {
      if (e.samples) sampled.push_back({e.request_id, uniform(0, 99) < 4 ? 2 : uniform(3, 99)});
    }
    for (const auto& f : s.update_from_output(out, sampled)) {
      EXPECT_TRUE(finished.insert(f.request_id).second) << "finished twice";
      EXPECT_NE(f.reason, RequestFinishReason::kCancelled);
    }
  }
  EXPECT_FALSE(s.has_unfinished()) << "not done after " << steps << " steps";
  // The pool is small enough that the preemption paths are exercised.
  EXPECT_GT(preemptions, 0);
  if (sc.mode == PreemptionMode::kSwap) {
    EXPECT_GT(swaps_in, 0);
  }
  EXPECT_EQ(finished, submitted);
  EXPECT_EQ(kv.used_blocks(), 0);
  EXPECT_EQ(kv.num_host_seqs(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Seeds, SchedulerRandom,
                         ::testing::Values(Scenario{1, PreemptionMode::kRecompute, 0},
                                           Scenario{2, PreemptionMode::kRecompute, 8},
                                           Scenario{3, PreemptionMode::kSwap, 0},
                                           Scenario{4, PreemptionMode::kSwap, 8},
                                           Scenario{5, PreemptionMode::kRecompute, 0},
                                           Scenario{6, PreemptionMode::kSwap, 4}));

}  // namespace
}  // namespace llmos
