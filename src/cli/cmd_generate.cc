// llmos generate: print the prompt, then the continuation as it is generated.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>

#include <unistd.h>

#include "backend/backend.h"
#include "cli/args.h"
#include "cli/cli_format.h"
#include "cli/commands.h"
#include "cli/model_source.h"
#include "core/error.h"
#include "engine/generator.h"

namespace llmos::cli {

int run_generate(int argc, char** argv) {
  Args args("generate", "generate text from a prompt (no model given: the embedded default)",
            {{"-m", "--model", "PATH", "GGUF model (default: $LLMOS_MODEL, else the embedded default)"},
             {"-p", "--prompt", "TEXT", "prompt (default: empty, starts from BOS)"},
             {"-n", "--n-predict", "N", "tokens to generate (default 128)"},
             {"", "--temp", "T", "temperature, 0 = greedy (default 0.8)"},
             {"", "--top-k", "K", "top-k, 0 = off (default 40)"},
             {"", "--top-p", "P", "top-p, 1 = off (default 0.95)"},
             {"", "--min-p", "P", "min-p, 0 = off (default 0.05)"},
             {"", "--repeat-penalty", "R", "repetition penalty, 1 = off (default 1.0)"},
             {"", "--repeat-last-n", "N", "tokens the penalty looks back over (default 64)"},
             {"", "--seed", "S", "random seed (default: random, printed on stderr)"},
             {"-t", "--threads", "N", "CPU threads (default: all)"},
             {"", "--kv-dtype", "TYPE", "KV cache type: f32, f16, bf16 (default f16)"},
             {"", "--device", "DEV", "cpu (default) or cuda[:N]"},
             {"", "--ignore-eos", "", "keep generating after the end-of-sequence token"}});
  GenerateOptions options;
  std::optional<std::string> prompt;
  BackendOptions backend_options;
  try {
    args.parse(argc, argv, 2);
    if (args.has("--help")) {
      std::cout << args.usage();
      return 0;
    }
    prompt = args.get("--prompt");
    options.max_tokens = static_cast<int32_t>(args.get_int("--n-predict", 128, 0, 1 << 24));
    options.sampling = parse_sampling_options(args);
    options.sampling.seed = args.get_u64("--seed", std::random_device{}());
    backend_options.num_threads = static_cast<int>(args.get_int("--threads", 0, 1, 1024));
    options.kv_dtype = parse_kv_dtype(args);
    options.stop_at_eos = !args.has("--ignore-eos");
    backend_options.device = parse_device_option(args);
  } catch (const UsageError& e) {
    std::cerr << "llmos generate: " << e.message << "\n\n" << args.usage();
    return 2;
  }

  try {
    const auto source = resolve_model(args.get("--model"), /*allow_default=*/true);
    if (source->embedded_default) {
      std::cerr << "[llmos] no model given (-m PATH or LLMOS_MODEL): using the embedded default model,\n"
                << "[llmos] a small llama with seeded RANDOM weights written by llmos itself; its text is\n"
                << "[llmos] meaningless by design. Model file: " << source->path << "\n";
    }
    std::shared_ptr<Backend> backend = create_backend(backend_options);
    auto model = LlamaModel::load(source->path, backend);
    std::cerr << "[llmos] model: " << model->config().architecture << " '" << model->config().name
              << "', " << model->config().num_layers << " layers, vocab " << model->config().vocab_size
              << ", backend " << backend->name() << ", seed " << options.sampling.seed << "\n";
    Generator generator(*model, options);
    // Everything that can be checked up front is, so an error never follows a printed prompt.
    std::vector<TokenId> prompt_tokens = generator.prepare_prompt(prompt.value_or(""));
    std::cout << prompt.value_or("") << std::flush;
    const GenerateResult result = generator.generate_tokens(std::move(prompt_tokens), [](TokenId, std::string_view piece) {
      std::cout << piece << std::flush;
      return true;
    });
    // Exactly prompt + continuation on stdout; a final newline only for a terminal's sake.
    if (isatty(STDOUT_FILENO)) std::cout << "\n";
    std::cout << std::flush;
    const double pp = result.prefill_seconds > 0 ? result.prompt_tokens.size() / result.prefill_seconds : 0.0;
    const size_t decoded = result.tokens.empty() ? 0 : result.tokens.size() - 1;
    const double tg = result.decode_seconds > 0 ? decoded / result.decode_seconds : 0.0;
    std::fprintf(stderr,
                 "[llmos] prompt: %zu tokens in %.3f s (%.1f tokens/s); generated: %zu tokens in %.3f s "
                 "(%.1f tokens/s); stop: %s\n",
                 result.prompt_tokens.size(), result.prefill_seconds, pp, result.tokens.size(),
                 result.decode_seconds, tg, finish_reason_name(result.finish));
    return 0;
  } catch (const Error& e) {
    std::cerr << "llmos generate: error: " << e.message() << "\n";
    return 1;
  }
}

}  // namespace llmos::cli
