#include "engine/engine.h"

#include <algorithm>
#include <cstring>
#include <span>
#include <utility>

#include "core/allocator.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/logging.h"
#include "engine/model_runner.h"
#include "engine/paged_kv_slots.h"
#include "engine/text_stream.h"
#include "sched/scheduler.h"

namespace llmos {
namespace {

double seconds_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

template <typename T>
uint64_t mix(uint64_t h, const T& v) {
  return fnv1a(h, &v, sizeof v);
}

// Identifies a model for snapshots: geometry, tensor table and a sample of
// every tensor's bytes (so a re-quantized file of the same shape does not
// match).
uint64_t compute_fingerprint(const LlamaModel& model) {
  uint64_t h = kFnv1aOffset;
  const ModelConfig& c = model.config();
  h = fnv1a(h, c.architecture.data(), c.architecture.size());
  for (int64_t v : {c.vocab_size, c.dim, c.num_layers, c.ffn_dim, c.num_heads, c.num_kv_heads,
                    c.head_dim, c.rope_dim}) {
    h = mix(h, v);
  }
  h = mix(h, c.rope_freq_base);
  h = mix(h, c.rope_scaling);
  h = mix(h, c.rope_scale_factor);
  h = mix(h, c.norm_eps);
  for (const gguf::TensorInfo& t : model.file().tensors()) {
    h = fnv1a(h, t.name.data(), t.name.size());
    h = mix(h, t.dtype);
    h = mix(h, t.nbytes);
    // 256 bytes at the start, middle and end of every tensor.
    const uint8_t* data = model.file().tensor_data(t);
    const size_t n = static_cast<size_t>(t.nbytes);
    const size_t take = std::min<size_t>(n, 256);
    for (size_t at : {size_t{0}, (n - take) / 2, n - take}) h = fnv1a(h, data + at, take);
  }
  return h;
}

}  // namespace

// Client-visible state of one request; guarded by Engine::mu_.
struct Engine::Channel {
  std::string client_id;
  std::deque<TokenEvent> events;
  std::condition_variable cv;
  std::function<void(const TokenEvent&)> callback;
  bool ended = false;
  bool released = false;  // handed to a client (wait / final event): gone for everyone else
  RequestResult result;
};

// A validated request on its way to the step thread.
struct Engine::Pending {
  uint64_t id = 0;
  RequestParams params;
  std::shared_ptr<const ContextSnapshot> resume;
  bool keep_context = false;
  std::chrono::steady_clock::time_point submitted;
};

// Everything the step thread owns.
struct Engine::Core {
  struct Live {
    std::shared_ptr<Channel> channel;
    Clock::time_point submitted;
    bool got_first_token = false;
    double ttft = 0.0;
    bool keep_context = false;
    int32_t cached_prompt_tokens = 0;
    std::string error;  // set when the request never reached the scheduler
    TextStream text;
  };
  std::unique_ptr<KvCache> cache;
  std::unique_ptr<KvCacheManager> manager;
  std::unique_ptr<PagedKvSlots> slots;
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<ModelRunner> runner;
  std::unordered_map<uint64_t, Live> live;
  std::vector<FinishedRequest> rejected;                     // ended before reaching the scheduler
  std::deque<std::pair<Clock::time_point, int64_t>> recent;  // (step end, tokens generated)
};

using Clock = std::chrono::steady_clock;

Engine::Engine(std::shared_ptr<LlamaModel> model, EngineConfig config)
    : model_(std::move(model)), config_(std::move(config)), core_(std::make_unique<Core>()) {
  LLMOS_CHECK_ARG(model_ != nullptr, "Engine: model is null");
  config_.validate();
  const ModelConfig& mc = model_->config();
  const int32_t max_len = config_.max_model_len > 0
                              ? config_.max_model_len
                              : static_cast<int32_t>(std::min<int64_t>(mc.context_length, 1 << 30));
  LLMOS_CHECK_ARG(max_len <= mc.context_length, "engine max_model_len: ", max_len,
                  " exceeds the model's context length ", mc.context_length);
  config_.max_model_len = max_len;

  // KV budget in blocks (+1: block 0 is the reserved null block).
  KvCacheSpec spec = model_->kv_cache_spec(1, config_.block_size, config_.kv_dtype);
  const int64_t block_bytes = spec.block_bytes();
  int64_t blocks = config_.kv_cache_blocks;
  if (blocks == 0 && config_.kv_cache_bytes > 0) {
    blocks = config_.kv_cache_bytes / block_bytes;
    LLMOS_CHECK_ARG(blocks >= 1, "engine kv_cache_bytes: ", config_.kv_cache_bytes,
                    " is less than one KV block of ", block_bytes, " bytes");
  }
  if (blocks == 0) {
    const int64_t per_seq = (max_len + config_.block_size - 1) / config_.block_size;
    const int64_t cap = static_cast<int64_t>(host_physical_memory() / 4) / block_bytes;
    blocks = std::max<int64_t>(2, std::min<int64_t>(per_seq * config_.max_sequences, cap));
  }
  LLMOS_CHECK_ARG(blocks >= 1, "engine KV budget: ", config_.kv_cache_bytes,
                  " bytes is less than one block of ", block_bytes, " bytes");
  spec.num_blocks = blocks + 1;

  Core& c = *core_;
  c.cache = std::make_unique<KvCache>(spec, model_->backend());
  c.manager = std::make_unique<KvCacheManager>(KvCacheManagerOptions{
      spec.num_blocks, config_.block_size, config_.enable_prefix_caching, config_.watermark});
  c.slots = std::make_unique<PagedKvSlots>(*c.manager, *c.cache, config_.swap_space_bytes);

  SchedulerConfig sc;
  sc.max_batched_tokens = config_.max_batched_tokens;
  sc.max_sequences = config_.max_sequences;
  sc.max_model_len = max_len;
  sc.vocab_size = static_cast<int32_t>(mc.vocab_size);
  sc.preemption = config_.preemption;
  sc.aging_steps = config_.aging_steps;
  sc.chunked_prefill = config_.chunked_prefill;
  sc.default_quota = config_.default_quota;
  sc.quotas = config_.quotas;
  for (int32_t t = 0; t < sc.vocab_size; ++t) {
    if (model_->tokenizer().is_eog(t)) sc.eos_token_ids.push_back(t);
  }
  sc.stop_string_check = [this](const Request& r) { return stop_string_hit(r); };
  c.scheduler = std::make_unique<Scheduler>(sc, *c.slots);
  c.runner = std::make_unique<ModelRunner>(*model_, *c.cache, *c.manager, *c.slots);
  fingerprint_ = compute_fingerprint(*model_);
  stats_.kv = c.manager->stats();
  stats_.kv_block_bytes = block_bytes;

  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t Engine::submit(EngineRequest request) {
  const Tokenizer& tok = model_->tokenizer();
  Pending p;
  p.params.client_id = std::move(request.client_id);
  p.params.priority = request.priority;
  p.params.max_tokens = request.max_tokens;
  p.params.stop_token_ids = std::move(request.stop_token_ids);
  p.params.stop_strings = std::move(request.stop_strings);
  p.params.sampling = request.sampling;
  p.params.ignore_eos = request.ignore_eos;
  p.keep_context = request.keep_context;
  p.submitted = Clock::now();

  std::vector<int32_t> fresh = request.prompt_tokens;
  if (request.resume) {
    const ContextSnapshot& s = *request.resume;
    s.validate();
    const KvCacheSpec& mine = core_->cache->spec();
    LLMOS_CHECK_ARG(s.model_fingerprint == fingerprint_,
                    "resume: the snapshot was taken with a different model");
    LLMOS_CHECK_ARG(s.layout.num_layers == mine.num_layers &&
                        s.layout.num_kv_heads == mine.num_kv_heads &&
                        s.layout.head_dim == mine.head_dim &&
                        s.layout.block_size == mine.block_size && s.layout.dtype == mine.dtype,
                    "resume: snapshot KV layout (block_size ", s.layout.block_size, ", ",
                    dtype_name(s.layout.dtype), ") differs from the engine's (block_size ",
                    mine.block_size, ", ", dtype_name(mine.dtype), ")");
    if (fresh.empty() && !request.prompt.empty())
      fresh = tok.encode(request.prompt, /*add_special=*/false);
    p.params.prompt = s.tokens;
    p.params.prompt.insert(p.params.prompt.end(), fresh.begin(), fresh.end());
    p.resume = request.resume;
  } else {
    if (fresh.empty()) fresh = tok.encode(request.prompt, /*add_special=*/true);
    LLMOS_CHECK_ARG(!fresh.empty(), "request prompt: empty, and the vocabulary adds no BOS token");
    p.params.prompt = std::move(fresh);
  }
  // The same checks the scheduler makes, here on the caller's thread so errors
  // reach it.
  p.params.validate(config_.max_model_len, static_cast<int32_t>(model_->config().vocab_size));
  LLMOS_CHECK_ARG(config_.chunked_prefill ||
                      p.params.prompt.size() <= static_cast<size_t>(config_.max_batched_tokens),
                  "request prompt: ", p.params.prompt.size(), " tokens exceed max_batched_tokens ",
                  config_.max_batched_tokens, " and chunked prefill is off");

  const bool listed = config_.quotas.contains(p.params.client_id);
  LLMOS_CHECK_ARG(listed || !config_.reject_unknown_clients, "request client_id: '",
                  p.params.client_id, "' is not a configured client");
  const ClientQuota& quota = listed ? config_.quotas.at(p.params.client_id) : config_.default_quota;

  auto ch = std::make_shared<Channel>();
  ch->client_id = p.params.client_id;
  ch->callback = std::move(request.on_event);
  ch->result.prompt_tokens = p.params.prompt;
  uint64_t id;
  {
    std::lock_guard<std::mutex> lk(mu_);
    LLMOS_CHECK_ARG(!stopping_, "submit: the engine is shutting down");
    int32_t& outstanding = outstanding_[ch->client_id];
    if (quota.max_outstanding > 0 && outstanding >= quota.max_outstanding) {
      throw_error(StatusCode::kBusy, "request client_id: '", ch->client_id, "' already has ",
                  outstanding, " requests outstanding (its limit is ", quota.max_outstanding, ")");
    }
    ++outstanding;
    id = next_id_++;
    p.id = id;
    ch->result.id = id;
    channels_.emplace(id, ch);
    inbox_.push_back(std::move(p));
    ++stats_.total_requests;
  }
  wake_.notify_all();
  return id;
}

bool Engine::cancel(uint64_t id) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = channels_.find(id);
    if (it == channels_.end() || it->second->ended) return false;
    cancels_.push_back(id);
  }
  wake_.notify_all();
  return true;
}

std::shared_ptr<Engine::Channel> Engine::channel(uint64_t id) const {
  auto it = channels_.find(id);
  if (it == channels_.end() || it->second->callback) {
    throw_error(StatusCode::kNotFound, "request ", id,
                it == channels_.end() ? " is unknown or already released"
                                      : " streams through its callback");
  }
  return it->second;
}

void Engine::release_channel(uint64_t id, Channel& ch) {
  ch.released = true;
  channels_.erase(id);
  ch.cv.notify_all();  // other threads waiting on it learn it is gone
}

std::optional<TokenEvent> Engine::next_event(uint64_t id, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  std::shared_ptr<Channel> ch = channel(id);
  if (!ch->cv.wait_for(lk, timeout, [&] { return !ch->events.empty() || ch->released; })) {
    return std::nullopt;
  }
  if (ch->events.empty()) {
    throw_error(StatusCode::kNotFound, "request ", id, " was released by another thread");
  }
  TokenEvent ev = std::move(ch->events.front());
  ch->events.pop_front();
  if (ev.finished) release_channel(id, *ch);
  return ev;
}

RequestResult Engine::wait(uint64_t id) {
  std::unique_lock<std::mutex> lk(mu_);
  std::shared_ptr<Channel> ch = channel(id);
  ch->cv.wait(lk, [&] { return ch->ended || ch->released; });
  if (ch->released) {
    throw_error(StatusCode::kNotFound, "request ", id, " was released by another thread");
  }
  release_channel(id, *ch);
  return std::move(ch->result);
}

std::optional<RequestResult> Engine::wait_for(uint64_t id, std::chrono::milliseconds timeout) {
  LLMOS_CHECK_ARG(timeout.count() >= 0, "wait_for: timeout must be >= 0 ms, got ", timeout.count());
  std::unique_lock<std::mutex> lk(mu_);
  std::shared_ptr<Channel> ch = channel(id);
  if (!ch->cv.wait_for(lk, timeout, [&] { return ch->ended || ch->released; })) {
    return std::nullopt;
  }
  if (ch->released) {
    throw_error(StatusCode::kNotFound, "request ", id, " was released by another thread");
  }
  release_channel(id, *ch);
  return std::move(ch->result);
}

std::vector<RequestResult> Engine::generate(const std::vector<std::string>& prompts,
                                            const EngineRequest& settings) {
  std::vector<uint64_t> ids;
  ids.reserve(prompts.size());
  try {
    for (const std::string& prompt : prompts) {
      EngineRequest r = settings;
      r.prompt = prompt;
      r.prompt_tokens.clear();
      r.on_event = nullptr;
      ids.push_back(submit(std::move(r)));
    }
  } catch (...) {
    for (uint64_t id : ids) {
      cancel(id);
      wait(id);
    }
    throw;
  }
  std::vector<RequestResult> results;
  results.reserve(ids.size());
  for (uint64_t id : ids) results.push_back(wait(id));
  return results;
}

std::shared_ptr<ContextSnapshot> Engine::take_snapshot(uint64_t id) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = snapshots_.find(id);
  if (it == snapshots_.end()) {
    throw_error(StatusCode::kNotFound, "take_snapshot: request ", id,
                " has no kept context (not submitted with keep_context, not "
                "ended yet, or already taken)");
  }
  auto snap = std::move(it->second);
  snapshots_.erase(it);
  return snap;
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

void Engine::release_client(const std::string& client) {
  auto it = outstanding_.find(client);
  if (it != outstanding_.end() && --it->second <= 0) outstanding_.erase(it);
}

bool Engine::stop_string_hit(const Request& r) {
  auto it = core_->live.find(r.id);
  if (it == core_->live.end()) return false;
  TextStream& ts = it->second.text;
  ts.update(model_->tokenizer(), r.generated());
  return ts.find_stop(r.params.stop_strings);
}

void Engine::loop() {
  for (;;) {
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lk(mu_);
      wake_.wait(lk, [&] {
        return stopping_ || !inbox_.empty() || !cancels_.empty() ||
               core_->scheduler->has_unfinished() || core_->scheduler->has_finished_log() ||
               !core_->rejected.empty();
      });
      stopping = stopping_;
      if (stopping) {
        for (auto& p : inbox_) cancels_.push_back(p.id);
        for (const Request* r : core_->scheduler->running()) cancels_.push_back(r->id);
        for (const Request* r : core_->scheduler->waiting()) cancels_.push_back(r->id);
      }
      apply_inbox();
    }
    run_step();  // when stopping, this only delivers the cancellations
    if (stopping) return;
  }
}

void Engine::apply_inbox() {
  Core& c = *core_;
  while (!inbox_.empty()) {
    Pending p = std::move(inbox_.front());
    inbox_.pop_front();
    Core::Live live;
    live.channel = channels_.at(p.id);
    live.submitted = p.submitted;
    live.keep_context = p.keep_context;
    try {
      // At least the last token is computed again to get logits: a snapshot whose K/V covers
      // its whole history (and no new tokens follow) restores one token less.
      const int64_t restore =
          p.resume ? std::min<int64_t>(p.resume->kv.num_tokens,
                                       static_cast<int64_t>(p.params.prompt.size()) - 1)
                   : 0;
      if (restore > 0) {
        const int64_t bs = c.cache->spec().block_size;
        HostKv kv;  // a copy: the client keeps its snapshot
        kv.num_tokens = restore;
        kv.block_bytes = p.resume->kv.block_bytes;
        const auto bytes = static_cast<size_t>((restore + bs - 1) / bs * kv.block_bytes);
        kv.data.assign(p.resume->kv.data.begin(), p.resume->kv.data.begin() + bytes);
        c.scheduler->add_swapped_request(std::move(p.params), static_cast<int32_t>(restore), p.id);
        c.slots->install_host_kv(p.id, std::move(kv));
        live.cached_prompt_tokens = static_cast<int32_t>(restore);
      } else {
        c.scheduler->add_request(std::move(p.params), p.id);
      }
      if (p.keep_context) c.slots->keep_on_finish(p.id);
      c.live.emplace(p.id, std::move(live));
    } catch (const std::exception& e) {
      // Validated at submit; only resource failures land here. Never dropped silently: a
      // request the scheduler took is failed through it, one it refused ends here.
      live.error = e.what();
      c.live.emplace(p.id, std::move(live));
      if (!c.scheduler->fail(p.id, e.what())) {
        c.rejected.push_back({p.id, RequestFinishReason::kError});
      }
    }
  }
  for (uint64_t id : cancels_) c.scheduler->cancel(id);
  cancels_.clear();
}

void Engine::deliver(uint64_t id, TokenEvent ev) {
  auto it = core_->live.find(id);
  if (it == core_->live.end()) return;
  const std::shared_ptr<Channel>& ch = it->second.channel;
  if (ch->callback) {
    try {
      ch->callback(ev);
    } catch (const std::exception& e) {
      // A client bug must not take the engine down: that request ends with the reason.
      core_->scheduler->fail(id, std::string("on_event callback threw: ") + e.what());
    } catch (...) {
      core_->scheduler->fail(id, "on_event callback threw");
    }
    return;
  }
  std::lock_guard<std::mutex> lk(mu_);
  ch->events.push_back(std::move(ev));
  ch->cv.notify_all();
}

void Engine::update_stats(Clock::time_point t0, Clock::time_point t1, int64_t num_sampled,
                          int64_t prompt_tokens, int64_t preemptions,
                          const std::vector<FinishedRequest>& ended) {
  Core& c = *core_;
  std::lock_guard<std::mutex> lk(mu_);
  const Scheduler& s = *c.scheduler;
  stats_.num_running = s.num_running();
  stats_.num_waiting = 0;
  stats_.num_preempted = 0;
  stats_.num_swapped = c.slots->num_swapped();
  for (const Request* r : s.waiting()) {
    if (r->state == RequestState::kPreempted) {
      ++stats_.num_preempted;
    } else {
      ++stats_.num_waiting;
    }
  }
  stats_.num_waiting += static_cast<int64_t>(inbox_.size());
  if (num_sampled > 0 || prompt_tokens > 0) {
    ++stats_.steps;
    stats_.busy_seconds += seconds_between(t0, t1);
  }
  stats_.prompt_tokens_computed += prompt_tokens;
  stats_.tokens_generated += num_sampled;
  stats_.total_preemptions += preemptions;
  stats_.kv = c.manager->stats();
  stats_.swap_used_bytes = c.slots->swap_used_bytes();
  c.recent.emplace_back(t1, num_sampled);
  while (!c.recent.empty() && seconds_between(c.recent.front().first, t1) > 2.0)
    c.recent.pop_front();
  int64_t recent_tokens = 0;
  for (const auto& [t, n] : c.recent) recent_tokens += n;
  const double span = c.recent.size() > 1 ? seconds_between(c.recent.front().first, t1) : 0.0;
  stats_.decode_tokens_per_second = span > 0 ? static_cast<double>(recent_tokens) / span : 0.0;
  stats_.finished_requests += static_cast<int64_t>(ended.size());
  for (const FinishedRequest& f : ended) {
    if (f.reason == RequestFinishReason::kCancelled) ++stats_.cancelled_requests;
  }
}

void Engine::finish_requests(const std::vector<FinishedRequest>& ended, Clock::time_point now) {
  Core& c = *core_;
  for (const FinishedRequest& f : ended) {
    auto it = c.live.find(f.request_id);
    if (it == c.live.end()) continue;
    Core::Live& live = it->second;
    const Request* r = c.scheduler->find(f.request_id);
    RequestResult& res = live.channel->result;  // only this thread writes it before `ended`
    TokenEvent ev;
    ev.request_id = f.request_id;
    ev.finished = true;
    ev.finish_reason = f.reason;
    std::shared_ptr<ContextSnapshot> snap;
    if (r != nullptr) {
      live.text.update(model_->tokenizer(), r->generated());
      ev.text = live.text.take_rest(f.reason == RequestFinishReason::kStop);
      ev.error = r->error;
      res.tokens.assign(r->generated().begin(), r->generated().end());
      res.text = live.text.final_text(f.reason == RequestFinishReason::kStop);
      res.num_preemptions = r->num_preemptions;
      res.num_cached_prompt_tokens = r->num_cached_prompt_tokens;
      if (live.keep_context) {
        if (std::optional<HostKv> kv = c.slots->take_kept(f.request_id)) {
          snap = std::make_shared<ContextSnapshot>();
          snap->model_fingerprint = fingerprint_;
          snap->layout = c.cache->spec();
          snap->layout.num_blocks = 0;
          snap->tokens = r->tokens;
          snap->kv = std::move(*kv);
        }
      }
    }
    if (r == nullptr) ev.error = live.error;
    res.finish_reason = f.reason;
    if (res.error.empty()) res.error = ev.error;
    res.time_to_first_token = live.ttft;
    res.total_time = seconds_between(live.submitted, now);
    res.num_cached_prompt_tokens += live.cached_prompt_tokens;
    ev.num_generated = static_cast<int32_t>(res.tokens.size());
    ev.num_preemptions = res.num_preemptions;
    ev.num_cached_prompt_tokens = res.num_cached_prompt_tokens;
    ev.time_to_first_token = res.time_to_first_token;
    ev.total_time = res.total_time;
    c.runner->release(f.request_id);
    c.slots->forget(f.request_id);
    std::shared_ptr<Channel> ch = live.channel;
    c.live.erase(it);
    if (ch->callback) {
      {
        // The snapshot is there before the final callback, which may want to take it.
        std::lock_guard<std::mutex> lk(mu_);
        ch->ended = true;
        release_client(ch->client_id);
        if (snap) snapshots_[f.request_id] = std::move(snap);
        channels_.erase(f.request_id);
      }
      try {
        ch->callback(ev);
      } catch (...) {
        log_message(LogLevel::kError, "on_event callback threw on the final event of request " +
                                          std::to_string(f.request_id) + "; ignored");
      }
    } else {
      std::lock_guard<std::mutex> lk(mu_);
      ch->ended = true;
      release_client(ch->client_id);
      if (snap) snapshots_[f.request_id] = std::move(snap);
      ch->events.push_back(std::move(ev));
      ch->cv.notify_all();
    }
  }
}

std::vector<FinishedRequest> Engine::take_endings() {
  Core& c = *core_;
  std::vector<FinishedRequest> ended = c.scheduler->take_finished_log();
  ended.insert(ended.end(), c.rejected.begin(), c.rejected.end());
  c.rejected.clear();
  return ended;
}

void Engine::run_step() {
  Core& c = *core_;
  const Clock::time_point t0 = Clock::now();
  // Requests ended by cancel() or refused since the last step: report them now, while the
  // scheduler can still show their tokens (schedule() forgets finished requests).
  std::vector<FinishedRequest> early = take_endings();
  if (!early.empty()) {
    update_stats(t0, t0, 0, 0, 0, early);
    finish_requests(early, t0);
  }
  std::vector<SampledToken> sampled;
  int64_t prompt_tokens = 0;
  int64_t preemptions = 0;
  if (c.scheduler->has_unfinished()) {
    try {
      SchedulerOutput out = c.scheduler->schedule();
      StepResult res;
      try {
        res = c.runner->execute(out, *c.scheduler);
      } catch (const std::exception& e) {
        // The forward pass failed: every request in the step is affected.
        for (const ScheduledRequest& s : out.scheduled) c.scheduler->fail(s.request_id, e.what());
        res = {};
      }
      for (auto& [id, msg] : res.failed) c.scheduler->fail(id, msg);
      c.scheduler->update_from_output(out, res.sampled);
      sampled = std::move(res.sampled);
      for (const ScheduledRequest& s : out.scheduled) {
        // Everything computed except single-token decodes: prompts, recompute, resumed tails.
        if (!(s.is_decode && s.num_new_tokens == 1)) prompt_tokens += s.num_new_tokens;
      }
      preemptions = static_cast<int64_t>(out.preempted.size());
    } catch (const std::exception& e) {
      // A scheduler invariant broke: end every request with the reason rather than hang.
      log_message(LogLevel::kError, std::string("engine step failed: ") + e.what());
      sampled.clear();
      for (const auto& [id, live] : c.live) c.scheduler->fail(id, e.what());
    }
  }
  const Clock::time_point t1 = Clock::now();

  std::vector<FinishedRequest> ended = take_endings();
  update_stats(t0, t1, static_cast<int64_t>(sampled.size()), prompt_tokens, preemptions, ended);

  // Token events, then the ends.
  for (const SampledToken& s : sampled) {
    auto it = c.live.find(s.request_id);
    if (it == c.live.end()) continue;
    Core::Live& live = it->second;
    const Request* r = c.scheduler->find(s.request_id);
    if (!live.got_first_token) {
      live.got_first_token = true;
      live.ttft = seconds_between(live.submitted, t1);
    }
    TokenEvent ev;
    ev.request_id = s.request_id;
    ev.token = s.token;
    if (r != nullptr) {
      live.text.update(model_->tokenizer(), r->generated());
      ev.text = live.text.take_ready(r->params.stop_strings);
    }
    deliver(s.request_id, std::move(ev));
  }

  finish_requests(ended, t1);
}

}  // namespace llmos
