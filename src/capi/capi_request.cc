// C API: asynchronous requests (submit, pull or push streaming, cancel) and context snapshots.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "capi/capi_internal.h"
#include "kv/context_snapshot.h"

using namespace llmos;
using namespace llmos::capi;

namespace {

llmos_finish_reason finish_reason_to_c(RequestFinishReason r) {
  switch (r) {
    case RequestFinishReason::kNone: return LLMOS_FINISH_NONE;
    case RequestFinishReason::kLength: return LLMOS_FINISH_LENGTH;
    case RequestFinishReason::kEos: return LLMOS_FINISH_EOS;
    case RequestFinishReason::kStop: return LLMOS_FINISH_STOP;
    case RequestFinishReason::kCancelled: return LLMOS_FINISH_CANCELLED;
    case RequestFinishReason::kError: return LLMOS_FINISH_ERROR;
  }
  return LLMOS_FINISH_ERROR;
}

// A C view of an event; the strings point into `ev`.
llmos_event to_c_event(const TokenEvent& ev) {
  llmos_event c;
  std::memset(&c, 0, sizeof c);
  c.struct_size = sizeof c;
  c.request_id = ev.request_id;
  c.finished = ev.finished ? 1 : 0;
  c.token = ev.finished ? -1 : ev.token;
  c.text = ev.text.c_str();
  c.text_len = ev.text.size();
  c.finish_reason = ev.finished ? finish_reason_to_c(ev.finish_reason) : LLMOS_FINISH_NONE;
  c.error = ev.error.c_str();
  if (ev.finished) {
    c.num_generated = ev.num_generated;
    c.num_preemptions = ev.num_preemptions;
    c.num_cached_prompt_tokens = ev.num_cached_prompt_tokens;
    c.time_to_first_token = ev.time_to_first_token;
    c.total_time = ev.total_time;
  }
  return c;
}

std::vector<int32_t> token_array(const llmos_token* tokens, size_t n, const char* what) {
  if (n == 0) return {};
  if (tokens == nullptr) invalid(std::string(what) + " is NULL while its count is not 0");
  return std::vector<int32_t>(tokens, tokens + n);
}

// Translates *req into an EngineRequest, copying every string and array. `resuming`: a request
// continuing a snapshot may have no prompt at all.
EngineRequest build_request(llmos_engine& e, const llmos_request* user, bool resuming) {
  const llmos_request q = read_params(user, llmos_request_default(), "req");
  EngineRequest r;
  if (q.n_prompt_tokens > 0) {
    r.prompt_tokens = token_array(q.prompt_tokens, q.n_prompt_tokens, "req->prompt_tokens");
  } else if (q.prompt != nullptr) {
    r.prompt = q.prompt;
  } else if (!resuming) {
    invalid("req->prompt is NULL and req->n_prompt_tokens is 0");
  }
  const llmos_sampling_params sp =
      read_params(q.sampling, llmos_sampling_params_default(), "req->sampling");
  r.sampling = to_sampling(sp, &r.max_tokens, &r.ignore_eos);
  if (q.priority < LLMOS_PRIORITY_REALTIME || q.priority > LLMOS_PRIORITY_BACKGROUND) {
    invalid("req->priority must be an llmos_priority (0..2), got " + std::to_string(q.priority));
  }
  r.priority = static_cast<Priority>(q.priority);
  if (q.client_id != nullptr) r.client_id = q.client_id;
  if (q.n_stop_strings > 0) {
    require(q.stop_strings != nullptr, "req->stop_strings is NULL while n_stop_strings is not 0");
    for (size_t i = 0; i < q.n_stop_strings; ++i) {
      if (q.stop_strings[i] == nullptr)
        invalid("req->stop_strings[" + std::to_string(i) + "] is NULL");
      r.stop_strings.emplace_back(q.stop_strings[i]);
    }
  }
  r.stop_token_ids = token_array(q.stop_tokens, q.n_stop_tokens, "req->stop_tokens");
  r.keep_context = q.keep_context != 0;
  if (q.callback != nullptr) {
    // The engine outlives every callback of its requests (its destructor joins the step thread,
    // and `e` outlives the engine), so raw pointers are safe here.
    llmos_engine* handle = &e;
    Engine* engine = e.engine.get();
    r.on_event = [handle, engine, cb = q.callback, user_data = q.user_data](const TokenEvent& ev) {
      const llmos_event c = to_c_event(ev);
      const llmos_engine*& current = callback_engine();
      const llmos_engine* outer = current;
      current = handle;
      const int rc = cb(&c, user_data);
      current = outer;
      if (ev.finished) {
        forget(*handle, ev.request_id);
      } else if (rc != 0) {
        engine->cancel(ev.request_id);
      }
    };
  }
  return r;
}

}  // namespace

extern "C" {

LLMOS_API llmos_request llmos_request_default(void) {
  llmos_request r;
  std::memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.priority = LLMOS_PRIORITY_INTERACTIVE;
  return r;
}

LLMOS_API llmos_status llmos_submit(llmos_engine* engine, const llmos_request* req,
                                    uint64_t* request_id) {
  return guarded("llmos_submit", [&] {
    std::shared_ptr<llmos_engine> e = get_engine(engine);
    require(request_id != nullptr, "request_id is NULL");
    *request_id = 0;
    require(req != nullptr, "req is NULL");
    *request_id = submit_tracked(*e, build_request(*e, req, /*resuming=*/false));
    return LLMOS_OK;
  });
}

LLMOS_API llmos_status llmos_next_event(llmos_engine* engine, uint64_t request_id,
                                        llmos_event* event, int timeout_ms) {
  return guarded("llmos_next_event", [&] {
    std::shared_ptr<llmos_engine> e = get_engine(engine);
    require(event != nullptr, "event is NULL");
    if (event->struct_size < sizeof(size_t)) {
      invalid("event->struct_size is " + std::to_string(event->struct_size) +
              ": set it to sizeof(llmos_event) before the call");
    }
    if (timeout_ms != 0 && callback_engine() == engine) {
      return fail(LLMOS_ERR_BUSY,
                  "llmos_next_event: a blocking call from the engine's own callback would wait "
                  "for its own step thread (use timeout_ms 0)");
    }
    std::optional<TokenEvent> ev;
    if (timeout_ms >= 0) {
      ev = e->engine->next_event(request_id, std::chrono::milliseconds(timeout_ms));
    } else {
      while (!ev) ev = e->engine->next_event(request_id, std::chrono::hours(1));
    }
    if (!ev) {
      return fail(LLMOS_ERR_TIMEOUT, "llmos_next_event: no event of request " +
                                         std::to_string(request_id) + " within " +
                                         std::to_string(timeout_ms) + " ms");
    }
    if (ev->finished) forget(*e, request_id);
    // The strings handed out stay valid until this thread's next call.
    thread_local TokenEvent t_event;
    t_event = std::move(*ev);
    write_output(event, to_c_event(t_event), "event");
    return LLMOS_OK;
  });
}

LLMOS_API llmos_status llmos_cancel(llmos_engine* engine, uint64_t request_id) {
  return guarded("llmos_cancel", [&] {
    std::shared_ptr<llmos_engine> e = get_engine(engine);
    if (!e->engine->cancel(request_id)) {
      return fail(LLMOS_ERR_NOT_FOUND, "llmos_cancel: request " + std::to_string(request_id) +
                                           " is unknown or already ended");
    }
    return LLMOS_OK;
  });
}

LLMOS_API llmos_status llmos_snapshot_save(llmos_engine* engine, uint64_t request_id,
                                           const char* path) {
  return guarded("llmos_snapshot_save", [&] {
    std::shared_ptr<llmos_engine> e = get_engine(engine);
    require(path != nullptr, "path is NULL");
    require(*path != '\0', "path is empty");
    std::shared_ptr<ContextSnapshot> snap;
    {
      std::lock_guard<std::mutex> lk(e->mu);
      auto it = e->unsaved.find(request_id);
      if (it != e->unsaved.end()) {
        snap = std::move(it->second);
        e->unsaved.erase(it);
      }
    }
    if (!snap) snap = e->engine->take_snapshot(request_id);
    try {
      snap->save(path);
    } catch (...) {
      std::lock_guard<std::mutex> lk(e->mu);
      e->unsaved[request_id] = std::move(snap);
      throw;
    }
    return LLMOS_OK;
  });
}

LLMOS_API llmos_status llmos_snapshot_restore(llmos_engine* engine, const char* path,
                                              const llmos_request* req, uint64_t* request_id) {
  return guarded("llmos_snapshot_restore", [&] {
    std::shared_ptr<llmos_engine> e = get_engine(engine);
    require(request_id != nullptr, "request_id is NULL");
    *request_id = 0;
    require(path != nullptr, "path is NULL");
    require(*path != '\0', "path is empty");
    EngineRequest r = build_request(*e, req, /*resuming=*/true);
    r.resume = std::make_shared<const ContextSnapshot>(ContextSnapshot::load(path));
    *request_id = submit_tracked(*e, std::move(r));
    return LLMOS_OK;
  });
}

}  // extern "C"
