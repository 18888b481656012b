// Which model file a command uses: -m/--model, else $LLMOS_MODEL, else (for commands that
// allow it) the embedded default random-weight model, written once to a cache file.
#pragma once

#include <optional>
#include <string>

namespace llmos::cli {

struct ModelSource {
  std::string path;
  bool embedded_default = false;
};

// Returns the model to use; nullopt when none was given and the default is not allowed.
std::optional<ModelSource> resolve_model(const std::optional<std::string>& flag, bool allow_default);

}  // namespace llmos::cli
