// A generation request as the scheduler sees it: what the client asked for
// (RequestParams, validated once on submission) plus the progress the scheduler
// tracks. There are no separate prefill and decode phases: num_computed_tokens
// catches up with tokens.size() under the step's token budget, which covers
// chunked prefill, prefix-cache hits and recompute after preemption.
//
// States: kWaiting -> kRunning -> (kPreempted -> kRunning)* -> kFinished. A
// preempted request sits in the waiting queue again (kPreempted only records
// why it is there, and whether its KV was swapped out); any live state can go
// straight to kFinished through cancel().
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sample/sampler.h"

namespace llmos {

// Lower value = more urgent. Aging lowers a waiting request's effective level
// over time.
enum class Priority : uint8_t { kRealtime = 0, kInteractive = 1, kBackground = 2 };
inline constexpr int kNumPriorities = 3;

const char* priority_name(Priority p);
// Parses "realtime" | "interactive" | "background"; throws kInvalidArgument
// otherwise.
Priority parse_priority(std::string_view name);

enum class RequestState : uint8_t { kWaiting, kRunning, kPreempted, kFinished };
const char* request_state_name(RequestState s);

enum class RequestFinishReason : uint8_t { kNone, kLength, kEos, kStop, kCancelled, kError };
const char* request_finish_reason_name(RequestFinishReason r);

struct RequestParams {
  std::string client_id;  // quota key; "" is a client like any other
  Priority priority = Priority::kInteractive;
  std::vector<int32_t> prompt;
  int32_t max_tokens = 256;               // generated tokens, > 0
  std::vector<int32_t> stop_token_ids;    // finish with kStop (the token is kept)
  std::vector<std::string> stop_strings;  // need text: see SchedulerConfig::stop_string_check
  bool ignore_eos = false;                // end-of-generation tokens do not finish it
  SamplingParams sampling;                // sampling.seed is the request's seed

  // Throws kInvalidArgument naming the problem: empty prompt, max_tokens <= 0,
  // prompt that leaves no room for one generated token in a context of
  // max_model_len, priority outside the enum, token ids negative or >=
  // vocab_size (vocab_size <= 0: not checked), bad sampling.
  void validate(int32_t max_model_len, int32_t vocab_size) const;
};

// Owned by the Scheduler; everything outside it reads, never writes.
struct Request {
  uint64_t id = 0;
  uint64_t arrival = 0;  // submission order, the tie-break everywhere
  RequestParams params;

  std::vector<int32_t> tokens;  // prompt followed by generated tokens
  int32_t num_prompt_tokens = 0;
  int32_t num_computed_tokens = 0;  // tokens whose KV is in the cache (or scheduled into it)
  int32_t num_cached_prompt_tokens = 0;  // prompt tokens served by the prefix cache at admission

  RequestState state = RequestState::kWaiting;
  RequestFinishReason finish_reason = RequestFinishReason::kNone;
  std::string error;  // set with RequestFinishReason::kError

  bool swapped_out = false;   // preempted in swap mode with its KV on the host
  uint64_t admitted_seq = 0;  // admission order while running: the preemption tie-break
  int64_t waiting_since = 0;  // step at which it (re-)entered the waiting queue
  int32_t num_preemptions = 0;

  Request(uint64_t request_id, uint64_t arrival_order, RequestParams p);

  int32_t num_tokens() const { return static_cast<int32_t>(tokens.size()); }
  int32_t num_generated() const { return num_tokens() - num_prompt_tokens; }
  std::span<const int32_t> generated() const {
    return std::span<const int32_t>(tokens).subspan(static_cast<size_t>(num_prompt_tokens));
  }
  bool is_finished() const { return state == RequestState::kFinished; }
  // Waiting or preempted: in the waiting queue.
  bool is_queued() const {
    return state == RequestState::kWaiting || state == RequestState::kPreempted;
  }
};

}  // namespace llmos
