// llmos.Engine (the low-level part; the package adds stream()): the multi-client serving
// engine over a Model. submit / next_event / wait / cancel for advanced use, generate() for a
// prompt or a batch of prompts, stats(), tokenize / detokenize.
//
// Lifetime: the C++ Engine lives in a shared_ptr. Every call takes its own reference (with the
// GIL held) before releasing the GIL, so close() from one thread never frees an engine another
// thread is using: close() cancels this object's requests and drops its reference, and the
// last reference stops the step thread. References are always dropped with the GIL released,
// because stopping the step thread may wait for a callback that needs the GIL.
#include <Python.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include <pybind11/stl.h>

#include "bindings.h"
#include "core/error.h"
#include "engine/engine.h"
#include "kv/context_snapshot.h"

namespace llmos::python {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kPoll{50};  // how often blocking waits look for Ctrl-C

bool finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

// Ids of the requests submitted through one Python Engine and not yet released, so close()
// can cancel them. Shared with the callback wrappers on the engine thread. Its lock is never
// held while taking the GIL.
struct Tracker {
  std::mutex mu;
  std::unordered_set<uint64_t> ids;
  void add(uint64_t id) {
    std::lock_guard<std::mutex> lk(mu);
    ids.insert(id);
  }
  void remove(uint64_t id) {
    std::lock_guard<std::mutex> lk(mu);
    ids.erase(id);
  }
  std::vector<uint64_t> take() {
    std::lock_guard<std::mutex> lk(mu);
    std::vector<uint64_t> out(ids.begin(), ids.end());
    ids.clear();
    return out;
  }
};

// A reference to the engine for one call; dropped with the GIL released (see above).
struct Lease {
  std::shared_ptr<Engine> engine;
  Engine* operator->() const { return engine.get(); }
  Lease() = default;
  explicit Lease(std::shared_ptr<Engine> e) : engine(std::move(e)) {}
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() {
    if (engine && PyGILState_Check() != 0) {
      py::gil_scoped_release release;
      engine.reset();
    }
  }
};

// A Python callable run on the engine thread. Its reference is dropped under the GIL.
struct PyCallback {
  py::object fn;
  explicit PyCallback(py::object f) : fn(std::move(f)) {}
  PyCallback(const PyCallback&) = delete;
  PyCallback& operator=(const PyCallback&) = delete;
  ~PyCallback() {
    if (!fn) return;
    if (finalizing()) {
      fn.release();  // the interpreter is going away; nothing may touch it now
      return;
    }
    py::gil_scoped_acquire gil;
    fn = py::object();
  }
};

// TokenEvent as Python sees it; text stays bytes until read (it is decoded on access).
struct PyTokenEvent {
  TokenEvent ev;
};

py::dict kv_stats_dict(const KvCacheStats& kv) {
  py::dict d;
  d["total_blocks"] = kv.total_blocks;
  d["used_blocks"] = kv.used_blocks;
  d["cached_blocks"] = kv.cached_blocks;
  d["free_blocks"] = kv.free_blocks;
  d["prefix_queries"] = kv.prefix_queries;
  d["prefix_query_tokens"] = kv.prefix_query_tokens;
  d["prefix_hit_tokens"] = kv.prefix_hit_tokens;
  d["prefix_hit_rate"] = kv.prefix_hit_rate();
  return d;
}

py::dict stats_dict(const EngineStats& s) {
  py::dict d;
  d["num_waiting"] = s.num_waiting;
  d["num_running"] = s.num_running;
  d["num_preempted"] = s.num_preempted;
  d["num_swapped"] = s.num_swapped;
  d["total_preemptions"] = s.total_preemptions;
  d["total_requests"] = s.total_requests;
  d["finished_requests"] = s.finished_requests;
  d["cancelled_requests"] = s.cancelled_requests;
  d["steps"] = s.steps;
  d["prompt_tokens_computed"] = s.prompt_tokens_computed;
  d["tokens_generated"] = s.tokens_generated;
  d["decode_tokens_per_second"] = s.decode_tokens_per_second;
  d["busy_seconds"] = s.busy_seconds;
  d["kv_block_bytes"] = s.kv_block_bytes;
  d["swap_used_bytes"] = s.swap_used_bytes;
  d["kv"] = kv_stats_dict(s.kv);
  return d;
}

ClientQuota quota_from_python(const py::handle& obj, const std::string& what) {
  if (!py::isinstance<py::dict>(obj)) {
    throw py::type_error(what + ": expected a dict with max_running, max_kv_blocks, "
                         "max_outstanding, got " +
                         type_name(obj));
  }
  ClientQuota q;
  for (auto [key, value] : py::reinterpret_borrow<py::dict>(obj)) {
    const std::string k = py::str(key);
    if (k == "max_running") {
      q.max_running = value.cast<int32_t>();
    } else if (k == "max_kv_blocks") {
      q.max_kv_blocks = value.cast<int64_t>();
    } else if (k == "max_outstanding") {
      q.max_outstanding = value.cast<int32_t>();
    } else {
      throw_error(StatusCode::kInvalidArgument, what, ": unknown key '", k,
                  "' (expected max_running, max_kv_blocks, max_outstanding)");
    }
    LLMOS_CHECK_ARG(value.cast<int64_t>() >= 0, what, ".", k, ": must be >= 0, got ",
                    value.cast<int64_t>());
  }
  return q;
}

uint64_t seed_from_python(const py::handle& obj) {
  if (obj.is_none()) {
    std::random_device rd;
    return (uint64_t{rd()} << 32) | rd();
  }
  if (!PyLong_Check(obj.ptr()) || PyBool_Check(obj.ptr())) {
    throw py::type_error("seed: expected int or None, got " +
                         type_name(obj));
  }
  const unsigned long long v = PyLong_AsUnsignedLongLong(obj.ptr());
  if (PyErr_Occurred() != nullptr) {
    PyErr_Clear();
    throw_error(StatusCode::kInvalidArgument, "seed: must be an integer in [0, 2**64), got ",
                std::string(py::str(obj)));
  }
  return v;
}

template <typename T>
T cast_arg(const py::handle& value, const char* key) {
  try {
    return value.cast<T>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string(key) + ": unexpected type " +
                         type_name(value));
  }
}

std::vector<std::string> strings_arg(const py::handle& value, const char* key) {
  if (value.is_none()) return {};
  if (py::isinstance<py::str>(value)) return {value.cast<std::string>()};
  std::vector<std::string> out;
  for (const py::handle item : value) {
    if (!py::isinstance<py::str>(item)) {
      throw py::type_error(std::string(key) + ": expected str or a list of str, found " +
                           type_name(item));
    }
    out.push_back(item.cast<std::string>());
  }
  return out;
}

// Request settings from keyword arguments (generate / submit / stream share them). Unknown
// keywords are a TypeError, as for any Python function.
// A str or os.PathLike argument as a file system path.
std::string path_arg(const py::handle& value, const char* what) {
  py::object p = py::module_::import("os").attr("fspath")(value);
  if (!py::isinstance<py::str>(p)) {
    throw py::type_error(std::string(what) + ": expected a str or os.PathLike path, got " +
                         type_name(value));
  }
  const std::string s = p.cast<std::string>();
  LLMOS_CHECK_ARG(!s.empty(), what, ": the path is empty");
  return s;
}

EngineRequest request_from_kwargs(const py::dict& kw, bool allow_callback) {
  EngineRequest r;
  py::handle seed = py::none();
  for (auto [key, value] : kw) {
    const std::string k = py::str(key);
    if (k == "max_tokens") {
      r.max_tokens = cast_arg<int32_t>(value, "max_tokens");
    } else if (k == "temperature") {
      r.sampling.temperature = cast_arg<float>(value, "temperature");
    } else if (k == "top_k") {
      r.sampling.top_k = cast_arg<int32_t>(value, "top_k");
    } else if (k == "top_p") {
      r.sampling.top_p = cast_arg<float>(value, "top_p");
    } else if (k == "min_p") {
      r.sampling.min_p = cast_arg<float>(value, "min_p");
    } else if (k == "repeat_penalty") {
      r.sampling.repeat_penalty = cast_arg<float>(value, "repeat_penalty");
    } else if (k == "repeat_last_n") {
      r.sampling.repeat_last_n = cast_arg<int32_t>(value, "repeat_last_n");
    } else if (k == "seed") {
      seed = value;
    } else if (k == "stop") {
      r.stop_strings = strings_arg(value, "stop");
    } else if (k == "stop_token_ids") {
      if (!value.is_none()) r.stop_token_ids = tokens_from_python(value, "stop_token_ids");
    } else if (k == "ignore_eos") {
      r.ignore_eos = cast_arg<bool>(value, "ignore_eos");
    } else if (k == "priority") {
      r.priority = parse_priority(cast_arg<std::string>(value, "priority"));
    } else if (k == "client_id") {
      r.client_id = cast_arg<std::string>(value, "client_id");
    } else if (k == "on_event" && allow_callback) {
      if (!value.is_none()) {
        if (!PyCallable_Check(value.ptr())) throw py::type_error("on_event: expected a callable");
        auto cb = std::make_shared<PyCallback>(py::reinterpret_borrow<py::object>(value));
        r.on_event = [cb](const TokenEvent& ev) {
          if (finalizing()) return;
          py::gil_scoped_acquire gil;
          try {
            cb->fn(PyTokenEvent{ev});
          } catch (py::error_already_set& e) {
            // Becomes the request's error (the engine ends it with finish_reason 'error').
            throw Error(StatusCode::kInvalidArgument, e.what());
          }
        };
      }
    } else {
      throw py::type_error("unexpected keyword argument '" + k + "'");
    }
  }
  r.sampling.seed = seed_from_python(seed);
  return r;
}

struct Collected {
  uint64_t id = 0;
  std::string text;
  std::vector<int32_t> tokens;
  RequestFinishReason reason = RequestFinishReason::kNone;
  std::string error;
  bool done = false;
};

class PyEngine;
// Engines still open at interpreter exit are closed first, while their callbacks can still
// take the GIL. Touched only with the GIL held.
std::unordered_set<PyEngine*>& open_engines() {
  static auto* set = new std::unordered_set<PyEngine*>();
  return *set;
}

class PyEngine {
 public:
  PyEngine(PyModel& model, std::optional<int> threads, EngineConfig config) {
    std::shared_ptr<ModelState> ms = model.state("Engine");
    LLMOS_CHECK_ARG(!threads || *threads > 0,
                    "Engine: threads must be positive (or None for the model's), got ",
                    threads.value_or(0));
    py::gil_scoped_release release;
    config.validate();
    if (threads && *threads != ms->backend->num_threads()) {
      // Its own backend and model instance (the file is mapped again, weights prepared
      // again): it runs beside the Model's forward pass instead of excluding it.
      BackendOptions options = ms->backend_options;
      options.num_threads = *threads;
      std::shared_ptr<Backend> backend = create_backend(options);
      std::shared_ptr<LlamaModel> own = LlamaModel::load(ms->path, backend);
      engine_ = std::make_shared<Engine>(std::move(own), std::move(config));
      return;
    }
    {
      std::lock_guard<std::mutex> lk(ms->forward_mu);
      ++ms->open_engines;
    }
    try {
      engine_ = std::shared_ptr<Engine>(new Engine(ms->model, std::move(config)), [ms](Engine* e) {
        delete e;  // joins the step thread: the forward pass is free after this
        std::lock_guard<std::mutex> lk(ms->forward_mu);
        --ms->open_engines;
      });
    } catch (...) {
      std::lock_guard<std::mutex> lk(ms->forward_mu);
      --ms->open_engines;
      throw;
    }
  }

  ~PyEngine() {  // Python's dealloc: the GIL is held
    open_engines().erase(this);
    close();
  }

  // Called with the GIL held.
  void close() {
    if (!engine_) return;
    std::shared_ptr<Engine> e = std::move(engine_);
    engine_.reset();
    py::gil_scoped_release release;
    for (uint64_t id : tracker_->take()) e->cancel(id);
    e.reset();
  }

  bool closed() const { return engine_ == nullptr; }

  Lease lease(const char* what) const {
    if (!engine_) throw ClosedError(std::string(what) + ": the engine is closed");
    return Lease(engine_);
  }

  uint64_t submit(const py::handle& prompt, const py::kwargs& kw) {
    Lease e = lease("Engine.submit");
    // The context switches (submit only): keep_context, resume_from=PATH.
    py::dict rest;
    bool keep_context = false;
    std::optional<std::string> resume_path;
    for (auto [key, value] : kw) {
      const std::string k = py::str(key);
      if (k == "keep_context") {
        keep_context = cast_arg<bool>(value, "keep_context");
      } else if (k == "resume_from") {
        if (!value.is_none()) resume_path = path_arg(value, "resume_from");
      } else {
        rest[key] = value;
      }
    }
    EngineRequest r = request_from_kwargs(rest, /*allow_callback=*/true);
    r.keep_context = keep_context;
    const bool empty_prompt = (py::isinstance<py::str>(prompt) || py::isinstance<py::list>(prompt) ||
                               py::isinstance<py::tuple>(prompt)) &&
                              py::len(prompt) == 0;
    // Resuming, an empty prompt adds nothing to the saved history; a text prompt is tokenized
    // without BOS (the engine's rule for continuations).
    if (!(resume_path && empty_prompt)) set_prompt(r, prompt);
    if (resume_path) {
      py::gil_scoped_release release;
      r.resume = std::make_shared<const ContextSnapshot>(
          load_file(*resume_path, [&] { return ContextSnapshot::load(*resume_path); }));
    }
    const bool callback = static_cast<bool>(r.on_event);
    if (callback) {
      // The tracker forgets the request once its final callback ran.
      r.on_event = [inner = std::move(r.on_event), tracker = tracker_](const TokenEvent& ev) {
        if (ev.finished) tracker->remove(ev.request_id);
        inner(ev);
      };
    }
    py::gil_scoped_release release;
    const uint64_t id = e->submit(std::move(r));
    // A callback request may already have ended and been untracked: then the id stays in the
    // tracker until close(), which cancelling an ended request does not mind. (No lock is held
    // across submit: a failed submit drops the callback, which takes the GIL.)
    tracker_->add(id);
    return id;
  }

  bool cancel(uint64_t id) {
    Lease e = lease("Engine.cancel");
    return e->cancel(id);
  }

  // One event; timeout None waits until there is one (Ctrl-C still interrupts).
  py::object next_event(uint64_t id, std::optional<double> timeout) {
    Lease e = lease("Engine.next_event");
    if (timeout) LLMOS_CHECK_ARG(*timeout >= 0, "next_event: timeout must be >= 0, got ", *timeout);
    std::optional<TokenEvent> ev;
    bool interrupted = false;
    {
      py::gil_scoped_release release;
      if (timeout) {
        ev = e->next_event(id, std::chrono::duration_cast<milliseconds>(
                                   std::chrono::duration<double>(*timeout)));
      } else {
        while (!(ev = e->next_event(id, kPoll))) {
          py::gil_scoped_acquire gil;
          if (PyErr_CheckSignals() != 0) {
            interrupted = true;
            break;
          }
        }
      }
    }
    if (interrupted) throw py::error_already_set();
    if (!ev) return py::none();
    if (ev->finished) tracker_->remove(id);
    return py::cast(PyTokenEvent{std::move(*ev)});
  }

  // Blocks until the request ends. Ctrl-C raises KeyboardInterrupt within kPoll; the request
  // keeps running and can be waited for (or cancelled) again.
  RequestResult wait(uint64_t id) {
    Lease e = lease("Engine.wait");
    std::optional<RequestResult> res;
    bool interrupted = false;
    {
      py::gil_scoped_release release;
      while (!(res = e->wait_for(id, kPoll))) {
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() != 0) {
          interrupted = true;
          break;
        }
      }
    }
    if (interrupted) throw py::error_already_set();
    tracker_->remove(id);
    return std::move(*res);
  }

  py::object generate(const py::handle& prompts, const py::kwargs& kw) {
    Lease e = lease("Engine.generate");
    const bool single = py::isinstance<py::str>(prompts);
    std::vector<std::string> texts;
    if (single) {
      texts.push_back(prompts.cast<std::string>());
    } else {
      if (!py::isinstance<py::list>(prompts) && !py::isinstance<py::tuple>(prompts)) {
        throw py::type_error("generate: prompts must be a str or a list of str, got " +
                             type_name(prompts));
      }
      texts = strings_arg(prompts, "generate: prompts");
    }
    const EngineRequest settings = request_from_kwargs(kw, /*allow_callback=*/false);
    std::vector<Collected> out(texts.size());
    bool interrupted = false;
    {
      py::gil_scoped_release release;
      interrupted = run_batch(*e.engine, texts, settings, out);
    }
    if (interrupted) throw py::error_already_set();
    for (const Collected& c : out) {
      if (c.reason == RequestFinishReason::kError)
        throw_error(StatusCode::kInternal, "request ", c.id, " failed: ", c.error);
      if (c.reason == RequestFinishReason::kCancelled)
        throw_error(StatusCode::kCancelled, "request ", c.id, " was cancelled (engine closed?)");
    }
    if (single) return to_str(out[0].text);
    py::list results(out.size());
    for (size_t i = 0; i < out.size(); ++i) results[i] = to_str(out[i].text);
    return results;
  }

  py::dict stats() const {
    Lease e = lease("Engine.stats");
    return stats_dict(e->stats());
  }

  // Writes the context kept by an ended keep_context request to `path` and releases it. A
  // failed write keeps the context here, so the call can be repeated with another path.
  void save_snapshot(uint64_t id, const py::handle& path) {
    Lease e = lease("Engine.save_snapshot");
    const std::string file = path_arg(path, "path");
    py::gil_scoped_release release;
    std::shared_ptr<ContextSnapshot> snap;
    {
      std::lock_guard<std::mutex> lk(unsaved_mu_);
      auto it = unsaved_.find(id);
      if (it != unsaved_.end()) {
        snap = std::move(it->second);
        unsaved_.erase(it);
      }
    }
    if (!snap) snap = e->take_snapshot(id);
    try {
      snap->save(file);
    } catch (...) {
      std::lock_guard<std::mutex> lk(unsaved_mu_);
      unsaved_[id] = std::move(snap);
      throw;
    }
  }

 private:
  void set_prompt(EngineRequest& r, const py::handle& prompt) const {
    if (py::isinstance<py::str>(prompt)) {
      r.prompt = prompt.cast<std::string>();
    } else {
      r.prompt_tokens = tokens_from_python(prompt, "prompt");
      LLMOS_CHECK_ARG(!r.prompt_tokens.empty(), "prompt: the token list is empty");
    }
  }

  // Submits every prompt and collects their events; GIL released. Returns true when Ctrl-C
  // interrupted the wait (the Python error is set; every request is cancelled and released).
  bool run_batch(Engine& e, const std::vector<std::string>& texts, const EngineRequest& settings,
                 std::vector<Collected>& out) {
    size_t submitted = 0;
    auto abandon = [&] {
      for (size_t i = 0; i < submitted; ++i) {
        if (!out[i].done) e.cancel(out[i].id);
      }
      for (size_t i = 0; i < submitted; ++i) {
        if (out[i].done) continue;
        try {
          e.wait(out[i].id);
        } catch (const Error&) {
          // released by close() meanwhile: nothing left to free
        }
        tracker_->remove(out[i].id);
      }
    };
    try {
      for (; submitted < texts.size(); ++submitted) {
        EngineRequest r = settings;
        r.prompt = texts[submitted];
        out[submitted].id = e.submit(std::move(r));
        tracker_->add(out[submitted].id);
      }
      // Ctrl-C is looked for every kPoll, whether or not events keep arriving.
      auto next_check = std::chrono::steady_clock::now() + kPoll;
      for (Collected& c : out) {
        while (!c.done) {
          std::optional<TokenEvent> ev = e.next_event(c.id, kPoll);
          if (!ev || std::chrono::steady_clock::now() >= next_check) {
            bool interrupted = false;
            {
              py::gil_scoped_acquire gil;
              interrupted = PyErr_CheckSignals() != 0;  // the error stays set for the caller
            }
            next_check = std::chrono::steady_clock::now() + kPoll;
            if (interrupted) {
              abandon();  // without the GIL: the step loop may need it for a callback
              return true;
            }
            if (!ev) continue;
          }
          c.text += ev->text;
          if (!ev->finished) {
            c.tokens.push_back(ev->token);
            continue;
          }
          c.done = true;
          c.reason = ev->finish_reason;
          c.error = ev->error;
          tracker_->remove(c.id);
        }
      }
    } catch (...) {
      abandon();
      throw;
    }
    return false;
  }

  std::shared_ptr<Engine> engine_;
  std::shared_ptr<Tracker> tracker_ = std::make_shared<Tracker>();
  std::mutex unsaved_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<ContextSnapshot>> unsaved_;  // failed saves
};

EngineConfig config_from_python(int64_t kv_cache_blocks, int64_t kv_cache_bytes, int block_size,
                                const std::string& kv_dtype, bool prefix_caching,
                                double watermark, int64_t swap_space_bytes,
                                int32_t max_batched_tokens, int32_t max_sequences,
                                int32_t max_model_len, bool chunked_prefill,
                                const std::string& preemption, int32_t aging_steps,
                                const py::object& quotas, const py::object& default_quota,
                                bool reject_unknown_clients) {
  EngineConfig c;
  c.kv_cache_blocks = kv_cache_blocks;
  c.kv_cache_bytes = kv_cache_bytes;
  c.block_size = block_size;
  c.kv_dtype = DType::kF16;
  bool dtype_ok = false;
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    if (kv_dtype == dtype_name(d)) {
      c.kv_dtype = d;
      dtype_ok = true;
    }
  }
  LLMOS_CHECK_ARG(dtype_ok, "Engine: kv_dtype must be 'f32', 'f16' or 'bf16', got '", kv_dtype,
                  "'");
  c.enable_prefix_caching = prefix_caching;
  c.watermark = watermark;
  c.swap_space_bytes = swap_space_bytes;
  c.max_batched_tokens = max_batched_tokens;
  c.max_sequences = max_sequences;
  c.max_model_len = max_model_len;
  c.chunked_prefill = chunked_prefill;
  if (preemption == "recompute") {
    c.preemption = PreemptionMode::kRecompute;
  } else if (preemption == "swap") {
    c.preemption = PreemptionMode::kSwap;
  } else {
    throw_error(StatusCode::kInvalidArgument,
                "Engine: preemption must be 'recompute' or 'swap', got '", preemption, "'");
  }
  c.aging_steps = aging_steps;
  if (!quotas.is_none()) {
    if (!py::isinstance<py::dict>(quotas)) throw py::type_error("Engine: quotas must be a dict");
    for (auto [client, quota] : py::reinterpret_borrow<py::dict>(quotas)) {
      const std::string name = cast_arg<std::string>(client, "Engine: quotas key");
      c.quotas[name] = quota_from_python(quota, "Engine: quotas['" + name + "']");
    }
  }
  if (!default_quota.is_none()) c.default_quota = quota_from_python(default_quota, "Engine: default_quota");
  c.reject_unknown_clients = reject_unknown_clients;
  return c;
}

}  // namespace

void register_engine(py::module_& m) {
  py::class_<PyTokenEvent>(m, "TokenEvent", "One streamed event of a request.")
      .def_property_readonly("request_id", [](const PyTokenEvent& e) { return e.ev.request_id; })
      .def_property_readonly("finished", [](const PyTokenEvent& e) { return e.ev.finished; })
      .def_property_readonly("token", [](const PyTokenEvent& e) -> py::object {
        if (e.ev.finished) return py::none();
        return py::int_(e.ev.token);
      })
      .def_property_readonly("text", [](const PyTokenEvent& e) { return to_str(e.ev.text); })
      .def_property_readonly("finish_reason", [](const PyTokenEvent& e) -> py::object {
        if (!e.ev.finished) return py::none();
        return py::str(request_finish_reason_name(e.ev.finish_reason));
      })
      .def_property_readonly("error", [](const PyTokenEvent& e) -> py::object {
        if (e.ev.error.empty()) return py::none();
        return to_str(e.ev.error);
      })
      .def("__repr__", [](const PyTokenEvent& e) {
        std::string s = "<llmos.TokenEvent request " + std::to_string(e.ev.request_id);
        if (e.ev.finished) return s + " finished: " + request_finish_reason_name(e.ev.finish_reason) + ">";
        return s + " token " + std::to_string(e.ev.token) + ">";
      });

  py::class_<RequestResult>(m, "RequestResult", "The whole outcome of a request (Engine.wait).")
      .def_readonly("id", &RequestResult::id)
      .def_readonly("prompt_tokens", &RequestResult::prompt_tokens)
      .def_readonly("tokens", &RequestResult::tokens)
      .def_property_readonly("text", [](const RequestResult& r) { return to_str(r.text); })
      .def_property_readonly("finish_reason", [](const RequestResult& r) {
        return std::string(request_finish_reason_name(r.finish_reason));
      })
      .def_property_readonly("error", [](const RequestResult& r) -> py::object {
        if (r.error.empty()) return py::none();
        return to_str(r.error);
      })
      .def_readonly("time_to_first_token", &RequestResult::time_to_first_token)
      .def_readonly("total_time", &RequestResult::total_time)
      .def_readonly("num_preemptions", &RequestResult::num_preemptions)
      .def_readonly("num_cached_prompt_tokens", &RequestResult::num_cached_prompt_tokens)
      .def("__repr__", [](const RequestResult& r) {
        return "<llmos.RequestResult " + std::to_string(r.id) + ": " +
               std::to_string(r.tokens.size()) + " tokens, " +
               request_finish_reason_name(r.finish_reason) + ">";
      });

  py::class_<PyEngine>(m, "Engine", "The multi-client serving engine over a Model.")
      .def(py::init([](PyModel& model, std::optional<int> threads, int64_t kv_cache_blocks,
                       int64_t kv_cache_bytes, int block_size, const std::string& kv_dtype,
                       bool prefix_caching, double watermark, int64_t swap_space_bytes,
                       int32_t max_batched_tokens, int32_t max_sequences, int32_t max_model_len,
                       bool chunked_prefill, const std::string& preemption, int32_t aging_steps,
                       const py::object& quotas, const py::object& default_quota,
                       bool reject_unknown_clients) {
             EngineConfig config = config_from_python(
                 kv_cache_blocks, kv_cache_bytes, block_size, kv_dtype, prefix_caching, watermark,
                 swap_space_bytes, max_batched_tokens, max_sequences, max_model_len,
                 chunked_prefill, preemption, aging_steps, quotas, default_quota,
                 reject_unknown_clients);
             auto engine = std::make_unique<PyEngine>(model, threads, std::move(config));
             open_engines().insert(engine.get());  // erased by its destructor
             return engine;
           }),
           py::arg("model"), py::kw_only(), py::arg("threads") = py::none(),
           py::arg("kv_cache_blocks") = 0, py::arg("kv_cache_bytes") = 0,
           py::arg("block_size") = 16, py::arg("kv_dtype") = "f16",
           py::arg("prefix_caching") = true, py::arg("watermark") = 0.01,
           py::arg("swap_space_bytes") = int64_t{256} << 20, py::arg("max_batched_tokens") = 512,
           py::arg("max_sequences") = 64, py::arg("max_model_len") = 0,
           py::arg("chunked_prefill") = true, py::arg("preemption") = "recompute",
           py::arg("aging_steps") = 64, py::arg("quotas") = py::none(),
           py::arg("default_quota") = py::none(), py::arg("reject_unknown_clients") = false)
      .def("close", &PyEngine::close,
           "Cancels this engine's requests and stops it once no call is using it.")
      .def_property_readonly("closed", &PyEngine::closed)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyEngine& self, const py::args&) { self.close(); })
      .def("submit", &PyEngine::submit, py::arg("prompt"))
      .def("cancel", &PyEngine::cancel, py::arg("request_id"))
      .def("next_event", &PyEngine::next_event, py::arg("request_id"),
           py::arg("timeout") = py::none())
      .def("wait", &PyEngine::wait, py::arg("request_id"))
      .def("generate", &PyEngine::generate, py::arg("prompts"))
      .def("save_snapshot", &PyEngine::save_snapshot, py::arg("request_id"), py::arg("path"),
           "Writes the context kept by an ended request submitted with keep_context=True (its "
           "token history and K/V) to path, and releases it. submit(prompt, resume_from=path) "
           "continues it, in this engine or another serving the same model.")
      .def("stats", &PyEngine::stats)
      .def("tokenize", [](const PyEngine& self, const py::handle& text, bool add_bos, bool parse_special) {
        Lease e = self.lease("Engine.tokenize");
        return tokenize(e->model().tokenizer(), text, add_bos, parse_special);
      }, py::arg("text"), py::arg("add_bos") = true, py::arg("parse_special") = false)
      .def("detokenize", [](const PyEngine& self, const py::handle& tokens, bool special) {
        Lease e = self.lease("Engine.detokenize");
        return detokenize(e->model().tokenizer(), tokens, special);
      }, py::arg("tokens"), py::arg("special") = false)
      .def_property_readonly("max_model_len", [](const PyEngine& self) {
        return self.lease("Engine.max_model_len")->config().max_model_len;
      })
      .def_property_readonly("kv_cache_blocks", [](const PyEngine& self) {
        return self.lease("Engine.kv_cache_blocks")->stats().kv.total_blocks;
      });

  m.def("_close_all_engines", [] {
    for (PyEngine* e : open_engines()) e->close();  // close() leaves the registry alone
  });
  py::module_::import("atexit").attr("register")(m.attr("_close_all_engines"));
}

}  // namespace llmos::python
