// One error type for all of llmos: a status code plus a message that names what is wrong
// (file, field, offset, argument). Library code throws llmos::Error; kernels never throw and
// return a StatusCode instead; the C API converts Error into llmos_status + last-error text.
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <utility>

namespace llmos {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,
  kIo = 2,
  kFormat = 3,
  kUnsupported = 4,
  kOutOfMemory = 5,
  kCancelled = 6,
  kNotFound = 7,
  kBusy = 8,
  kInternal = 9,
};

const char* status_code_name(StatusCode code);

class Error : public std::exception {
 public:
  Error(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  StatusCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  StatusCode code_;
  std::string message_;
};

// Builds a message from any streamable pieces: throw_error(kFormat, "file ", path, ": bad magic").
std::string concat_message(std::initializer_list<std::string_view> parts);

namespace detail {
template <typename T>
void append_piece(std::string& out, const T& value);
}  // namespace detail

template <typename... Args>
[[noreturn]] void throw_error(StatusCode code, const Args&... args) {
  std::string message;
  (detail::append_piece(message, args), ...);
  throw Error(code, std::move(message));
}

// Checks an argument precondition; the message names the argument and what it should be.
#define LLMOS_CHECK_ARG(cond, ...)                                            \
  do {                                                                        \
    if (!(cond)) ::llmos::throw_error(::llmos::StatusCode::kInvalidArgument, __VA_ARGS__); \
  } while (0)

// An internal invariant; failing it is a bug in llmos, reported as kInternal rather than UB.
#define LLMOS_ASSERT(cond)                                                                 \
  do {                                                                                     \
    if (!(cond))                                                                           \
      ::llmos::throw_error(::llmos::StatusCode::kInternal, "internal check failed: " #cond \
                           " at " __FILE__ ":", __LINE__);                                 \
  } while (0)

}  // namespace llmos

#include "core/error_inl.h"
