// Iteration-level continuous batching with an OS-style policy. Each schedule()
// call:
//   1. running requests past their prefill get one decode token each (oldest,
//   most urgent
//      first); then running requests still in prefill get a chunk of what
//      budget is left;
//   2. when a running request cannot get KV slots, the lowest-priority, most
//   recently admitted
//      running request not yet scheduled this step is preempted (recompute: KV
//      freed, progress reset; swap: KV to the host, progress kept) and the
//      allocation retried — possibly the request itself, which then waits;
//   3. waiting requests are admitted in order of effective priority (class
//   level minus one per
//      aging_steps steps waited, so nothing starves), then arrival, while
//      sequences, budget and KV (can_admit, the manager's watermark) allow. A
//      request over its client's quota is skipped and waits; one that does not
//      fit the KV stops admission (strict order).
// update_from_output() appends sampled tokens and finishes requests (eos, stop
// ids, stop strings through a hook, max_tokens, context length). cancel() works
// in every live state. Not thread-safe: the engine's step loop owns it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "sched/kv_slots.h"
#include "sched/request.h"
#include "sched/scheduler_output.h"

namespace llmos {

enum class PreemptionMode : uint8_t { kRecompute, kSwap };

struct ClientQuota {
  int32_t max_running = 0;    // running sequences at once; 0 = unlimited
  int64_t max_kv_blocks = 0;  // blocks of its running sequences at admission; 0 = unlimited
  // Hard limit, enforced by the engine at submission: outstanding (queued + running) requests.
  // A request over it is refused with kBusy instead of waiting. 0 = unlimited.
  int32_t max_outstanding = 0;
};

struct SchedulerConfig {
  int32_t max_batched_tokens = 512;
  int32_t max_sequences = 64;
  int32_t max_model_len = 4096;
  int32_t vocab_size = 0;  // > 0: prompt ids are checked against it
  PreemptionMode preemption = PreemptionMode::kRecompute;
  int32_t aging_steps = 64;  // steps waited per priority level gained; 0 = no aging
  // false: a prompt is prefilled in one step or not at all (it waits for a step
  // with room for all of it); a prompt longer than max_batched_tokens is then
  // an error.
  bool chunked_prefill = true;
  std::vector<int32_t> eos_token_ids;  // finish with kEos
  ClientQuota default_quota;           // clients not in `quotas`
  std::map<std::string, ClientQuota> quotas;
  // Called after each appended token of a request that has stop strings (the
  // engine holds the detokenizer); true finishes it with kStop. Unset: stop
  // strings are not checked here.
  std::function<bool(const Request&)> stop_string_check;

  void validate() const;  // kInvalidArgument naming the bad field
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, KvSlots& kv);

  // Validates and queues a request; returns its id: `id` when non-zero (the
  // engine hands out ids itself; it must be unused), else the next free one.
  // Throws kInvalidArgument (see RequestParams::validate).
  uint64_t add_request(RequestParams params, uint64_t id = 0);
  // Queues a request whose first `num_host_tokens` prompt tokens already have
  // their K/V in host memory (a restored context snapshot): it starts as
  // swapped out and is swapped in on admission like a preempted request. The
  // caller must hand the KvSlots the host blocks for the returned id before the
  // next schedule(). 0 < num_host_tokens < prompt size.
  uint64_t add_swapped_request(RequestParams params, int32_t num_host_tokens, uint64_t id = 0);

  // Plans one step. Must alternate with update_from_output().
  SchedulerOutput schedule();

  // Appends the sampled tokens of the last schedule()'s output (one per
  // ScheduledRequest with samples, any order; requests cancelled meanwhile are
  // ignored) and returns the requests that finished. Throws kInvalidArgument on
  // a missing, extra or unknown token.
  std::vector<FinishedRequest> update_from_output(const SchedulerOutput& out,
                                                  std::span<const SampledToken> sampled);

  // Removes a live request in any state and frees its KV at once; false if
  // unknown/finished.
  bool cancel(uint64_t id);
  // Finishes a live request with kError (e.g. the runner failed on it); false
  // if unknown.
  bool fail(uint64_t id, std::string message);

  // Every request that finished (any reason, including cancel() and errors
  // found while scheduling) since the last call. Their Request objects stay
  // readable through find() until the next schedule().
  std::vector<FinishedRequest> take_finished_log();
  bool has_finished_log() const { return !finished_log_.empty(); }

  // A live request, or one finished since the last schedule(); nullptr
  // otherwise.
  const Request* find(uint64_t id) const;

  // The effective priority level used for admission: class level minus aging,
  // floored at 0.
  int effective_level(const Request& r) const;

  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  bool has_unfinished() const { return !running_.empty() || !waiting_.empty(); }
  const std::vector<Request*>& running() const { return running_; }
  const std::vector<Request*>& waiting() const { return waiting_; }
  int64_t step() const { return step_; }
  const SchedulerConfig& config() const { return config_; }

 private:
  const ClientQuota& quota_for(const std::string& client) const;
  bool within_quota(const Request& r) const;
  int64_t blocks_for_tokens(int64_t tokens) const;
  // Picks the preemption victim among running requests not in `scheduled`;
  // nullptr if none.
  Request* pick_victim(const std::vector<uint64_t>& scheduled, const Request* self) const;
  void preempt(Request& r, SchedulerOutput& out);
  void finish(Request& r, RequestFinishReason reason);
  void remove_from(std::vector<Request*>& list, const Request& r);
  void schedule_running(SchedulerOutput& out, int32_t& budget, bool decodes);
  void admit_waiting(SchedulerOutput& out, int32_t& budget);

  SchedulerConfig config_;
  KvSlots& kv_;
  std::unordered_map<uint64_t, std::unique_ptr<Request>> requests_;  // live + just finished
  std::vector<Request*> running_;
  std::vector<Request*> waiting_;
  std::vector<FinishedRequest> finished_since_step_;
  std::vector<FinishedRequest> finished_log_;
  uint64_t next_id_ = 1;
  uint64_t next_arrival_ = 0;
  uint64_t next_admission_ = 0;
  int64_t step_ = 0;
  bool awaiting_update_ = false;
};

}  // namespace llmos
