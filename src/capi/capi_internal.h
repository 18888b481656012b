// Shared machinery of the C API implementation: the objects behind the opaque handles, the
// handle registries that make stale or foreign pointers an error instead of a crash, and the
// wrapper that turns every C++ exception into an llmos_status plus the thread's last error.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "backend/backend.h"
#include "core/error.h"
#include "engine/engine.h"
#include "llmos/llmos.h"
#include "model/llama_model.h"

// The handle types are declared (incomplete) by llmos.h in the global namespace.
struct llmos_model {
  std::shared_ptr<llmos::LlamaModel> model;
  llmos::BackendOptions backend_options;
  // One engine at a time may run on `model` itself (a LlamaModel runs one step at a time);
  // others get their own LlamaModel over the same mapped file.
  std::atomic<bool> attached{false};
  // llmos_score: one scoring pass at a time; it borrows `model` when no engine holds it, else
  // runs on `scorer`, a LlamaModel with a backend of its own, built on first need.
  std::mutex score_mu;
  std::shared_ptr<llmos::LlamaModel> scorer;
};

struct llmos_engine {
  // Declared before `engine` so they outlive it: its step thread uses them until joined.
  std::shared_ptr<llmos_model> source;
  bool attached = false;  // holds source->attached
  std::mutex mu;
  std::unordered_set<uint64_t> live;  // requests not yet known to have ended
  // Snapshots taken from the engine whose saving failed, kept so a retry can succeed.
  std::unordered_map<uint64_t, std::shared_ptr<llmos::ContextSnapshot>> unsaved;
  std::unique_ptr<llmos::Engine> engine;

  ~llmos_engine();
};

namespace llmos::capi {

// A status with a message, for failures that are not llmos::Error codes.
struct CapiFailure {
  llmos_status status;
  std::string message;
};

// Sets the calling thread's last error and returns `status`. Never throws.
llmos_status fail(llmos_status status, std::string_view message) noexcept;

llmos_status status_from_code(StatusCode code);

// Runs `body` (which returns llmos_status); maps every exception to a status with the message
// prefixed by `function`.
template <typename F>
llmos_status guarded(const char* function, F&& body) noexcept {
  try {
    return body();
  } catch (const CapiFailure& f) {
    return fail(f.status, std::string(function) + ": " + f.message);
  } catch (const Error& e) {
    return fail(status_from_code(e.code()), std::string(function) + ": " + e.message());
  } catch (const std::bad_alloc&) {
    return fail(LLMOS_ERR_OUT_OF_MEMORY, std::string(function) + ": out of memory");
  } catch (const std::exception& e) {
    return fail(LLMOS_ERR_INTERNAL, std::string(function) + ": internal error: " + e.what());
  } catch (...) {
    return fail(LLMOS_ERR_INTERNAL, std::string(function) + ": internal error");
  }
}

[[noreturn]] inline void invalid(std::string message) {
  throw CapiFailure{LLMOS_ERR_INVALID_ARGUMENT, std::move(message)};
}

inline void require(bool ok, const char* what) {
  if (!ok) invalid(what);
}

// Live handles. Lookups return a shared_ptr so an object stays alive for the duration of a
// call even when another thread frees its handle meanwhile; a freed or foreign pointer is
// simply not found. The maps live forever (never destroyed at exit), so a handle leaked by the
// application never runs its destructor during static destruction.
template <typename T>
class Registry {
 public:
  T* add(std::shared_ptr<T> object) {
    T* raw = object.get();
    std::lock_guard<std::mutex> lk(mu_);
    map_.emplace(raw, std::move(object));
    return raw;
  }
  std::shared_ptr<T> find(const void* handle) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = map_.find(handle);
    return it == map_.end() ? nullptr : it->second;
  }
  std::shared_ptr<T> take(const void* handle) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = map_.find(handle);
    if (it == map_.end()) return nullptr;
    std::shared_ptr<T> object = std::move(it->second);
    map_.erase(it);
    return object;
  }

 private:
  std::mutex mu_;
  std::unordered_map<const void*, std::shared_ptr<T>> map_;
};

Registry<llmos_model>& models();
Registry<llmos_engine>& engines();

// The live object behind a handle, or kInvalidArgument naming the argument.
std::shared_ptr<llmos_model> get_model(const llmos_model* handle, const char* arg = "model");
std::shared_ptr<llmos_engine> get_engine(const llmos_engine* handle, const char* arg = "engine");

// The engine whose callback is running on this thread (nullptr outside callbacks): blocking on
// that engine from inside its own callback would deadlock its step thread.
const llmos_engine*& callback_engine();

// Copies a caller's param struct over `defaults`: struct_size must be set, and no larger than
// this library knows (a newer header's fields cannot be honoured silently).
template <typename T>
T read_params(const T* user, T defaults, const char* what) {
  if (user == nullptr) return defaults;
  if (user->struct_size < sizeof(size_t)) {
    invalid(std::string(what) + "->struct_size is " + std::to_string(user->struct_size) +
            ": initialise the struct with its llmos_*_default() function");
  }
  if (user->struct_size > sizeof(T)) {
    throw CapiFailure{LLMOS_ERR_UNSUPPORTED,
                      std::string(what) + "->struct_size " + std::to_string(user->struct_size) +
                          " exceeds this library's " + std::to_string(sizeof(T)) +
                          " (built from a newer llmos.h)"};
  }
  std::memcpy(static_cast<void*>(&defaults), user, user->struct_size);
  defaults.struct_size = sizeof(T);
  return defaults;
}

// Writes `value` to the caller's output struct up to the struct_size the caller set.
template <typename T>
void write_output(T* user, T value, const char* what) {
  if (user->struct_size < sizeof(size_t)) {
    invalid(std::string(what) + "->struct_size is " + std::to_string(user->struct_size) +
            ": set it to sizeof the struct before the call");
  }
  const size_t n = std::min(user->struct_size, sizeof(T));
  value.struct_size = user->struct_size;
  std::memcpy(static_cast<void*>(user), &value, n);
}

// Copies text into a caller's buffer: NUL-terminated, *n_out = length; BUFFER_TOO_SMALL with
// *n_out = the capacity needed (the buffer then holds a truncated, terminated prefix).
llmos_status copy_text(std::string_view text, char* out, size_t capacity, size_t* n_out,
                       const char* function);

// Submits through the engine and records the id as live (under e.mu, so a final callback that
// races with the submission finds it); forget() drops it once the request is known to have ended.
uint64_t submit_tracked(llmos_engine& e, EngineRequest request);
void forget(llmos_engine& e, uint64_t id);

SamplingParams to_sampling(const llmos_sampling_params& p, int32_t* max_tokens, bool* ignore_eos);

}  // namespace llmos::capi
