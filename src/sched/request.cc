#include "sched/request.h"

#include <utility>

#include "core/error.h"

namespace llmos {

const char* priority_name(Priority p) {
  switch (p) {
    case Priority::kRealtime: return "realtime";
    case Priority::kInteractive: return "interactive";
    case Priority::kBackground: return "background";
  }
  return "unknown";
}

Priority parse_priority(std::string_view name) {
  for (int i = 0; i < kNumPriorities; ++i) {
    const auto p = static_cast<Priority>(i);
    if (name == priority_name(p)) return p;
  }
  throw_error(StatusCode::kInvalidArgument, "priority: unknown class '", std::string(name),
              "' (expected realtime, interactive or background)");
}

const char* request_state_name(RequestState s) {
  switch (s) {
    case RequestState::kWaiting: return "waiting";
    case RequestState::kRunning: return "running";
    case RequestState::kPreempted: return "preempted";
    case RequestState::kFinished: return "finished";
  }
  return "unknown";
}

const char* request_finish_reason_name(RequestFinishReason r) {
  switch (r) {
    case RequestFinishReason::kNone: return "none";
    case RequestFinishReason::kLength: return "length";
    case RequestFinishReason::kEos: return "eos";
    case RequestFinishReason::kStop: return "stop";
    case RequestFinishReason::kCancelled: return "cancelled";
    case RequestFinishReason::kError: return "error";
  }
  return "unknown";
}

void RequestParams::validate(int32_t max_model_len, int32_t vocab_size) const {
  LLMOS_CHECK_ARG(static_cast<int>(priority) < kNumPriorities, "request priority: unknown class ",
                  static_cast<int>(priority));
  LLMOS_CHECK_ARG(!prompt.empty(), "request prompt: empty (at least one token is needed)");
  LLMOS_CHECK_ARG(max_tokens > 0, "request max_tokens: ", max_tokens, " (must be > 0)");
  LLMOS_CHECK_ARG(max_model_len > 1, "max_model_len: ", max_model_len, " (must be > 1)");
  // One slot must stay free for the first generated token.
  LLMOS_CHECK_ARG(prompt.size() < static_cast<size_t>(max_model_len),
                  "request prompt: ", prompt.size(),
                  " tokens leave no room to generate in a context of ", max_model_len, " tokens");
  for (size_t i = 0; i < prompt.size(); ++i) {
    LLMOS_CHECK_ARG(prompt[i] >= 0 && (vocab_size <= 0 || prompt[i] < vocab_size),
                    "request prompt[", i, "]: token id ", prompt[i], " outside [0, ", vocab_size,
                    ")");
  }
  for (size_t i = 0; i < stop_token_ids.size(); ++i) {
    LLMOS_CHECK_ARG(stop_token_ids[i] >= 0, "request stop_token_ids[", i, "]: negative id ",
                    stop_token_ids[i]);
  }
  for (size_t i = 0; i < stop_strings.size(); ++i) {
    LLMOS_CHECK_ARG(!stop_strings[i].empty(), "request stop_strings[", i, "]: empty string");
  }
  sampling.validate();
}

Request::Request(uint64_t request_id, uint64_t arrival_order, RequestParams p)
    : id(request_id), arrival(arrival_order), params(std::move(p)) {
  tokens = params.prompt;
  num_prompt_tokens = static_cast<int32_t>(tokens.size());
}

}  // namespace llmos
