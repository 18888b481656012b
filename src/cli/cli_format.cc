#include "cli/cli_format.h"

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

}  // namespace llmos::cli
