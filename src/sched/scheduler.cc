#include "sched/scheduler.h"

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "core/error.h"

namespace llmos {

namespace {

int level_of(const Request& r) { return static_cast<int>(r.params.priority); }

bool contains(const std::vector<uint64_t>& ids, uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

bool contains_token(const std::vector<int32_t>& ids, int32_t token) {
  return std::find(ids.begin(), ids.end(), token) != ids.end();
}

// Past its prompt: what remains is generated tokens, one per step.
bool is_decode(const Request& r) { return r.num_computed_tokens >= r.num_prompt_tokens; }

}  // namespace

void SchedulerConfig::validate() const {
  LLMOS_CHECK_ARG(max_batched_tokens > 0, "scheduler max_batched_tokens: ", max_batched_tokens,
                  " (must be > 0)");
  LLMOS_CHECK_ARG(max_sequences > 0, "scheduler max_sequences: ", max_sequences, " (must be > 0)");
  LLMOS_CHECK_ARG(max_model_len > 1, "scheduler max_model_len: ", max_model_len, " (must be > 1)");
  LLMOS_CHECK_ARG(aging_steps >= 0, "scheduler aging_steps: ", aging_steps, " (must be >= 0)");
  auto check_quota = [](const ClientQuota& q, const std::string& who) {
    LLMOS_CHECK_ARG(q.max_running >= 0 && q.max_kv_blocks >= 0 && q.max_outstanding >= 0,
                    "scheduler quota for ", who,
                    ": negative limit");
  };
  check_quota(default_quota, "the default client");
  for (const auto& [client, q] : quotas) check_quota(q, "client '" + client + "'");
}

Scheduler::Scheduler(const SchedulerConfig& config, KvSlots& kv) : config_(config), kv_(kv) {
  config_.validate();
  LLMOS_CHECK_ARG(kv_.block_size() > 0, "scheduler: KV block_size ", kv_.block_size(),
                  " (must be > 0)");
}

uint64_t Scheduler::add_request(RequestParams params, uint64_t id) {
  params.validate(config_.max_model_len, config_.vocab_size);
  LLMOS_CHECK_ARG(config_.chunked_prefill ||
                      params.prompt.size() <= static_cast<size_t>(config_.max_batched_tokens),
                  "request prompt: ", params.prompt.size(), " tokens exceed max_batched_tokens ",
                  config_.max_batched_tokens, " and chunked prefill is off");
  if (id == 0) {
    while (requests_.contains(next_id_)) ++next_id_;
    id = next_id_++;
  } else {
    LLMOS_CHECK_ARG(!requests_.contains(id), "Scheduler::add_request: id ", id, " is in use");
  }
  auto req = std::make_unique<Request>(id, next_arrival_++, std::move(params));
  req->waiting_since = step_;
  waiting_.push_back(req.get());
  requests_.emplace(id, std::move(req));
  return id;
}

uint64_t Scheduler::add_swapped_request(RequestParams params, int32_t num_host_tokens,
                                        uint64_t id) {
  LLMOS_CHECK_ARG(
      num_host_tokens > 0 && static_cast<size_t>(num_host_tokens) < params.prompt.size(),
      "restored request: ", num_host_tokens, " cached tokens for a prompt of ",
      params.prompt.size(), " (at least one new token must follow them)");
  id = add_request(std::move(params), id);
  Request& r = *requests_.at(id);
  r.swapped_out = true;
  r.num_computed_tokens = num_host_tokens;
  return id;
}

const Request* Scheduler::find(uint64_t id) const {
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : it->second.get();
}

int Scheduler::effective_level(const Request& r) const {
  int level = level_of(r);
  if (config_.aging_steps > 0 && r.is_queued()) {
    const int64_t gained = (step_ - r.waiting_since) / config_.aging_steps;
    level = static_cast<int>(std::max<int64_t>(0, level - gained));
  }
  return level;
}

const ClientQuota& Scheduler::quota_for(const std::string& client) const {
  auto it = config_.quotas.find(client);
  return it == config_.quotas.end() ? config_.default_quota : it->second;
}

int64_t Scheduler::blocks_for_tokens(int64_t tokens) const {
  const int64_t bs = kv_.block_size();
  return (tokens + bs - 1) / bs;
}

bool Scheduler::within_quota(const Request& r) const {
  const ClientQuota& q = quota_for(r.params.client_id);
  int32_t running = 0;
  int64_t blocks = 0;
  for (const Request* x : running_) {
    if (x->params.client_id != r.params.client_id) continue;
    ++running;
    blocks += blocks_for_tokens(x->num_computed_tokens);
  }
  if (q.max_running > 0 && running >= q.max_running) return false;
  // A client with nothing running may always start one request, even one bigger
  // than its block quota: otherwise such a request would wait forever.
  if (q.max_kv_blocks > 0 && running > 0 &&
      blocks + blocks_for_tokens(r.num_tokens()) > q.max_kv_blocks) {
    return false;
  }
  return true;
}

void Scheduler::remove_from(std::vector<Request*>& list, const Request& r) {
  auto it = std::find(list.begin(), list.end(), &r);
  if (it != list.end()) list.erase(it);
}

Request* Scheduler::pick_victim(const std::vector<uint64_t>& scheduled, const Request* self) const {
  Request* victim = nullptr;
  for (Request* x : running_) {
    if (x != self && contains(scheduled, x->id)) continue;
    // Lowest priority (highest level) first, then the most recently admitted.
    if (victim == nullptr || level_of(*x) > level_of(*victim) ||
        (level_of(*x) == level_of(*victim) && x->admitted_seq > victim->admitted_seq)) {
      victim = x;
    }
  }
  return victim;
}

void Scheduler::preempt(Request& r, SchedulerOutput& out) {
  remove_from(running_, r);
  if (config_.preemption == PreemptionMode::kSwap && kv_.swap_out(r.id)) {
    r.swapped_out = true;
    out.swapped_out.push_back(r.id);
  } else {
    // Recompute (or swap impossible): the KV is dropped and the tokens computed
    // again later.
    kv_.free(r.id);
    r.num_computed_tokens = 0;
    r.swapped_out = false;
  }
  r.state = RequestState::kPreempted;
  r.waiting_since = step_;
  ++r.num_preemptions;
  waiting_.push_back(&r);
  out.preempted.push_back(r.id);
}

void Scheduler::finish(Request& r, RequestFinishReason reason) {
  kv_.free_finished(r.id);
  remove_from(running_, r);
  remove_from(waiting_, r);
  r.swapped_out = false;
  r.state = RequestState::kFinished;
  r.finish_reason = reason;
  finished_since_step_.push_back({r.id, reason});
  finished_log_.push_back({r.id, reason});
}

std::vector<FinishedRequest> Scheduler::take_finished_log() {
  std::vector<FinishedRequest> out;
  out.swap(finished_log_);
  return out;
}

bool Scheduler::cancel(uint64_t id) {
  auto it = requests_.find(id);
  if (it == requests_.end() || it->second->is_finished()) return false;
  finish(*it->second, RequestFinishReason::kCancelled);
  return true;
}

bool Scheduler::fail(uint64_t id, std::string message) {
  auto it = requests_.find(id);
  if (it == requests_.end() || it->second->is_finished()) return false;
  it->second->error = std::move(message);
  finish(*it->second, RequestFinishReason::kError);
  return true;
}

void Scheduler::schedule_running(SchedulerOutput& out, int32_t& budget, bool decodes) {
  std::vector<Request*> order = running_;
  std::sort(order.begin(), order.end(), [](const Request* a, const Request* b) {
    if (level_of(*a) != level_of(*b)) return level_of(*a) < level_of(*b);
    return a->admitted_seq < b->admitted_seq;
  });
  std::vector<uint64_t> scheduled;
  for (const auto& s : out.scheduled) scheduled.push_back(s.request_id);

  for (Request* r : order) {
    if (budget <= 0) break;
    if (r->state != RequestState::kRunning || is_decode(*r) != decodes) continue;
    const int32_t start = r->num_computed_tokens;
    const int32_t n = std::min(r->num_tokens() - start, budget);
    if (n <= 0) continue;
    while (true) {
      if (kv_.allocate_slots(r->id, n)) {
        out.scheduled.push_back({r->id, start, n, start + n == r->num_tokens(), decodes});
        scheduled.push_back(r->id);
        r->num_computed_tokens += n;
        budget -= n;
        break;
      }
      Request* victim = pick_victim(scheduled, r);
      if (victim == r && running_.size() == 1) {
        // Alone and still no room: waiting would only repeat this forever.
        r->error = "sequence does not fit in the KV cache even when running alone";
        finish(*r, RequestFinishReason::kError);
        break;
      }
      preempt(*victim, out);
      if (victim == r) break;
    }
  }
}

void Scheduler::admit_waiting(SchedulerOutput& out, int32_t& budget) {
  std::vector<Request*> order = waiting_;
  std::stable_sort(order.begin(), order.end(), [this](const Request* a, const Request* b) {
    const int la = effective_level(*a), lb = effective_level(*b);
    if (la != lb) return la < lb;
    return a->arrival < b->arrival;
  });
  for (Request* r : order) {
    if (budget <= 0 || static_cast<int32_t>(running_.size()) >= config_.max_sequences) break;
    if (!within_quota(*r)) continue;  // over quota: it waits, others may go
    // Unchunked prefill: a fresh prompt goes in one step or waits for a step
    // with room for it (add_request checked it fits max_batched_tokens).
    // Recompute after preemption may chunk.
    if (!config_.chunked_prefill && r->num_preemptions == 0 &&
        r->num_tokens() - r->num_computed_tokens > budget) {
      break;
    }
    const bool swapped = r->swapped_out;
    if (swapped) {
      if (!kv_.swap_in(r->id)) {
        if (running_.empty() && out.scheduled.empty()) {
          r->error = "swapped-out context does not fit in the KV cache even when running alone";
          finish(*r, RequestFinishReason::kError);
          continue;
        }
        break;
      }
      r->swapped_out = false;
      out.swapped_in.push_back(r->id);
    } else {
      if (!kv_.can_admit(r->num_tokens())) {
        if (running_.empty() && out.scheduled.empty()) {
          r->error = "request does not fit in the KV cache even when running alone";
          finish(*r, RequestFinishReason::kError);
          continue;
        }
        break;  // strict order: a request that does not fit holds back those
                // behind it
      }
      if (r->num_computed_tokens == 0) {
        const auto prefix =
            std::span<const int32_t>(r->tokens).first(static_cast<size_t>(r->num_tokens() - 1));
        const int32_t cached = kv_.cached_prefix_tokens(r->id, prefix);
        if (cached < 0 || cached > static_cast<int32_t>(prefix.size())) {
          throw_error(StatusCode::kInternal, "KV manager: cached_prefix_tokens returned ", cached,
                      " for a prefix of ", prefix.size(), " tokens");
        }
        r->num_computed_tokens = cached;
        if (r->num_preemptions == 0) r->num_cached_prompt_tokens = cached;
      }
    }
    const int32_t start = r->num_computed_tokens;
    const int32_t n = std::min(r->num_tokens() - start, budget);
    if (!kv_.allocate_slots(r->id, n)) {
      if (!swapped || !kv_.swap_out(r->id)) {
        kv_.free(r->id);
        r->num_computed_tokens = 0;
        r->swapped_out = false;
      } else {
        r->swapped_out = true;
        out.swapped_in.pop_back();
      }
      break;
    }
    remove_from(waiting_, *r);
    r->state = RequestState::kRunning;
    r->admitted_seq = next_admission_++;
    running_.push_back(r);
    out.scheduled.push_back({r->id, start, n, start + n == r->num_tokens(), is_decode(*r)});
    r->num_computed_tokens += n;
    budget -= n;
  }
}

SchedulerOutput Scheduler::schedule() {
  if (awaiting_update_) {
    throw_error(StatusCode::kInvalidArgument,
                "Scheduler::schedule: called again before update_from_output for step ", step_ - 1);
  }
  SchedulerOutput out;
  out.step = step_;
  out.finished = std::move(finished_since_step_);
  finished_since_step_.clear();
  for (const auto& f : out.finished) requests_.erase(f.request_id);

  int32_t budget = config_.max_batched_tokens;
  schedule_running(out, budget, /*decodes=*/true);
  schedule_running(out, budget, /*decodes=*/false);
  // After a preemption the KV is tight: admitting now would only preempt again.
  if (out.preempted.empty()) admit_waiting(out, budget);

  // Resumed requests (swap-in, or a recompute whose prefix hit covers its
  // prompt) are decodes too: keep every decode ahead of every prefill chunk for
  // the runner.
  std::stable_partition(out.scheduled.begin(), out.scheduled.end(),
                        [](const ScheduledRequest& e) { return e.is_decode; });
  out.num_batched_tokens = config_.max_batched_tokens - budget;
  ++step_;
  awaiting_update_ = true;
  return out;
}

std::vector<FinishedRequest> Scheduler::update_from_output(const SchedulerOutput& out,
                                                           std::span<const SampledToken> sampled) {
  LLMOS_CHECK_ARG(awaiting_update_ && out.step == step_ - 1,
                  "Scheduler::update_from_output: output of step ", out.step,
                  " is not the pending one (next step ", step_, ")");
  // Check everything before changing anything.
  std::unordered_map<uint64_t, int32_t> tokens;
  for (size_t i = 0; i < sampled.size(); ++i) {
    const SampledToken& s = sampled[i];
    LLMOS_CHECK_ARG(s.token >= 0 && (config_.vocab_size <= 0 || s.token < config_.vocab_size),
                    "update_from_output: sampled[", i, "] token ", s.token, " out of range");
    LLMOS_CHECK_ARG(tokens.emplace(s.request_id, s.token).second, "update_from_output: request ",
                    s.request_id, " sampled twice");
  }
  size_t expected = 0;
  for (const auto& s : out.scheduled) {
    if (!s.samples) {
      LLMOS_CHECK_ARG(!tokens.contains(s.request_id), "update_from_output: request ", s.request_id,
                      " got a token but did not reach the end of its tokens");
      continue;
    }
    ++expected;
    const Request* r = find(s.request_id);
    const bool live = r != nullptr && !r->is_finished();
    LLMOS_CHECK_ARG(!live || tokens.contains(s.request_id), "update_from_output: request ",
                    s.request_id, " has no sampled token");
  }
  LLMOS_CHECK_ARG(tokens.size() <= expected, "update_from_output: ", tokens.size(), " tokens for ",
                  expected, " sampling requests");
  for (const auto& [id, tok] : tokens) {
    (void)tok;
    bool found = false;
    for (const auto& s : out.scheduled) found = found || (s.request_id == id && s.samples);
    LLMOS_CHECK_ARG(found, "update_from_output: request ", id, " was not scheduled to sample");
  }
  awaiting_update_ = false;

  std::vector<FinishedRequest> finished;
  for (const auto& s : out.scheduled) {
    if (!s.samples) continue;
    auto it = requests_.find(s.request_id);
    if (it == requests_.end() || it->second->is_finished()) continue;  // cancelled meanwhile
    Request& r = *it->second;
    const int32_t token = tokens.at(r.id);
    r.tokens.push_back(token);
    RequestFinishReason reason = RequestFinishReason::kNone;
    if (!r.params.ignore_eos && contains_token(config_.eos_token_ids, token)) {
      reason = RequestFinishReason::kEos;
    } else if (contains_token(r.params.stop_token_ids, token)) {
      reason = RequestFinishReason::kStop;
    } else if (!r.params.stop_strings.empty() && config_.stop_string_check &&
               config_.stop_string_check(r)) {
      reason = RequestFinishReason::kStop;
    } else if (r.num_generated() >= r.params.max_tokens ||
               r.num_tokens() >= config_.max_model_len) {
      reason = RequestFinishReason::kLength;
    }
    if (reason != RequestFinishReason::kNone) {
      finish(r, reason);
      finished.push_back({r.id, reason});
    }
  }
  return finished;
}

}  // namespace llmos
