// llmos bench: model throughput, printed against ceilings the command measures on the spot.
// Without --batch: pp (prompt processing) and tg (text generation) of one sequence, like
// llama.cpp's llama-bench (bench_llama.cc). With --batch: batched prefill + decode through the
// engine, like llama-batched-bench (bench_batched.cc). Shared parts: bench.h.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cli/args.h"
#include "cli/bench.h"
#include "cli/cli_format.h"
#include "cli/commands.h"
#include "cli/model_source.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/ceilings.h"

namespace llmos::cli {
namespace {

std::vector<int32_t> parse_batch_list(const std::string& text) {
  std::vector<int32_t> sizes;
  std::stringstream in(text);
  std::string item;
  if (text.empty()) throw UsageError{"option --batch needs at least one batch size"};
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno == ERANGE || v < 1 || v > 4096) {
      throw UsageError{
          "option --batch expects a comma-separated list of sizes in [1, 4096], got '" + text +
          "'"};
    }
    sizes.push_back(static_cast<int32_t>(v));
  }
  if (text.back() == ',') throw UsageError{"option --batch has an empty item: '" + text + "'"};
  return sizes;
}

bench::BenchOptions parse_options(const Args& args) {
  bench::BenchOptions o;
  const bool batched = args.has("--batch");
  if (batched) o.batches = parse_batch_list(*args.get("--batch"));
  // The batched mode keeps llama-batched-bench's sizes and one rep (it runs several batch
  // sizes); the pp/tg mode llama-bench's.
  o.n_prompt = static_cast<int32_t>(args.get_int("--n-prompt", batched ? 128 : 512, 0, 1 << 20));
  o.n_gen = static_cast<int32_t>(args.get_int("--n-gen", 128, 0, 1 << 20));
  o.reps = static_cast<int>(args.get_int("--reps", batched ? 1 : 5, 1, 1000));
  if (batched && o.n_prompt == 0)
    throw UsageError{"option --n-prompt must be at least 1 with --batch"};
  if (batched && o.n_gen == 0) throw UsageError{"option --n-gen must be at least 1 with --batch"};
  if (o.n_prompt == 0 && o.n_gen == 0)
    throw UsageError{"options --n-prompt and --n-gen are both 0: there is nothing to measure"};
  o.json = args.has("--json");
  o.seed = args.get_u64("--seed", 1234);
  o.kv_dtype = parse_kv_dtype(args);
  o.block_size = static_cast<int>(args.get_int("--block-size", 16, 1, 1024));
  return o;
}

void check_context(const bench::BenchOptions& o, int64_t context_length) {
  if (!o.batches.empty()) {
    if (int64_t{o.n_prompt} + o.n_gen + 1 > context_length) {
      throw_error(StatusCode::kInvalidArgument, "bench: -p ", o.n_prompt, " + -n ", o.n_gen,
                  " + 1 tokens exceed the model's context length ", context_length);
    }
    return;
  }
  // pp and tg each start from an empty cache.
  if (o.n_prompt > context_length) {
    throw_error(StatusCode::kInvalidArgument, "bench: -p ", o.n_prompt,
                " exceeds the model's context length ", context_length);
  }
  if (o.n_gen > context_length) {
    throw_error(StatusCode::kInvalidArgument, "bench: -n ", o.n_gen,
                " exceeds the model's context length ", context_length);
  }
}

}  // namespace

int run_bench(int argc, char** argv) {
  Args args(
      "bench",
      "throughput against ceilings measured at start: pp/tg like llama-bench, or with --batch "
      "like llama-batched-bench",
      {{"-m", "--model", "PATH", "GGUF model (default: $LLMOS_MODEL, else the embedded default)"},
       {"-p", "--n-prompt", "P",
        "prompt tokens: the pp test (0 skips it; default 512), or per sequence with --batch "
        "(default 128)"},
       {"-n", "--n-gen", "N",
        "generated tokens: the tg test (0 skips it), or decode steps with --batch (default 128)"},
       {"-r", "--reps", "R", "repetitions; the median is reported (default 5; 1 with --batch)"},
       {"-t", "--threads", "N", "CPU threads (default: all)"},
       {"", "--json", "", "print one JSON array of results on stdout (the rest goes to stderr)"},
       {"", "--batch", "LIST", "comma-separated batch sizes: the batched mode (e.g. 1,4,16,32)"},
       {"", "--seed", "S", "seed of the random prompt tokens (default 1234)"},
       {"", "--kv-dtype", "TYPE", "KV cache type: f32, f16, bf16 (default f16)"},
       {"", "--block-size", "S", "tokens per KV block (default 16)"},
       {"", "--device", "DEV", "cpu (default) or cuda[:N]"}});
  bench::BenchContext ctx;
  BackendOptions backend_options;
  try {
    args.parse(argc, argv, 2);
    if (args.has("--help")) {
      std::cout << args.usage();
      return 0;
    }
    ctx.options = parse_options(args);
    backend_options.num_threads = static_cast<int>(args.get_int("--threads", 0, 1, 1024));
    backend_options.device = parse_device_option(args);
  } catch (const UsageError& e) {
    std::cerr << "llmos bench: " << e.message << "\n\n" << args.usage();
    return 2;
  }

  try {
    const auto source = resolve_model(args.get("--model"), /*allow_default=*/true);
    if (source->embedded_default) {
      std::cerr << "[llmos] no model given (-m PATH or LLMOS_MODEL): benchmarking the embedded "
                   "default model "
                << source->path << "\n";
    }
    ctx.options.model_path = source->path;
    std::shared_ptr<Backend> backend = create_backend(backend_options);
    if (backend->device().is_cpu()) {
      // Before the model loads, so its pages do not share the machine with the 1 GiB buffer;
      // on a pool of its own with the backend's thread count.
      ThreadPool pool(backend->num_threads());
      ctx.ceilings = kernels::cpu::measure_ceilings(pool);
    }
    ctx.model = LlamaModel::load(source->path, backend);
    check_context(ctx.options, ctx.model->config().context_length);
    ctx.candidates =
        bench::prompt_candidates(ctx.model->tokenizer(), ctx.model->config().vocab_size);

    std::vector<std::string> records;
    if (ctx.options.batches.empty()) {
      bench::run_llama_bench(ctx, records);
    } else {
      bench::run_batched_bench(ctx, records);
    }
    if (ctx.options.json) {
      std::string out = "[\n";
      for (size_t i = 0; i < records.size(); ++i)
        out += "  " + records[i] + (i + 1 < records.size() ? ",\n" : "\n");
      out += "]\n";
      std::fputs(out.c_str(), stdout);
      std::fflush(stdout);
    }
    return 0;
  } catch (const Error& e) {
    std::cerr << "llmos bench: error: " << e.message() << "\n";
    return 1;
  }
}

}  // namespace llmos::cli
