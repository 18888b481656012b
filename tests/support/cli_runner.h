// Runs the built `llmos` binary the way a user does and captures what it prints.
#pragma once

#include <string>
#include <vector>

namespace llmos::test {

struct CliResult {
  int status = -1;   // exit status; -1 when the process did not exit normally
  std::string out;   // stdout
  std::string err;   // stderr
};

// Runs `llmos args...` with stdin from /dev/null. `env` is a prefix of shell assignments such
// as "LLMOS_MODEL= HOME=/tmp/x" (values must already be shell-quoted).
CliResult run_cli(const std::vector<std::string>& args, const std::string& env = "");

std::string shell_quote(const std::string& s);
bool contains(const std::string& haystack, const std::string& needle);

}  // namespace llmos::test
