// llmos C++ API: header-only RAII classes over the C API (llmos.h), C++17.
//
// Errors are exceptions, always: every failing C call becomes llmos::api::Error carrying the
// llmos_status and llmos_last_error()'s message. The two expected outcomes that are not errors
// come back as values instead: Engine::next_event returns std::nullopt on timeout, and
// Engine::cancel returns false for a request that already ended.
//
// Everything lives in namespace llmos::api (the library's internal C++ classes use namespace
// llmos, so a program linking the static library sees no clash). Handles are move-only; an
// Engine keeps what it needs of its Model alive, so the Model may be destroyed first.
#ifndef LLMOS_LLMOS_HPP
#define LLMOS_LLMOS_HPP

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llmos/llmos.h"

namespace llmos::api {

using Token = llmos_token;

// A failed llmos call: the status and the library's message.
class Error : public std::runtime_error {
 public:
  Error(llmos_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  llmos_status status() const noexcept { return status_; }

 private:
  llmos_status status_;
};

namespace detail {

inline void check(llmos_status status) {
  if (status != LLMOS_OK) throw Error(status, llmos_last_error());
}

// Runs a C call that fills a text buffer, growing the buffer when it reports the size needed.
template <typename Call>
std::string fetch_text(Call&& call) {
  std::string out(64, '\0');
  for (;;) {
    size_t n = 0;
    const llmos_status s = call(out.data(), out.size(), &n);
    if (s == LLMOS_OK) {
      out.resize(n);
      return out;
    }
    if (s != LLMOS_ERR_BUFFER_TOO_SMALL) check(s);
    out.assign(n, '\0');
  }
}

}  // namespace detail

inline std::string version() { return llmos_version(); }

// Parameter structs: the C structs with their defaults filled in; change fields directly.
// String fields (device, client ids) are borrowed: keep the strings alive across the call.
struct ModelParams : llmos_model_params {
  ModelParams() : llmos_model_params(llmos_model_params_default()) {}
};
struct EngineParams : llmos_engine_params {
  EngineParams() : llmos_engine_params(llmos_engine_params_default()) {}
};
struct SamplingParams : llmos_sampling_params {
  SamplingParams() : llmos_sampling_params(llmos_sampling_params_default()) {}
  static SamplingParams greedy(int32_t max_tokens) {
    SamplingParams p;
    p.temperature = 0.0f;
    p.max_tokens = max_tokens;
    return p;
  }
};

struct ModelInfo {
  std::string architecture;
  std::string name;
  int64_t vocab_size = 0;
  int64_t context_length = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t dim = 0;
  Token bos = -1;
  Token eos = -1;
  bool add_bos = false;
  int32_t n_threads = 0;
};

class Model {
 public:
  explicit Model(const std::string& path, const ModelParams& params = ModelParams()) {
    llmos_model* m = nullptr;
    detail::check(llmos_model_load(path.c_str(), &params, &m));
    handle_.reset(m);
  }

  ModelInfo info() const {
    llmos_model_info c{};
    c.struct_size = sizeof c;
    detail::check(llmos_model_get_info(get(), &c));
    ModelInfo i;
    i.architecture = c.architecture;
    i.name = c.name;
    i.vocab_size = c.vocab_size;
    i.context_length = c.context_length;
    i.n_layers = c.n_layers;
    i.n_heads = c.n_heads;
    i.n_kv_heads = c.n_kv_heads;
    i.dim = c.dim;
    i.bos = c.bos;
    i.eos = c.eos;
    i.add_bos = c.add_bos != 0;
    i.n_threads = c.n_threads;
    return i;
  }

  // add_bos: the vocabulary's special tokens (BOS when it asks for one), as prompts get.
  std::vector<Token> tokenize(std::string_view text, bool add_bos = true) const {
    std::vector<Token> out(text.size() + 2);
    for (;;) {
      size_t n = 0;
      const llmos_status s = llmos_tokenize(get(), text.data(), text.size(), add_bos ? 1 : 0,
                                            out.data(), out.size(), &n);
      if (s == LLMOS_OK) {
        out.resize(n);
        return out;
      }
      if (s != LLMOS_ERR_BUFFER_TOO_SMALL) detail::check(s);
      out.resize(n);
    }
  }

  std::string detokenize(const std::vector<Token>& tokens) const {
    return detail::fetch_text([&](char* buf, size_t cap, size_t* n) {
      return llmos_detokenize(get(), tokens.data(), tokens.size(), buf, cap, n);
    });
  }

  std::string token_to_piece(Token token) const {
    return detail::fetch_text([&](char* buf, size_t cap, size_t* n) {
      return llmos_token_to_piece(get(), token, buf, cap, n);
    });
  }

  // The natural-log probability of `continuation` following `context` (token ids as is; see
  // llmos_score). Thread-safe; independent of engines.
  double score(const std::vector<Token>& context, const std::vector<Token>& continuation) const {
    double logprob = 0.0;
    detail::check(llmos_score(get(), context.data(), context.size(), continuation.data(),
                              continuation.size(), &logprob));
    return logprob;
  }

  llmos_model* get() const noexcept { return handle_.get(); }

 private:
  struct Free {
    void operator()(llmos_model* m) const noexcept { llmos_model_free(m); }
  };
  std::unique_ptr<llmos_model, Free> handle_;
};

struct Event {
  uint64_t request_id = 0;
  bool finished = false;
  Token token = -1;
  std::string text;
  llmos_finish_reason finish_reason = LLMOS_FINISH_NONE;
  std::string error;
  // On the final event: the request's summary.
  int32_t num_generated = 0;
  int32_t num_preemptions = 0;
  int32_t num_cached_prompt_tokens = 0;
  double time_to_first_token = 0.0;
  double total_time = 0.0;

  static Event from(const llmos_event& e) {
    Event ev;
    ev.request_id = e.request_id;
    ev.finished = e.finished != 0;
    ev.token = e.token;
    ev.text.assign(e.text, e.text_len);
    ev.finish_reason = static_cast<llmos_finish_reason>(e.finish_reason);
    ev.error = e.error;
    ev.num_generated = e.num_generated;
    ev.num_preemptions = e.num_preemptions;
    ev.num_cached_prompt_tokens = e.num_cached_prompt_tokens;
    ev.time_to_first_token = e.time_to_first_token;
    ev.total_time = e.total_time;
    return ev;
  }
};

struct Request {
  std::string prompt;                // used when prompt_tokens is empty
  std::vector<Token> prompt_tokens;  // used as is (no BOS added)
  SamplingParams sampling;
  llmos_priority priority = LLMOS_PRIORITY_INTERACTIVE;
  std::string client_id;
  std::vector<std::string> stop_strings;
  std::vector<Token> stop_tokens;
  bool keep_context = false;
  // Push streaming on the engine's step thread: return false to cancel the request. It must
  // not block; an exception it throws cancels the request and is otherwise dropped.
  std::function<bool(const Event&)> on_event;
};

using Stats = llmos_stats;

class Engine {
 public:
  explicit Engine(const Model& model, const EngineParams& params = EngineParams()) {
    llmos_engine* e = nullptr;
    detail::check(llmos_engine_create(model.get(), &params, &e));
    handle_.reset(e);
  }

  // Blocking: the continuation of `prompt` (not the prompt itself). Generated once, streamed
  // into the string, so no buffer size has to be guessed.
  std::string generate(const std::string& prompt,
                       const SamplingParams& sampling = SamplingParams()) {
    Request r;
    r.prompt = prompt;
    r.sampling = sampling;
    return generate(r);
  }
  std::string generate(const Request& request) {
    if (request.on_event) {
      throw Error(LLMOS_ERR_INVALID_ARGUMENT, "generate: the request must not have on_event");
    }
    std::pair<std::string, Event> done = wait(submit(request));
    if (done.second.finish_reason == LLMOS_FINISH_CANCELLED) {
      throw Error(LLMOS_ERR_CANCELLED, "generate: the request was cancelled");
    }
    if (done.second.finish_reason == LLMOS_FINISH_ERROR) {
      throw Error(LLMOS_ERR_INTERNAL, "generate: the request failed: " + done.second.error);
    }
    return std::move(done.first);
  }

  uint64_t submit(const Request& request) { return submit_impl(request, nullptr); }

  // The next event of a pulled request; std::nullopt when none arrives within `timeout`
  // (negative: wait as long as it takes).
  std::optional<Event> next_event(
      uint64_t id, std::chrono::milliseconds timeout = std::chrono::milliseconds(-1)) {
    llmos_event e{};
    e.struct_size = sizeof e;
    const auto ms = timeout.count() < 0           ? -1
                    : timeout.count() > INT32_MAX ? INT32_MAX
                                                  : static_cast<int>(timeout.count());
    const llmos_status s = llmos_next_event(get(), id, &e, ms);
    if (s == LLMOS_ERR_TIMEOUT) return std::nullopt;
    detail::check(s);
    return Event::from(e);
  }

  // Pulls events until the request ends; returns its text and the final event.
  std::pair<std::string, Event> wait(uint64_t id) {
    std::string text;
    for (;;) {
      Event ev = *next_event(id);
      text += ev.text;
      if (ev.finished) return {std::move(text), std::move(ev)};
    }
  }

  // false when the request is unknown or already ended.
  bool cancel(uint64_t id) {
    const llmos_status s = llmos_cancel(get(), id);
    if (s == LLMOS_ERR_NOT_FOUND) return false;
    detail::check(s);
    return true;
  }

  Stats stats() const {
    Stats s{};
    s.struct_size = sizeof s;
    detail::check(llmos_engine_stats(get(), &s));
    return s;
  }

  // See llmos_snapshot_save / llmos_snapshot_restore.
  void snapshot_save(uint64_t id, const std::string& path) {
    detail::check(llmos_snapshot_save(get(), id, path.c_str()));
  }
  uint64_t snapshot_restore(const std::string& path, const Request& request = Request()) {
    return submit_impl(request, &path);
  }

  llmos_engine* get() const noexcept { return handle_.get(); }

 private:
  struct Free {
    void operator()(llmos_engine* e) const noexcept { llmos_engine_free(e); }
  };

  using Callback = std::function<bool(const Event&)>;
  static int trampoline(const llmos_event* e, void* user) {
    auto* cb = static_cast<Callback*>(user);
    int rc = 0;
    try {
      rc = (*cb)(Event::from(*e)) ? 0 : 1;
    } catch (...) {
      rc = 1;
    }
    if (e->finished) delete cb;  // the last call for this request
    return rc;
  }

  uint64_t submit_impl(const Request& r, const std::string* resume_path) {
    llmos_request c = llmos_request_default();
    if (!r.prompt_tokens.empty()) {
      c.prompt_tokens = r.prompt_tokens.data();
      c.n_prompt_tokens = r.prompt_tokens.size();
    } else if (!r.prompt.empty() || resume_path == nullptr) {
      c.prompt = r.prompt.c_str();
    }
    c.sampling = &r.sampling;
    c.priority = r.priority;
    c.client_id = r.client_id.c_str();
    std::vector<const char*> stops;
    for (const std::string& s : r.stop_strings) stops.push_back(s.c_str());
    c.stop_strings = stops.data();
    c.n_stop_strings = stops.size();
    c.stop_tokens = r.stop_tokens.data();
    c.n_stop_tokens = r.stop_tokens.size();
    c.keep_context = r.keep_context ? 1 : 0;
    std::unique_ptr<Callback> cb;
    if (r.on_event) {
      cb = std::make_unique<Callback>(r.on_event);
      c.callback = &trampoline;
      c.user_data = cb.get();
    }
    uint64_t id = 0;
    const llmos_status s = resume_path != nullptr
                               ? llmos_snapshot_restore(get(), resume_path->c_str(), &c, &id)
                               : llmos_submit(get(), &c, &id);
    detail::check(s);  // on failure no callback ever runs: `cb` frees the function
    cb.release();      // owned by the request now; its last callback deletes it
    return id;
  }

  std::unique_ptr<llmos_engine, Free> handle_;
};

// Routes the library's log messages to `sink` (nullptr: off). Process-wide.
inline void set_log_callback(std::function<void(llmos_log_level, std::string_view)> sink) {
  struct Holder {
    std::mutex mu;
    std::function<void(llmos_log_level, std::string_view)> sink;
  };
  static Holder* holder = new Holder();  // never destroyed: messages may arrive during exit
  {
    std::lock_guard<std::mutex> lk(holder->mu);
    holder->sink = std::move(sink);
  }
  const bool on = [&] {
    std::lock_guard<std::mutex> lk(holder->mu);
    return static_cast<bool>(holder->sink);
  }();
  detail::check(llmos_set_log_callback(
      on ? +[](llmos_log_level level, const char* message, void* user) {
        auto* h = static_cast<Holder*>(user);
        std::lock_guard<std::mutex> lk(h->mu);
        try {
          if (h->sink) h->sink(level, message);
        } catch (...) {
        }
      }
         : nullptr,
      holder));
}

}  // namespace llmos::api

#endif  // LLMOS_LLMOS_HPP
