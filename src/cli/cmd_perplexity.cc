// llmos perplexity: the llama-perplexity measurement (see engine/perplexity.h). Progress per
// chunk on stderr; the last line on stdout is "PPL = <value>".
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>

#include "backend/backend.h"
#include "cli/args.h"
#include "cli/cli_format.h"
#include "cli/commands.h"
#include "cli/model_source.h"
#include "core/error.h"
#include "engine/perplexity.h"

namespace llmos::cli {

int run_perplexity(int argc, char** argv) {
  Args args("perplexity", "perplexity of a model on a text file, measured as llama-perplexity does",
            {{"-m", "--model", "PATH", "GGUF model (default: $LLMOS_MODEL)"},
             {"-f", "--file", "FILE", "the text to score"},
             {"-c", "--ctx-size", "N_CTX", "tokens per chunk (default 512)"},
             {"", "--chunks", "N", "score at most N chunks (default: all)"},
             {"-b", "--batch-size", "N", "tokens per forward step (default 2048, at most N_CTX)"},
             {"-t", "--threads", "N", "CPU threads (default: all)"},
             {"", "--kv-dtype", "TYPE", "KV cache type: f16, bf16, f32 (default f16)"}});
  PerplexityOptions options;
  BackendOptions backend_options;
  try {
    args.parse(argc, argv, 2);
    if (args.has("--help")) {
      std::cout << args.usage();
      return 0;
    }
    if (!args.has("--file")) throw UsageError{"no text file given (-f FILE)"};
    if (!resolve_model(args.get("--model"), false)) throw UsageError{"no model given (-m PATH or LLMOS_MODEL)"};
    options.n_ctx = static_cast<int32_t>(args.get_int("--ctx-size", 512, 4, 1 << 20));
    options.max_chunks = static_cast<int32_t>(args.get_int("--chunks", -1, 1, 1 << 30));
    options.n_batch = static_cast<int32_t>(args.get_int("--batch-size", 2048, 1, 1 << 20));
    backend_options.num_threads = static_cast<int>(args.get_int("--threads", 0, 1, 1024));
    options.kv_dtype = parse_kv_dtype(args);
  } catch (const UsageError& e) {
    std::cerr << "llmos perplexity: " << e.message << "\n\n" << args.usage();
    return 2;
  }
  try {
    const std::string path = *args.get("--file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw_error(StatusCode::kIo, "cannot open text file '", path, "'");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

    const auto source = resolve_model(args.get("--model"), false);
    std::shared_ptr<Backend> backend = create_backend(backend_options);
    auto model = LlamaModel::load(source->path, backend);
    const std::vector<TokenId> tokens = model->tokenizer().encode(text, /*add_special=*/true);
    std::fprintf(stderr, "[llmos] %s: %zu bytes, %zu tokens; %d-token chunks, batch %d, backend %s\n",
                 path.c_str(), text.size(), tokens.size(), options.n_ctx, std::min(options.n_batch, options.n_ctx),
                 backend->name().c_str());
    const PerplexityResult r = compute_perplexity(*model, tokens, options, [](int32_t chunk, int32_t total, double ppl) {
      std::fprintf(stderr, "[llmos] chunk %d/%d: running PPL = %.4f\n", chunk + 1, total, ppl);
    });
    std::fprintf(stderr, "[llmos] %d chunks, %lld scored tokens in %.2f s (%.1f tokens/s); PPL = %.4f +/- %.5f\n",
                 r.chunks, static_cast<long long>(r.scored_tokens), r.seconds,
                 r.seconds > 0 ? r.chunks * static_cast<double>(options.n_ctx) / r.seconds : 0.0, r.ppl, r.ppl_error);
    std::printf("PPL = %.4f\n", r.ppl);
    return 0;
  } catch (const Error& e) {
    std::cerr << "llmos perplexity: error: " << e.message() << "\n";
    return 1;
  }
}

}  // namespace llmos::cli
