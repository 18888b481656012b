// Where tests find shared data (../shared, or $LLMOS_SHARED_DIR) and the built CLI.
#pragma once

#include <string>

namespace llmos::test {

// Directory holding models/ and vocab/; $LLMOS_SHARED_DIR overrides the configured default.
std::string shared_dir();
// Absolute path of a file under shared_dir(), e.g. shared_path("models/stories260K.gguf").
std::string shared_path(const std::string& relative);
bool shared_file_exists(const std::string& relative);
// Path of the built `llmos` binary.
std::string cli_path();
// A fresh temporary directory for this test process (removed at exit).
std::string temp_dir();

}  // namespace llmos::test

// Skips the current test, naming the missing shared file.
#define LLMOS_REQUIRE_SHARED(relative)                                                      \
  do {                                                                                      \
    if (!::llmos::test::shared_file_exists(relative))                                       \
      GTEST_SKIP() << "shared data not found: " << ::llmos::test::shared_path(relative)     \
                   << " (set LLMOS_SHARED_DIR)";                                            \
  } while (0)
