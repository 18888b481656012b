// A small command-line parser for the llmos subcommands: declared options, clear errors.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace llmos::cli {

// Thrown for a bad command line; the caller prints the message and the usage and exits 2.
struct UsageError {
  std::string message;
};

struct OptionSpec {
  std::string short_name;   // "-m" (may be empty)
  std::string long_name;    // "--model"
  std::string value_name;   // "PATH"; empty for a flag
  std::string help;
};

class Args {
 public:
  Args(std::string command, std::string summary, std::vector<OptionSpec> options);

  // Parses argv[first..argc); throws UsageError naming the offending argument.
  void parse(int argc, char** argv, int first);

  bool has(const std::string& long_name) const;
  std::optional<std::string> get(const std::string& long_name) const;
  std::string get_or(const std::string& long_name, const std::string& fallback) const;
  // Typed getters validate the text and the range, naming the option on error.
  int64_t get_int(const std::string& long_name, int64_t fallback, int64_t min, int64_t max) const;
  double get_double(const std::string& long_name, double fallback, double min, double max) const;
  uint64_t get_u64(const std::string& long_name, uint64_t fallback) const;

  std::string usage() const;

 private:
  const OptionSpec* find(const std::string& name) const;

  std::string command_;
  std::string summary_;
  std::vector<OptionSpec> options_;
  std::map<std::string, std::string> values_;  // by long name
};

}  // namespace llmos::cli
