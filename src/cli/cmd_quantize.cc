// llmos quantize: convert a GGUF model to a llama.cpp file type (Q4_K_M, Q8_0, F16, ...), with
// a progress display on stderr and a one-line summary on stdout.
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/cli_format.h"
#include "cli/commands.h"
#include "core/error.h"
#include "quant/quantize_model.h"

namespace llmos::cli {


namespace {

// llama.cpp file types llmos does not write, so asking for one gets a precise message.
constexpr const char* kOtherLlamaCppTypes[] = {
    "Q2_K", "Q2_K_S", "Q3_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ1_S", "IQ1_M", "IQ2_XXS",
    "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ4_NL", "IQ4_XS",
    "TQ1_0", "TQ2_0", "MXFP4_MOE", "Q1_0", "Q2_0", "NVFP4", "COPY"};

bool iequals(const std::string& a, const char* b) {
  size_t i = 0;
  for (; i < a.size() && b[i] != '\0'; ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return i == a.size() && b[i] == '\0';
}

std::string type_table() {
  std::string out = "\ntypes (TYPE, case-insensitive, or its llama.cpp file-type number):\n";
  for (const auto& t : quant_file_types()) {
    char line[160];
    std::snprintf(line, sizeof(line), "  %2u  %-7s %s\n", t.ftype, std::string(t.name).c_str(),
                  std::string(t.summary).c_str());
    out += line;
  }
  out += "  Q4_K and Q5_K are aliases of Q4_K_M and Q5_K_M (as in llama-quantize).\n"
         "  Types follow llama.cpp's per-tensor rules; see docs/formats.md, 'llmos quantize'.\n";
  return out;
}

// Draws the progress: one redrawn line with a bar on a terminal, else one line per tensor.
class ProgressDisplay {
 public:
  explicit ProgressDisplay(bool tty) : tty_(tty) {}

  void update(const QuantizeProgress& p) {
    const double pct = p.total ? 100.0 * static_cast<double>(p.done) / static_cast<double>(p.total) : 100.0;
    const std::string types = std::string(dtype_name(p.from)) + " -> " + std::string(dtype_name(p.to));
    if (!tty_) {
      if (p.stage != QuantizeProgress::Stage::kTensorEnd) return;
      std::fprintf(stderr, "[%4zu/%4zu] %-34s %-14s %-14s %10s -> %-10s %5.1f%%\n", p.index + 1, p.count,
                   std::string(p.name).c_str(), p.converted ? types.c_str() : (std::string(dtype_name(p.from)) + " (copy)").c_str(),
                   shape_string(*p.shape).c_str(), human_bytes(static_cast<double>(p.in_bytes)).c_str(),
                   human_bytes(static_cast<double>(p.out_bytes)).c_str(), pct);
      return;
    }
    // Redraw at most ~20 times a second, plus at every tensor boundary.
    const auto now = std::chrono::steady_clock::now();
    if (p.stage == QuantizeProgress::Stage::kRows && drawn_ && now - last_draw_ < std::chrono::milliseconds(50)) return;
    last_draw_ = now;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(pct / 100.0 * kWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r[%s] %5.1f%% [%zu/%zu] %s %s\x1b[K", bar.c_str(), pct, p.index + 1, p.count,
                 std::string(p.name).c_str(), p.converted ? types.c_str() : "(copy)");
    std::fflush(stderr);
    drawn_ = true;
  }

  // Ends the redrawn line so that what follows starts on a fresh one.
  void finish_line() {
    if (tty_ && drawn_) std::fputs("\n", stderr);
    drawn_ = false;
  }

 private:
  bool tty_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace

int run_quantize(int argc, char** argv) {
  Args args("quantize", "quantize a GGUF model to a llama.cpp file type",
            {{"-t", "--threads", "N", "CPU threads (default: all)"},
             {"", "--pure", "", "no mixture rules: every weight matrix gets TYPE's base type"}});
  auto usage = [&args] {
    std::string u = args.usage();
    const std::string first = "usage: llmos quantize [options]";
    if (u.rfind(first, 0) == 0) u.insert(first.size(), " IN.gguf OUT.gguf TYPE");
    return u + type_table();
  };
  std::vector<std::string> positional;
  QuantizeOptions options;
  try {
    // Args knows options only; positionals are picked out first (an option's value included).
    std::vector<char*> option_argv(argv, argv + 2);
    bool only_positional = false;
    for (int i = 2; i < argc; ++i) {
      const std::string a = argv[i];
      if (only_positional || a.size() < 2 || a[0] != '-') {
        positional.push_back(a);
      } else if (a == "--") {
        only_positional = true;
      } else {
        option_argv.push_back(argv[i]);
        if ((a == "-t" || a == "--threads") && i + 1 < argc) option_argv.push_back(argv[++i]);
      }
    }
    args.parse(static_cast<int>(option_argv.size()), option_argv.data(), 2);
    if (args.has("--help")) {
      std::cout << usage();
      return 0;
    }
    options.num_threads = static_cast<int>(args.get_int("--threads", 0, 1, 1024));
    options.pure = args.has("--pure");
    if (positional.size() != 3) {
      throw UsageError{"expected IN.gguf OUT.gguf TYPE, got " + std::to_string(positional.size()) +
                       " argument" + (positional.size() == 1 ? "" : "s")};
    }
    const std::string& type = positional[2];
    if (find_quant_file_type(type) == nullptr) {
      for (const char* other : kOtherLlamaCppTypes) {
        if (iequals(type, other)) {
          throw UsageError{"type '" + type + "' is a llama.cpp type llmos quantize does not write; valid types: " +
                           quant_file_type_list()};
        }
      }
      throw UsageError{"unknown type '" + type + "'; valid types: " + quant_file_type_list()};
    }
    options.file_type = type;
  } catch (const UsageError& e) {
    std::cerr << "llmos quantize: " << e.message << "\n\n" << usage();
    return 2;
  }

  ProgressDisplay display(isatty(STDERR_FILENO) != 0);
  options.on_progress = [&display](const QuantizeProgress& p) { display.update(p); };
  options.on_warning = [&display](const std::string& message) {
    display.finish_line();
    std::cerr << "llmos quantize: warning: " << message << "\n";
  };
  try {
    const QuantFileType* ft = find_quant_file_type(options.file_type);
    std::cerr << "[llmos] quantizing " << positional[0] << " -> " << positional[1] << " as " << ft->name
              << " (general.file_type " << ft->ftype << ")" << (options.pure ? ", pure" : "") << "\n";
    const QuantizeResult r = quantize_model(positional[0], positional[1], options);
    display.finish_line();
    const double ratio = r.output_bytes ? static_cast<double>(r.input_bytes) / static_cast<double>(r.output_bytes) : 0.0;
    std::printf("quantized %s (%s) -> %s (%s, %s) in %.2f s: %zu tensors, %zu converted (%zu requantized, %zu "
                "fallbacks), %.2fx smaller\n",
                positional[0].c_str(), human_bytes(static_cast<double>(r.input_bytes)).c_str(), positional[1].c_str(),
                human_bytes(static_cast<double>(r.output_bytes)).c_str(), std::string(r.file_type->name).c_str(),
                r.seconds, r.tensors, r.converted, r.requantized, r.fallbacks, ratio);
    return 0;
  } catch (const Error& e) {
    display.finish_line();
    std::cerr << "llmos quantize: error: " << e.message() << "\n";
    return 1;
  }
}

}  // namespace llmos::cli
