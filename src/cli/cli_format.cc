#include "cli/cli_format.h"

#include "core/error.h"

#include <cstdio>

namespace llmos::cli {

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

DType parse_kv_dtype(const Args& args) {
  const std::string text = args.get_or("--kv-dtype", "f16");
  const auto dtype = dtype_from_name(text);
  if (!dtype || (*dtype != DType::kF32 && *dtype != DType::kF16 && *dtype != DType::kBF16)) {
    throw UsageError{"option --kv-dtype must be f32, f16 or bf16, got '" + text + "'"};
  }
  return *dtype;
}

SamplingParams parse_sampling_options(const Args& args) {
  SamplingParams s;
  s.temperature = static_cast<float>(args.get_double("--temp", 0.8, 0.0, 1e6));
  s.top_k = static_cast<int32_t>(args.get_int("--top-k", 40, 0, 1 << 30));
  s.top_p = static_cast<float>(args.get_double("--top-p", 0.95, 1e-9, 1.0));
  s.min_p = static_cast<float>(args.get_double("--min-p", 0.05, 0.0, 1.0));
  s.repeat_penalty = static_cast<float>(args.get_double("--repeat-penalty", 1.0, 1e-6, 1e6));
  s.repeat_last_n = static_cast<int32_t>(args.get_int("--repeat-last-n", 64, 0, 1 << 24));
  return s;
}

Device parse_device_option(const Args& args) {
  try {
    return parse_device(args.get_or("--device", "cpu"));
  } catch (const Error& e) {
    throw UsageError{e.message()};
  }
}

}  // namespace llmos::cli
