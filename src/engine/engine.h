// Engine: the multi-client serving core. It owns the KV cache (paged, shared by every
// request), the scheduler and the model runner, and runs the step loop on its own thread:
// apply submissions and cancellations -> schedule -> forward + sample -> stop checks ->
// deliver tokens. Clients talk to it from any thread:
//   submit()      validates (on the caller's thread: bad requests throw at once) and queues;
//   cancel()      ends a request at the next step boundary, freeing all its blocks;
//   next_event()  pull streaming, one event per generated token and a final one;
//   on_event      push streaming, a callback run on the engine thread (one that throws ends
//                 its request with kError; the engine keeps serving);
//   wait()        blocks until the request ends and returns the whole result;
//   generate()    a batch of prompts through the scheduler, results in input order.
// A request's events stay queued until pulled; wait() or the final event releases them (for
// every thread: another waiter then gets kNotFound). Requests with a callback are released by
// the engine after their final callback.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/engine_config.h"
#include "kv/context_snapshot.h"
#include "kv/kv_cache_manager.h"
#include "model/llama_model.h"
#include "sample/sampler.h"
#include "sched/request.h"
#include "sched/scheduler_output.h"

namespace llmos {

struct TokenEvent {
  uint64_t request_id = 0;
  bool finished = false;  // the last event of the request (carries no token)
  int32_t token = -1;     // the generated token (when !finished)
  std::string text;       // its text; may be empty while a UTF-8 character is incomplete
  RequestFinishReason finish_reason = RequestFinishReason::kNone;  // when finished
  std::string error;                                               // when finish_reason == kError
  // On the final event: the request's summary, as in its RequestResult.
  int32_t num_generated = 0;
  int32_t num_preemptions = 0;
  int32_t num_cached_prompt_tokens = 0;  // served by the prefix cache
  double time_to_first_token = 0.0;      // seconds from submit (0 when no token came)
  double total_time = 0.0;               // seconds from submit to the end
};

struct EngineRequest {
  std::string prompt;                  // tokenized with the vocabulary's BOS rule, unless
  std::vector<int32_t> prompt_tokens;  // non-empty: used as the prompt as is
  int32_t max_tokens = 128;
  SamplingParams sampling;
  std::vector<int32_t> stop_token_ids;
  std::vector<std::string> stop_strings;  // generation ends before the stop string; the
                                          // returned text excludes it
  bool ignore_eos = false;
  Priority priority = Priority::kInteractive;
  std::string client_id;
  // Keep the request's context when it ends; take_snapshot() hands it over.
  bool keep_context = false;
  // Continue a saved context: the prompt is appended to the snapshot's history
  // and only the new tokens are computed.
  std::shared_ptr<const ContextSnapshot> resume;
  std::function<void(const TokenEvent&)> on_event;  // push streaming (engine thread)
};

struct RequestResult {
  uint64_t id = 0;
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> tokens;  // generated
  std::string text;             // generated text (without a matched stop string)
  RequestFinishReason finish_reason = RequestFinishReason::kNone;
  std::string error;
  double time_to_first_token = 0.0;  // seconds from submit
  double total_time = 0.0;
  int32_t num_preemptions = 0;
  int32_t num_cached_prompt_tokens = 0;  // served by the prefix cache
};

struct EngineStats {
  int64_t num_waiting = 0;  // queued, never run
  int64_t num_running = 0;
  int64_t num_preempted = 0;  // queued again after preemption
  int64_t num_swapped = 0;    // of those, with K/V in host memory
  int64_t total_preemptions = 0;
  int64_t total_requests = 0;
  int64_t finished_requests = 0;
  int64_t cancelled_requests = 0;
  int64_t steps = 0;
  int64_t prompt_tokens_computed = 0;
  int64_t tokens_generated = 0;
  double decode_tokens_per_second = 0.0;  // over the last few seconds of steps
  double busy_seconds = 0.0;              // time spent in steps
  KvCacheStats kv;
  int64_t kv_block_bytes = 0;
  int64_t swap_used_bytes = 0;
};

class Engine {
 public:
  Engine(std::shared_ptr<LlamaModel> model, EngineConfig config = {});
  ~Engine();  // cancels whatever is still running and joins the step thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Throws kInvalidArgument naming the problem (empty prompt, too long for the
  // context, max_tokens <= 0, bad sampling, snapshot of another model or
  // layout, ...).
  uint64_t submit(EngineRequest request);
  // false when the id is unknown or the request already ended.
  bool cancel(uint64_t id);
  // The next event of `id`, or nullopt after `timeout`. kNotFound for an id
  // that is unknown, already released, or streamed through a callback.
  std::optional<TokenEvent> next_event(uint64_t id, std::chrono::milliseconds timeout);
  // Blocks until `id` ends; returns its result and releases it. kNotFound as
  // above.
  RequestResult wait(uint64_t id);
  // wait() for at most `timeout`: nullopt if the request has not ended by then
  // (it keeps running and stays waitable), so a caller can look for
  // interruptions between tries.
  std::optional<RequestResult> wait_for(uint64_t id, std::chrono::milliseconds timeout);
  // Submits every prompt with the same settings, waits for all; results in
  // input order.
  std::vector<RequestResult> generate(const std::vector<std::string>& prompts,
                                      const EngineRequest& settings = {});
  // The context kept by a request submitted with keep_context, once it has
  // ended (its history is prompt + generated tokens; K/V for all but the last).
  // kNotFound otherwise.
  std::shared_ptr<ContextSnapshot> take_snapshot(uint64_t id);

  EngineStats stats() const;
  const LlamaModel& model() const { return *model_; }
  const EngineConfig& config() const { return config_; }
  // Identifies the model a snapshot belongs to (geometry and weights layout).
  uint64_t model_fingerprint() const { return fingerprint_; }

 private:
  struct Channel;
  struct Pending;
  void loop();
  void apply_inbox();                           // engine thread, lock held
  void run_step();                              // engine thread, lock not held
  std::vector<FinishedRequest> take_endings();  // engine thread
  void deliver(uint64_t id, TokenEvent ev);     // engine thread
  using Clock = std::chrono::steady_clock;
  void finish_requests(const std::vector<FinishedRequest>& ended,
                       Clock::time_point now);  // engine thread, lock not held
  void update_stats(Clock::time_point t0, Clock::time_point t1, int64_t num_sampled,
                    int64_t prompt_tokens, int64_t preemptions,
                    const std::vector<FinishedRequest>& ended);  // engine thread
  std::shared_ptr<Channel> channel(uint64_t id) const;           // lock held
  void release_channel(uint64_t id, Channel& ch);                // lock held
  bool stop_string_hit(const Request& r);
  void release_client(const std::string& client);  // lock held

  std::shared_ptr<LlamaModel> model_;
  EngineConfig config_;
  uint64_t fingerprint_ = 0;

  // Step-thread state (touched only by the step thread after construction).
  struct Core;
  std::unique_ptr<Core> core_;

  // Shared state, guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Pending> inbox_;
  std::vector<uint64_t> cancels_;
  std::unordered_map<uint64_t, std::shared_ptr<Channel>> channels_;
  std::unordered_map<uint64_t, std::shared_ptr<ContextSnapshot>> snapshots_;
  std::unordered_map<std::string, int32_t> outstanding_;  // per client: queued + running
  EngineStats stats_;
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace llmos
