// What one scheduler step decides, for the ModelRunner (which builds the Batch
// from it) and the engine. It is a diff: only what changed this step is listed.
#pragma once

#include <cstdint>
#include <vector>

#include "sched/request.h"

namespace llmos {

struct ScheduledRequest {
  uint64_t request_id = 0;
  int32_t start_position = 0;  // first new token's position == num_computed_tokens before
  int32_t num_new_tokens = 0;  // tokens[start_position, start_position + num_new_tokens)
  bool samples = false;        // reaches the end of the known tokens: logits + one new token
  bool is_decode = false;      // a single-token step of a request past its prefill
};

struct FinishedRequest {
  uint64_t request_id = 0;
  RequestFinishReason reason = RequestFinishReason::kNone;
};

struct SchedulerOutput {
  int64_t step = 0;
  // Decodes first, then prefill chunks (of running requests, then of newly
  // admitted ones).
  std::vector<ScheduledRequest> scheduled;
  int32_t num_batched_tokens = 0;         // sum of num_new_tokens, <= max_batched_tokens
  std::vector<uint64_t> preempted;        // moved back to waiting this step
  std::vector<uint64_t> swapped_out;      // subset of preempted whose KV went to the host
  std::vector<uint64_t> swapped_in;       // resumed this step from host KV
  std::vector<FinishedRequest> finished;  // since the previous step (update or cancel)

  int num_samples() const {
    int n = 0;
    for (const auto& s : scheduled) n += s.samples ? 1 : 0;
    return n;
  }
};

// One sampled token for a ScheduledRequest with samples == true.
struct SampledToken {
  uint64_t request_id = 0;
  int32_t token = 0;
};

}  // namespace llmos
