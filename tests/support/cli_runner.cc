#include "support/cli_runner.h"

#include <array>
#include <atomic>
#include <cstdio>
#include <sys/wait.h>

#include "support/mini_json.h"
#include "support/test_paths.h"

namespace llmos::test {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

CliResult run_cli(const std::vector<std::string>& args, const std::string& env) {
  static std::atomic<int> counter{0};
  const std::string err_path = temp_dir() + "/stderr-" + std::to_string(counter++) + ".txt";
  std::string cmd = env + " " + shell_quote(cli_path());
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " 2>" + shell_quote(err_path) + " </dev/null";
  CliResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_file(err_path);
  return r;
}

}  // namespace llmos::test
