#include "cli/model_source.h"

#include <cstdlib>
#include <filesystem>

#include "model/random_model.h"

namespace llmos::cli {
namespace {

std::string cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/llmos";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::string(home) + "/.cache/llmos";
  }
  return std::filesystem::temp_directory_path().string() + "/llmos";
}

}  // namespace

std::optional<ModelSource> resolve_model(const std::optional<std::string>& flag, bool allow_default) {
  if (flag && !flag->empty()) return ModelSource{*flag, false};
  if (const char* env = std::getenv("LLMOS_MODEL"); env != nullptr && *env != '\0') {
    return ModelSource{env, false};
  }
  if (!allow_default) return std::nullopt;
  const RandomModelSpec spec = default_demo_model_spec();
  const std::string dir = cache_dir();
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/embedded-default-" + std::to_string(spec.seed) + ".gguf";
  // Written fresh each time: it takes milliseconds and never goes stale across versions.
  write_random_model(spec, path);
  return ModelSource{path, true};
}

}  // namespace llmos::cli
