// The C API's shared entry points (version, status names, last error, logging) and the
// helpers every other entry point uses.
#include <mutex>
#include <string>

#include "capi/capi_internal.h"
#include "core/logging.h"
#include "llmos/version.h"

namespace llmos::capi {
namespace {

thread_local std::string t_last_error;

// The application's log callback; llmos::set_log_callback takes a C++ signature, so a
// trampoline adapts it (string_view -> NUL-terminated text).
std::mutex g_log_mu;
llmos_log_callback g_log_callback = nullptr;
void* g_log_user_data = nullptr;

void log_trampoline(LogLevel level, std::string_view message, void* /*unused*/) {
  // llmos::log_message serialises calls, so the callback sees one message at a time.
  llmos_log_callback cb;
  void* user;
  {
    std::lock_guard<std::mutex> lk(g_log_mu);
    cb = g_log_callback;
    user = g_log_user_data;
  }
  if (cb == nullptr) return;
  try {
    const std::string text(message);
    cb(static_cast<llmos_log_level>(static_cast<int>(level)), text.c_str(), user);
  } catch (...) {
    // A message that cannot be copied is dropped; logging never fails the caller.
  }
}

}  // namespace

llmos_status fail(llmos_status status, std::string_view message) noexcept {
  try {
    t_last_error.assign(message);
  } catch (...) {
    t_last_error.clear();  // out of memory for the message itself: keep the status
  }
  return status;
}

llmos_status status_from_code(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return LLMOS_OK;
    case StatusCode::kInvalidArgument: return LLMOS_ERR_INVALID_ARGUMENT;
    case StatusCode::kIo: return LLMOS_ERR_IO;
    case StatusCode::kFormat: return LLMOS_ERR_FORMAT;
    case StatusCode::kUnsupported: return LLMOS_ERR_UNSUPPORTED;
    case StatusCode::kOutOfMemory: return LLMOS_ERR_OUT_OF_MEMORY;
    case StatusCode::kCancelled: return LLMOS_ERR_CANCELLED;
    case StatusCode::kNotFound: return LLMOS_ERR_NOT_FOUND;
    case StatusCode::kBusy: return LLMOS_ERR_BUSY;
    case StatusCode::kInternal: return LLMOS_ERR_INTERNAL;
  }
  return LLMOS_ERR_INTERNAL;
}

Registry<llmos_model>& models() {
  static auto* registry = new Registry<llmos_model>();
  return *registry;
}

Registry<llmos_engine>& engines() {
  static auto* registry = new Registry<llmos_engine>();
  return *registry;
}

std::shared_ptr<llmos_model> get_model(const llmos_model* handle, const char* arg) {
  if (handle == nullptr) invalid(std::string(arg) + " is NULL");
  std::shared_ptr<llmos_model> m = models().find(handle);
  if (!m) invalid(std::string(arg) + " is not a live llmos_model (freed or never created)");
  return m;
}

std::shared_ptr<llmos_engine> get_engine(const llmos_engine* handle, const char* arg) {
  if (handle == nullptr) invalid(std::string(arg) + " is NULL");
  std::shared_ptr<llmos_engine> e = engines().find(handle);
  if (!e) invalid(std::string(arg) + " is not a live llmos_engine (freed or never created)");
  return e;
}

const llmos_engine*& callback_engine() {
  thread_local const llmos_engine* engine = nullptr;
  return engine;
}

llmos_status copy_text(std::string_view text, char* out, size_t capacity, size_t* n_out,
                       const char* function) {
  if (capacity > text.size()) {
    require(out != nullptr, "text_out is NULL while capacity is not 0");
    std::memcpy(out, text.data(), text.size());
    out[text.size()] = '\0';
    *n_out = text.size();
    return LLMOS_OK;
  }
  if (capacity > 0) {
    require(out != nullptr, "text_out is NULL while capacity is not 0");
    std::memcpy(out, text.data(), capacity - 1);
    out[capacity - 1] = '\0';
  }
  *n_out = text.size() + 1;
  return fail(LLMOS_ERR_BUFFER_TOO_SMALL, std::string(function) + ": the text needs a buffer of " +
                                              std::to_string(text.size() + 1) +
                                              " bytes, capacity is " + std::to_string(capacity));
}

SamplingParams to_sampling(const llmos_sampling_params& p, int32_t* max_tokens, bool* ignore_eos) {
  SamplingParams s;
  s.temperature = p.temperature;
  s.top_k = p.top_k;
  s.top_p = p.top_p;
  s.min_p = p.min_p;
  s.repeat_penalty = p.repeat_penalty;
  s.repeat_last_n = p.repeat_last_n;
  s.seed = p.seed;
  s.validate();
  if (p.max_tokens <= 0) {
    invalid("sampling->max_tokens must be positive, got " + std::to_string(p.max_tokens));
  }
  *max_tokens = p.max_tokens;
  *ignore_eos = p.ignore_eos != 0;
  return s;
}

}  // namespace llmos::capi

using namespace llmos::capi;

extern "C" {

LLMOS_API const char* llmos_version(void) { return LLMOS_VERSION_STRING; }

LLMOS_API const char* llmos_status_string(llmos_status status) {
  // A C caller may pass any int; reading it as the enum would be undefined for values outside
  // the enum's range, so its bytes are read as an int.
  int value;
  static_assert(sizeof value == sizeof status);
  std::memcpy(&value, &status, sizeof value);
  switch (value) {
    case LLMOS_OK: return "LLMOS_OK";
    case LLMOS_ERR_INVALID_ARGUMENT: return "LLMOS_ERR_INVALID_ARGUMENT";
    case LLMOS_ERR_IO: return "LLMOS_ERR_IO";
    case LLMOS_ERR_FORMAT: return "LLMOS_ERR_FORMAT";
    case LLMOS_ERR_UNSUPPORTED: return "LLMOS_ERR_UNSUPPORTED";
    case LLMOS_ERR_OUT_OF_MEMORY: return "LLMOS_ERR_OUT_OF_MEMORY";
    case LLMOS_ERR_CANCELLED: return "LLMOS_ERR_CANCELLED";
    case LLMOS_ERR_NOT_FOUND: return "LLMOS_ERR_NOT_FOUND";
    case LLMOS_ERR_BUSY: return "LLMOS_ERR_BUSY";
    case LLMOS_ERR_INTERNAL: return "LLMOS_ERR_INTERNAL";
    case LLMOS_ERR_BUFFER_TOO_SMALL: return "LLMOS_ERR_BUFFER_TOO_SMALL";
    case LLMOS_ERR_TIMEOUT: return "LLMOS_ERR_TIMEOUT";
  }
  return "unknown status";
}

LLMOS_API const char* llmos_last_error(void) { return t_last_error.c_str(); }

LLMOS_API llmos_status llmos_set_log_callback(llmos_log_callback callback, void* user_data) {
  return guarded("llmos_set_log_callback", [&] {
    {
      std::lock_guard<std::mutex> lk(g_log_mu);
      g_log_callback = callback;
      g_log_user_data = user_data;
    }
    llmos::set_log_callback(callback != nullptr ? &log_trampoline : nullptr, nullptr);
    return LLMOS_OK;
  });
}

}  // extern "C"
