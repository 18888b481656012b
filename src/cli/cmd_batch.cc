// llmos batch: run every line of a prompt file through one Engine, at most K requests in
// flight, and print one JSON object per prompt in input order (as soon as it and all lines
// before it are done).
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cli/args.h"
#include "cli/cli_format.h"
#include "cli/commands.h"
#include "cli/json_writer.h"
#include "cli/model_source.h"
#include "core/error.h"
#include "engine/engine.h"

namespace llmos::cli {
namespace {

// One prompt per line, bytes kept verbatim; only the empty "line" after a final newline is
// not a prompt.
std::vector<std::string> read_prompt_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw_error(StatusCode::kIo, "cannot open prompt file '", path, "': ", std::strerror(errno));
  std::string data;
  try {
    data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception& e) {  // libstdc++ throws here for a directory
    throw_error(StatusCode::kIo, "cannot read prompt file '", path, "': ", e.what());
  }
  if (in.bad()) throw_error(StatusCode::kIo, "cannot read prompt file '", path, "'");
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) {
      lines.push_back(data.substr(pos));
      break;
    }
    lines.push_back(data.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

// Per-prompt state, written by the engine thread (callbacks) and read by the main thread,
// both under Shared::mu.
struct Slot {
  std::vector<int32_t> tokens;
  RequestFinishReason finish_reason = RequestFinishReason::kNone;
  std::string error;
  int32_t preemptions = 0;
  bool done = false;
};

struct Shared {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Slot> slots;
  std::deque<size_t> finished;  // indices finished and not yet seen by the main thread
};

}  // namespace

int run_batch(int argc, char** argv) {
  Args args(
      "batch", "run a file of prompts (one per line) through the engine; one JSON line per prompt",
      {{"-m", "--model", "PATH", "GGUF model (default: $LLMOS_MODEL, else the embedded default)"},
       {"-f", "--file", "PATH", "prompt file, one prompt per line (required)"},
       {"-n", "--n-predict", "N", "tokens to generate per prompt (default 128)"},
       {"", "--temp", "T", "temperature, 0 = greedy (default 0.8)"},
       {"", "--top-k", "K", "top-k, 0 = off (default 40)"},
       {"", "--top-p", "P", "top-p, 1 = off (default 0.95)"},
       {"", "--min-p", "P", "min-p, 0 = off (default 0.05)"},
       {"", "--repeat-penalty", "R", "repetition penalty, 1 = off (default 1.0)"},
       {"", "--repeat-last-n", "N", "tokens the penalty looks back over (default 64)"},
       {"", "--seed", "S", "random seed; line i uses S + i (default: random, printed on stderr)"},
       {"", "--ignore-eos", "", "keep generating after the end-of-sequence token"},
       {"", "--parallel", "K", "requests in flight at once (default 16)"},
       {"", "--kv-blocks", "B", "KV cache size in blocks (default: room for K full contexts)"},
       {"", "--block-size", "S", "tokens per KV block (default 16)"},
       {"", "--kv-dtype", "TYPE", "KV cache type: f32, f16, bf16 (default f16)"},
       {"", "--no-prefix-cache", "", "do not share KV blocks between prompts with a common prefix"},
       {"", "--max-batched-tokens", "N", "tokens per engine step (default 512)"},
       {"", "--preemption", "MODE", "recompute (default) or swap, when the KV cache runs out"},
       {"", "--priority", "P", "realtime, interactive (default) or background"},
       {"-t", "--threads", "N", "CPU threads (default: all)"},
       {"", "--device", "DEV", "cpu (default) or cuda[:N]"}});
  EngineConfig config;
  EngineRequest settings;
  BackendOptions backend_options;
  std::string prompt_file;
  int32_t parallel = 16;
  uint64_t seed = 0;
  try {
    args.parse(argc, argv, 2);
    if (args.has("--help")) {
      std::cout << args.usage();
      return 0;
    }
    if (!args.get("--file") || args.get("--file")->empty())
      throw UsageError{"no prompt file given (-f PATH)"};
    prompt_file = *args.get("--file");
    settings.max_tokens = static_cast<int32_t>(args.get_int("--n-predict", 128, 1, 1 << 24));
    settings.sampling = parse_sampling_options(args);
    seed = args.get_u64("--seed", std::random_device{}());
    settings.ignore_eos = args.has("--ignore-eos");
    parallel = static_cast<int32_t>(args.get_int("--parallel", 16, 1, 4096));
    config.max_sequences = parallel;
    config.kv_cache_blocks = args.get_int("--kv-blocks", 0, 1, int64_t{1} << 40);
    config.block_size = static_cast<int>(args.get_int("--block-size", 16, 1, 1024));
    config.kv_dtype = parse_kv_dtype(args);
    config.enable_prefix_caching = !args.has("--no-prefix-cache");
    config.max_batched_tokens =
        static_cast<int32_t>(args.get_int("--max-batched-tokens", 512, 1, 1 << 20));
    const std::string preemption = args.get_or("--preemption", "recompute");
    if (preemption == "recompute") {
      config.preemption = PreemptionMode::kRecompute;
    } else if (preemption == "swap") {
      config.preemption = PreemptionMode::kSwap;
    } else {
      throw UsageError{"option --preemption must be recompute or swap, got '" + preemption + "'"};
    }
    backend_options.num_threads = static_cast<int>(args.get_int("--threads", 0, 1, 1024));
    backend_options.device = parse_device_option(args);
    try {
      if (auto p = args.get("--priority")) settings.priority = parse_priority(*p);
      config.validate();
    } catch (const Error& e) {
      throw UsageError{e.message()};
    }
  } catch (const UsageError& e) {
    std::cerr << "llmos batch: " << e.message << "\n\n" << args.usage();
    return 2;
  }

  try {
    const std::vector<std::string> prompts = read_prompt_lines(prompt_file);
    const auto source = resolve_model(args.get("--model"), /*allow_default=*/true);
    if (source->embedded_default) {
      std::cerr
          << "[llmos] no model given (-m PATH or LLMOS_MODEL): using the embedded default model "
             "(random weights, meaningless text): "
          << source->path << "\n";
    }
    std::shared_ptr<Backend> backend = create_backend(backend_options);
    std::shared_ptr<LlamaModel> model = LlamaModel::load(source->path, backend);
    const Tokenizer& tok = model->tokenizer();
    const ModelConfig& mc = model->config();
    std::string where = backend->name();
    if (where.find("thread") == std::string::npos)
      where += ", " + std::to_string(backend->num_threads()) + " threads";
    std::cerr << "[llmos] model: " << mc.architecture << " '" << mc.name << "', " << mc.num_layers
              << " layers, vocab " << mc.vocab_size << ", backend " << where << "; "
              << prompts.size() << " prompts, " << parallel << " in flight, seed " << seed << "\n";

    // Tokenize and check every prompt before any output, so a bad line is reported up front
    // by its number rather than after hours of work.
    std::vector<std::vector<int32_t>> prompt_tokens(prompts.size());
    const auto max_len = static_cast<int32_t>(std::min<int64_t>(mc.context_length, 1 << 30));
    for (size_t i = 0; i < prompts.size(); ++i) {
      prompt_tokens[i] = tok.encode(prompts[i], /*add_special=*/true);
      if (prompt_tokens[i].empty()) {
        throw_error(StatusCode::kInvalidArgument, prompt_file, " line ", i + 1,
                    ": empty prompt, and the vocabulary adds no BOS token");
      }
      RequestParams check;
      check.prompt = prompt_tokens[i];
      check.max_tokens = settings.max_tokens;
      check.sampling = settings.sampling;
      try {
        check.validate(max_len, static_cast<int32_t>(mc.vocab_size));
      } catch (const Error& e) {
        throw_error(StatusCode::kInvalidArgument, prompt_file, " line ", i + 1, ": ", e.message());
      }
    }

    Shared shared;  // outlives the engine, whose callbacks write into it
    shared.slots.resize(prompts.size());
    Engine engine(model, config);

    const auto start = std::chrono::steady_clock::now();
    size_t next_submit = 0;
    size_t in_flight = 0;
    auto submit_next = [&] {
      const size_t i = next_submit++;
      EngineRequest r = settings;
      r.prompt_tokens = prompt_tokens[i];
      r.sampling.seed = seed + i;
      r.on_event = [&shared, i](const TokenEvent& ev) {
        std::lock_guard<std::mutex> lk(shared.mu);
        Slot& slot = shared.slots[i];
        if (!ev.finished) {
          slot.tokens.push_back(ev.token);
          return;
        }
        slot.finish_reason = ev.finish_reason;
        slot.error = ev.error;
        slot.done = true;
        shared.finished.push_back(i);
        shared.cv.notify_all();
      };
      try {
        engine.submit(std::move(r));
      } catch (const Error& e) {
        // Checked above, so unexpected: report it on the line and go on with the rest.
        std::lock_guard<std::mutex> lk(shared.mu);
        shared.slots[i].finish_reason = RequestFinishReason::kError;
        shared.slots[i].error = e.message();
        shared.slots[i].done = true;
        shared.finished.push_back(i);
      }
      ++in_flight;
    };

    size_t next_print = 0;
    int64_t generated = 0;
    int64_t errors = 0;
    std::unique_lock<std::mutex> lk(shared.mu);
    while (next_print < prompts.size()) {
      while (in_flight < static_cast<size_t>(parallel) && next_submit < prompts.size()) {
        lk.unlock();
        submit_next();
        lk.lock();
      }
      shared.cv.wait(lk, [&] { return !shared.finished.empty(); });
      in_flight -= shared.finished.size();
      shared.finished.clear();
      std::string out;
      for (; next_print < prompts.size() && shared.slots[next_print].done; ++next_print) {
        Slot& slot = shared.slots[next_print];
        std::string text;
        for (int32_t t : slot.tokens) text += tok.token_to_piece(t);
        JsonObject line;
        line.add("prompt", prompts[next_print]).add("text", text).add("tokens", slot.tokens);
        line.add("finish_reason", request_finish_reason_name(slot.finish_reason));
        if (slot.finish_reason == RequestFinishReason::kError) {
          line.add("error", slot.error);
          ++errors;
        }
        generated += static_cast<int64_t>(slot.tokens.size());
        out += line.str() + "\n";
        slot = Slot{.done = true};  // its tokens are printed: free them
      }
      if (!out.empty()) {
        lk.unlock();
        std::fwrite(out.data(), 1, out.size(), stdout);
        std::fflush(stdout);
        lk.lock();
      }
    }
    lk.unlock();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const EngineStats st = engine.stats();
    std::fprintf(
        stderr,
        "[llmos] %zu requests (%lld errors), %lld prompt tokens computed, %lld tokens generated "
        "in %.3f s (%.1f tokens/s), %lld engine steps, %lld preemptions, prefix cache %s: "
        "%lld of %lld prompt tokens hit (%.1f%%)\n",
        prompts.size(), static_cast<long long>(errors),
        static_cast<long long>(st.prompt_tokens_computed), static_cast<long long>(generated),
        seconds, seconds > 0 ? static_cast<double>(generated) / seconds : 0.0,
        static_cast<long long>(st.steps), static_cast<long long>(st.total_preemptions),
        config.enable_prefix_caching ? "on" : "off",
        static_cast<long long>(st.kv.prefix_hit_tokens),
        static_cast<long long>(st.kv.prefix_query_tokens), 100.0 * st.kv.prefix_hit_rate());
    if (errors > 0) {
      // Every line was printed; the status still tells a script that some of them failed.
      std::cerr << "llmos batch: " << errors << " of " << prompts.size()
                << " requests failed (see their \"error\" fields)\n";
      return 1;
    }
    return 0;
  } catch (const Error& e) {
    std::cerr << "llmos batch: error: " << e.message() << "\n";
    return 1;
  }
}

}  // namespace llmos::cli
