// C API: engines (create, free, stats), sampling defaults and blocking generation.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "capi/capi_internal.h"
#include "core/logging.h"

using namespace llmos;
using namespace llmos::capi;

llmos_engine::~llmos_engine() {
  engine.reset();  // joins the step thread, which may still call back into this object
  if (attached) source->attached.store(false);
}

namespace {

DType kv_dtype_from(int32_t v) {
  switch (v) {
    case LLMOS_KV_F16: return DType::kF16;
    case LLMOS_KV_BF16: return DType::kBF16;
    case LLMOS_KV_F32: return DType::kF32;
    default: break;
  }
  invalid("params->kv_dtype must be LLMOS_KV_F16, LLMOS_KV_BF16 or LLMOS_KV_F32, got " +
          std::to_string(v));
}

ClientQuota quota_from(const llmos_client_quota& q) {
  ClientQuota c;
  c.max_running = q.max_running;
  c.max_kv_blocks = q.max_kv_blocks;
  c.max_outstanding = q.max_outstanding;
  return c;
}

EngineConfig config_from(const llmos_engine_params& p) {
  EngineConfig c;
  c.kv_cache_blocks = p.kv_cache_blocks;
  c.kv_cache_bytes = p.kv_cache_bytes;
  c.block_size = p.block_size;
  c.kv_dtype = kv_dtype_from(p.kv_dtype);
  c.enable_prefix_caching = p.enable_prefix_caching != 0;
  c.watermark = p.watermark;
  c.swap_space_bytes = p.swap_space_bytes;
  c.max_batched_tokens = p.max_batched_tokens;
  c.max_sequences = p.max_sequences;
  c.max_model_len = p.max_model_len;
  c.chunked_prefill = p.chunked_prefill != 0;
  if (p.preemption_mode == LLMOS_PREEMPT_RECOMPUTE) {
    c.preemption = PreemptionMode::kRecompute;
  } else if (p.preemption_mode == LLMOS_PREEMPT_SWAP) {
    c.preemption = PreemptionMode::kSwap;
  } else {
    invalid("params->preemption_mode must be LLMOS_PREEMPT_RECOMPUTE or LLMOS_PREEMPT_SWAP, got " +
            std::to_string(p.preemption_mode));
  }
  c.aging_steps = p.aging_steps;
  c.reject_unknown_clients = p.reject_unknown_clients != 0;
  if (p.default_quota != nullptr) c.default_quota = quota_from(*p.default_quota);
  require(p.quotas != nullptr || p.n_quotas == 0, "params->quotas is NULL while n_quotas is not 0");
  for (size_t i = 0; i < p.n_quotas; ++i) {
    const std::string id = p.quotas[i].client_id == nullptr ? "" : p.quotas[i].client_id;
    if (!c.quotas.emplace(id, quota_from(p.quotas[i])).second) {
      invalid("params->quotas[" + std::to_string(i) + "]: client '" + id + "' is listed twice");
    }
  }
  c.validate();
  return c;
}

}  // namespace

namespace llmos::capi {

uint64_t submit_tracked(llmos_engine& e, EngineRequest request) {
  std::lock_guard<std::mutex> lk(e.mu);
  const uint64_t id = e.engine->submit(std::move(request));
  e.live.insert(id);
  return id;
}

void forget(llmos_engine& e, uint64_t id) {
  std::lock_guard<std::mutex> lk(e.mu);
  e.live.erase(id);
}

}  // namespace llmos::capi

extern "C" {

LLMOS_API llmos_engine_params llmos_engine_params_default(void) {
  const EngineConfig d;
  llmos_engine_params p;
  std::memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.n_threads = 0;
  p.device = nullptr;
  p.kv_cache_blocks = d.kv_cache_blocks;
  p.kv_cache_bytes = d.kv_cache_bytes;
  p.block_size = d.block_size;
  p.kv_dtype = LLMOS_KV_F16;
  p.enable_prefix_caching = d.enable_prefix_caching ? 1 : 0;
  p.max_batched_tokens = d.max_batched_tokens;
  p.max_sequences = d.max_sequences;
  p.max_model_len = d.max_model_len;
  p.chunked_prefill = d.chunked_prefill ? 1 : 0;
  p.preemption_mode = LLMOS_PREEMPT_RECOMPUTE;
  p.swap_space_bytes = d.swap_space_bytes;
  p.watermark = d.watermark;
  p.aging_steps = d.aging_steps;
  p.reject_unknown_clients = d.reject_unknown_clients ? 1 : 0;
  p.default_quota = nullptr;
  p.quotas = nullptr;
  p.n_quotas = 0;
  return p;
}

LLMOS_API llmos_status llmos_engine_create(llmos_model* model, const llmos_engine_params* params,
                                           llmos_engine** out) {
  return guarded("llmos_engine_create", [&] {
    require(out != nullptr, "out is NULL");
    *out = nullptr;
    std::shared_ptr<llmos_model> src = get_model(model);
    const llmos_engine_params p = read_params(params, llmos_engine_params_default(), "params");
    if (p.n_threads < 0) {
      invalid("params->n_threads must be >= 0, got " + std::to_string(p.n_threads));
    }
    const EngineConfig config = config_from(p);
    BackendOptions wanted = src->backend_options;
    if (p.n_threads > 0) wanted.num_threads = p.n_threads;
    if (p.device != nullptr && *p.device != '\0') wanted.device = parse_device(p.device);
    const bool same_backend =
        (p.n_threads == 0 || p.n_threads == src->model->backend().num_threads()) &&
        wanted.device == src->backend_options.device;

    auto e = std::make_shared<llmos_engine>();
    e->source = src;
    std::shared_ptr<LlamaModel> lm;
    if (same_backend && !src->attached.exchange(true)) {
      e->attached = true;
      lm = src->model;
    } else {
      // The mapped file is shared; the backend (threads, packed weights, scratch) is not.
      lm = LlamaModel::from_file(src->model->file(), create_backend(wanted));
    }
    e->engine = std::make_unique<Engine>(lm, config);
    log_message(LogLevel::kInfo,
                "engine created: " + std::to_string(e->engine->stats().kv.total_blocks) +
                    " KV blocks of " + std::to_string(config.block_size) + " tokens, backend " +
                    lm->backend().name() + (e->attached ? " (the model's)" : " (its own)"));
    *out = engines().add(std::move(e));
    return LLMOS_OK;
  });
}

LLMOS_API llmos_status llmos_engine_free(llmos_engine* engine) {
  return guarded("llmos_engine_free", [&] {
    if (engine == nullptr) return LLMOS_OK;
    if (callback_engine() == engine) {
      return fail(LLMOS_ERR_BUSY,
                  "llmos_engine_free: called from the engine's own callback (its step thread)");
    }
    std::shared_ptr<llmos_engine> e = engines().take(engine);
    if (!e) invalid("engine is not a live llmos_engine (freed or never created)");
    // Calls still running on other threads hold references. Cancelling every live request
    // wakes the ones blocked on events; new lookups fail already, so the count only falls.
    for (;;) {
      std::vector<uint64_t> ids;
      {
        std::lock_guard<std::mutex> lk(e->mu);
        ids.assign(e->live.begin(), e->live.end());
      }
      for (uint64_t id : ids) e->engine->cancel(id);
      if (e.use_count() <= 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    e.reset();
    return LLMOS_OK;
  });
}

LLMOS_API llmos_status llmos_engine_stats(const llmos_engine* engine, llmos_stats* stats) {
  return guarded("llmos_engine_stats", [&] {
    std::shared_ptr<llmos_engine> e = get_engine(engine);
    require(stats != nullptr, "stats is NULL");
    const EngineStats s = e->engine->stats();
    llmos_stats r;
    std::memset(&r, 0, sizeof r);
    r.num_waiting = s.num_waiting;
    r.num_running = s.num_running;
    r.num_preempted = s.num_preempted;
    r.num_swapped = s.num_swapped;
    r.total_preemptions = s.total_preemptions;
    r.total_requests = s.total_requests;
    r.finished_requests = s.finished_requests;
    r.cancelled_requests = s.cancelled_requests;
    r.steps = s.steps;
    r.prompt_tokens_computed = s.prompt_tokens_computed;
    r.tokens_generated = s.tokens_generated;
    r.decode_tokens_per_second = s.decode_tokens_per_second;
    r.busy_seconds = s.busy_seconds;
    r.kv_total_blocks = s.kv.total_blocks;
    r.kv_used_blocks = s.kv.used_blocks;
    r.kv_cached_blocks = s.kv.cached_blocks;
    r.kv_free_blocks = s.kv.free_blocks;
    r.kv_block_bytes = s.kv_block_bytes;
    r.prefix_query_tokens = s.kv.prefix_query_tokens;
    r.prefix_hit_tokens = s.kv.prefix_hit_tokens;
    r.swap_used_bytes = s.swap_used_bytes;
    write_output(stats, r, "stats");
    return LLMOS_OK;
  });
}

LLMOS_API llmos_sampling_params llmos_sampling_params_default(void) {
  const SamplingParams d;
  llmos_sampling_params p;
  std::memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.temperature = d.temperature;
  p.top_k = d.top_k;
  p.top_p = d.top_p;
  p.min_p = d.min_p;
  p.repeat_penalty = d.repeat_penalty;
  p.repeat_last_n = d.repeat_last_n;
  p.seed = d.seed;
  p.max_tokens = EngineRequest{}.max_tokens;
  p.ignore_eos = 0;
  return p;
}

LLMOS_API llmos_status llmos_generate(llmos_engine* engine, const char* prompt,
                                      const llmos_sampling_params* sampling, char* text_out,
                                      size_t capacity, size_t* n_out) {
  return guarded("llmos_generate", [&] {
    std::shared_ptr<llmos_engine> e = get_engine(engine);
    require(n_out != nullptr, "n_out is NULL");
    *n_out = 0;
    require(prompt != nullptr, "prompt is NULL");
    require(text_out != nullptr || capacity == 0, "text_out is NULL while capacity is not 0");
    if (callback_engine() == engine) {
      return fail(LLMOS_ERR_BUSY,
                  "llmos_generate: called from the engine's own callback (it would wait for "
                  "its own step thread)");
    }
    const llmos_sampling_params sp =
        read_params(sampling, llmos_sampling_params_default(), "sampling");
    EngineRequest r;
    r.prompt = prompt;
    r.sampling = to_sampling(sp, &r.max_tokens, &r.ignore_eos);
    const uint64_t id = submit_tracked(*e, std::move(r));
    RequestResult res;
    try {
      res = e->engine->wait(id);
    } catch (...) {
      forget(*e, id);
      throw;
    }
    forget(*e, id);
    if (res.finish_reason == RequestFinishReason::kCancelled) {
      return fail(LLMOS_ERR_CANCELLED, "llmos_generate: the request was cancelled");
    }
    if (res.finish_reason == RequestFinishReason::kError) {
      return fail(LLMOS_ERR_INTERNAL, "llmos_generate: the request failed: " + res.error);
    }
    return copy_text(res.text, text_out, capacity, n_out, "llmos_generate");
  });
}

}  // extern "C"
