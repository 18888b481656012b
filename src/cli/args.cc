#include "cli/args.h"

#include <cerrno>
#include <cstdlib>

namespace llmos::cli {

Args::Args(std::string command, std::string summary, std::vector<OptionSpec> options)
    : command_(std::move(command)), summary_(std::move(summary)), options_(std::move(options)) {
  options_.push_back({"-h", "--help", "", "show this help"});
}

const OptionSpec* Args::find(const std::string& name) const {
  for (const auto& o : options_) {
    if (name == o.long_name || (!o.short_name.empty() && name == o.short_name)) return &o;
  }
  return nullptr;
}

void Args::parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> inline_value;
    if (arg.rfind("--", 0) == 0) {
      const size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        inline_value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
      }
    }
    const OptionSpec* spec = find(arg);
    if (spec == nullptr) throw UsageError{"unknown option '" + arg + "' for 'llmos " + command_ + "'"};
    if (spec->value_name.empty()) {
      if (inline_value) throw UsageError{"option " + arg + " takes no value"};
      values_[spec->long_name] = "1";
      continue;
    }
    if (inline_value) {
      values_[spec->long_name] = *inline_value;
    } else {
      if (i + 1 >= argc) throw UsageError{"option " + arg + " needs a value (" + spec->value_name + ")"};
      values_[spec->long_name] = argv[++i];
    }
  }
}

bool Args::has(const std::string& long_name) const { return values_.count(long_name) != 0; }

std::optional<std::string> Args::get(const std::string& long_name) const {
  auto it = values_.find(long_name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Args::get_or(const std::string& long_name, const std::string& fallback) const {
  return get(long_name).value_or(fallback);
}

int64_t Args::get_int(const std::string& long_name, int64_t fallback, int64_t min, int64_t max) const {
  auto v = get(long_name);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno == ERANGE) {
    throw UsageError{"option " + long_name + " expects an integer, got '" + *v + "'"};
  }
  if (x < min || x > max) {
    throw UsageError{"option " + long_name + " must be between " + std::to_string(min) + " and " +
                     std::to_string(max) + ", got " + *v};
  }
  return x;
}

double Args::get_double(const std::string& long_name, double fallback, double min, double max) const {
  auto v = get(long_name);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || errno == ERANGE || x != x) {
    throw UsageError{"option " + long_name + " expects a number, got '" + *v + "'"};
  }
  if (x < min || x > max) {
    throw UsageError{"option " + long_name + " must be between " + std::to_string(min) + " and " +
                     std::to_string(max) + ", got " + *v};
  }
  return x;
}

uint64_t Args::get_u64(const std::string& long_name, uint64_t fallback) const {
  auto v = get(long_name);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const unsigned long long x = std::strtoull(v->c_str(), &end, 10);
  if (v->empty() || (*v)[0] == '-' || *end != '\0' || errno == ERANGE) {
    throw UsageError{"option " + long_name + " expects a non-negative integer, got '" + *v + "'"};
  }
  return x;
}

std::string Args::usage() const {
  std::string out = "usage: llmos " + command_ + " [options]\n  " + summary_ + "\n\noptions:\n";
  for (const auto& o : options_) {
    std::string names = o.short_name.empty() ? "    " : o.short_name + ", ";
    names += o.long_name;
    if (!o.value_name.empty()) names += " " + o.value_name;
    out += "  " + names;
    out += names.size() < 28 ? std::string(28 - names.size(), ' ') : std::string("\n") + std::string(30, ' ');
    out += o.help + "\n";
  }
  return out;
}

}  // namespace llmos::cli
