#include "support/test_paths.h"

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <unistd.h>

namespace llmos::test {

std::string shared_dir() {
  if (const char* env = std::getenv("LLMOS_SHARED_DIR"); env != nullptr && *env != '\0') return env;
  return LLMOS_DEFAULT_SHARED_DIR;
}

std::string shared_path(const std::string& relative) { return shared_dir() + "/" + relative; }

bool shared_file_exists(const std::string& relative) {
  std::error_code ec;
  return std::filesystem::exists(shared_path(relative), ec);
}

std::string cli_path() { return LLMOS_CLI_PATH; }

namespace {
struct TempDir {
  std::string path;
  TempDir() {
    auto base = std::filesystem::temp_directory_path() /
                ("llmos-test-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
    std::filesystem::create_directories(base);
    path = base.string();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};
}  // namespace

std::string temp_dir() {
  static TempDir dir;
  return dir.path;
}

}  // namespace llmos::test
