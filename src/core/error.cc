#include "core/error.h"

namespace llmos {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kIo: return "i/o error";
    case StatusCode::kFormat: return "format error";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kOutOfMemory: return "out of memory";
    case StatusCode::kCancelled: return "cancelled";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kBusy: return "busy";
    case StatusCode::kInternal: return "internal error";
  }
  return "unknown status";
}

std::string concat_message(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto p : parts) out += p;
  return out;
}

}  // namespace llmos
