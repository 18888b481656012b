// The `llmos` command: dispatches to a subcommand. Results go to stdout, diagnostics to stderr.
#include <cstring>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/logging.h"
#include "llmos/version.h"

namespace {

void print_usage(std::ostream& out) {
  out << "usage: llmos <command> [options]\n\n"
         "commands:\n"
         "  generate   generate text from a prompt\n"
         "  info       describe a GGUF model file\n"
         "  tokenize   print the token ids of a text\n"
         "  perplexity score a model on a text file (llama-perplexity method)\n"
         "  quantize   write a GGUF file with quantized weights\n"
         "  batch      run a file of prompts through the engine, one JSON line each\n"
         "  bench      throughput against measured ceilings (pp/tg like llama-bench; --batch like\n"
         "             llama-batched-bench)\n"
         "  make-model write a seeded random-weight model (benchmark shapes)\n\n"
         "Run 'llmos <command> --help' for a command's options.\n";
}

void log_to_stderr(llmos::LogLevel level, std::string_view message, void*) {
  static const char* names[] = {"debug", "info", "warn", "error"};
  std::cerr << "[llmos " << names[static_cast<int>(level)] << "] " << message << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  llmos::set_log_callback(log_to_stderr, nullptr);
  if (argc < 2) {
    print_usage(std::cerr);
    return 2;
  }
  const char* command = argv[1];
  try {
    if (std::strcmp(command, "generate") == 0) return llmos::cli::run_generate(argc, argv);
    if (std::strcmp(command, "info") == 0) return llmos::cli::run_info(argc, argv);
    if (std::strcmp(command, "tokenize") == 0) return llmos::cli::run_tokenize(argc, argv);
    if (std::strcmp(command, "perplexity") == 0) return llmos::cli::run_perplexity(argc, argv);
    if (std::strcmp(command, "quantize") == 0) return llmos::cli::run_quantize(argc, argv);
    if (std::strcmp(command, "make-model") == 0) return llmos::cli::run_make_model(argc, argv);
    if (std::strcmp(command, "batch") == 0) return llmos::cli::run_batch(argc, argv);
    if (std::strcmp(command, "bench") == 0) return llmos::cli::run_bench(argc, argv);
  } catch (const std::exception& e) {
    // Commands report llmos::Error themselves; anything else (e.g. bad_alloc) ends up here.
    std::cerr << "llmos " << command << ": error: " << e.what() << "\n";
    return 1;
  }
  if (std::strcmp(command, "--help") == 0 || std::strcmp(command, "-h") == 0 ||
      std::strcmp(command, "help") == 0) {
    print_usage(std::cout);
    return 0;
  }
  if (std::strcmp(command, "--version") == 0 || std::strcmp(command, "version") == 0) {
    std::cout << "llmos " << LLMOS_VERSION_STRING << "\n";
    return 0;
  }
  std::cerr << "llmos: unknown command '" << command << "'\n\n";
  print_usage(std::cerr);
  return 2;
}
