// llmos bench: batched prefill + decode throughput through the Engine, in the manner of
// llama.cpp's llama-batched-bench. For each batch size B: B sequences of P random prompt
// tokens are prefilled together, then decoded together for N steps (greedy, EOS ignored).
// Times are taken on the client side from the engine's token stream:
//   T_PP: from the start until every sequence has its first token (the prefill steps; the
//         first token is sampled from the prefill's logits, as llama-batched-bench's prefill
//         yields logits);
//   T_TG: from then until every sequence has N more tokens (N decode steps of B tokens).
// So each sequence gets N + 1 tokens and its KV cache holds exactly P + N of them.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cli/args.h"
#include "cli/cli_format.h"
#include "cli/commands.h"
#include "cli/model_source.h"
#include "core/error.h"
#include "engine/engine.h"

namespace llmos::cli {
namespace {

using Clock = std::chrono::steady_clock;

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

// Token ids a random prompt may use: everything but control tokens (BOS, EOS, ...).
std::vector<int32_t> prompt_candidates(const Tokenizer& tok, int64_t vocab_size) {
  std::vector<int32_t> ids;
  const Vocab& v = tok.vocab();
  for (int32_t t = 0; t < vocab_size; ++t) {
    const bool control =
        static_cast<size_t>(t) < v.types.size() && v.types[t] == TokenType::kControl;
    if (!control && !tok.is_eog(t)) ids.push_back(t);
  }
  if (ids.empty())
    throw_error(StatusCode::kInvalidArgument, "bench: the vocabulary has only control tokens");
  return ids;
}

// splitmix64: a fixed, portable stream so the same seed gives the same prompts everywhere.
uint64_t next_random(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

struct RunTimes {
  double pp = 0.0;
  double tg = 0.0;
};

struct BenchSetup {
  std::shared_ptr<LlamaModel> model;
  std::vector<int32_t> candidates;
  int32_t prompt_len = 0;
  int32_t gen_len = 0;
  DType kv_dtype = DType::kF16;
  int block_size = 16;
  uint64_t seed = 0;
};

// The state the engine thread's callbacks write; guarded by mu.
struct Tracker {
  std::mutex mu;
  std::condition_variable cv;
  bool gate_held = false;  // the engine thread is parked in the gate's callback
  bool gate_open = false;  // the main thread let it go
  std::vector<Clock::time_point> first_token, last_token;
  std::vector<int32_t> num_tokens;
  std::vector<RequestFinishReason> reasons;
  std::vector<std::string> errors;
  size_t num_done = 0;
};

// One timed run of `batch` sequences on `engine`.
RunTimes run_once(Engine& engine, const BenchSetup& s, int32_t batch, uint64_t run_seed) {
  // Shared with the callbacks, so it outlives any the engine thread may still be running
  // when an error ends this run early.
  auto tracker = std::make_shared<Tracker>();
  Tracker& tr = *tracker;
  tr.first_token.resize(batch);
  tr.last_token.resize(batch);
  tr.num_tokens.assign(batch, 0);
  tr.reasons.assign(batch, RequestFinishReason::kNone);
  tr.errors.resize(batch);

  // A one-token "gate" request parks the step loop in its final callback while the B requests
  // are queued, so they all enter the engine in the same step, as in llama-batched-bench.
  EngineRequest gate;
  gate.prompt_tokens = {s.candidates.front()};
  gate.max_tokens = 1;
  gate.sampling.temperature = 0.0f;
  gate.on_event = [tracker](const TokenEvent& ev) {
    if (!ev.finished) return;
    Tracker& g = *tracker;
    std::unique_lock<std::mutex> lk(g.mu);
    g.gate_held = true;
    g.cv.notify_all();
    g.cv.wait(lk, [&] { return g.gate_open; });
  };
  auto open_gate = [&tr] {
    std::lock_guard<std::mutex> lk(tr.mu);
    tr.gate_open = true;
    tr.cv.notify_all();
  };
  engine.submit(std::move(gate));
  {
    std::unique_lock<std::mutex> lk(tr.mu);
    tr.cv.wait(lk, [&] { return tr.gate_held; });
  }

  uint64_t rng = run_seed;
  try {
    for (int32_t b = 0; b < batch; ++b) {
      EngineRequest r;
      r.prompt_tokens.resize(static_cast<size_t>(s.prompt_len));
      for (int32_t& t : r.prompt_tokens) t = s.candidates[next_random(rng) % s.candidates.size()];
      r.max_tokens = s.gen_len + 1;
      r.ignore_eos = true;
      r.sampling.temperature = 0.0f;
      r.on_event = [tracker, b](const TokenEvent& ev) {
        const Clock::time_point now = Clock::now();
        Tracker& k = *tracker;
        std::lock_guard<std::mutex> lk(k.mu);
        if (!ev.finished) {
          if (k.num_tokens[b]++ == 0) k.first_token[b] = now;
          k.last_token[b] = now;
          return;
        }
        k.reasons[b] = ev.finish_reason;
        k.errors[b] = ev.error;
        ++k.num_done;
        k.cv.notify_all();
      };
      engine.submit(std::move(r));
    }
  } catch (...) {
    open_gate();  // never leave the engine thread parked
    throw;
  }
  const Clock::time_point start = Clock::now();
  open_gate();
  std::unique_lock<std::mutex> lk(tr.mu);
  tr.cv.wait(lk, [&] { return tr.num_done == static_cast<size_t>(batch); });

  for (int32_t b = 0; b < batch; ++b) {
    if (tr.reasons[b] != RequestFinishReason::kLength || tr.num_tokens[b] != s.gen_len + 1) {
      throw_error(StatusCode::kInternal, "bench: sequence ", b, " of batch ", batch, " ended with ",
                  request_finish_reason_name(tr.reasons[b]), " after ", tr.num_tokens[b], " of ",
                  s.gen_len + 1, " tokens", tr.errors[b].empty() ? "" : ": ", tr.errors[b]);
    }
  }
  const Clock::time_point prefilled =
      *std::max_element(tr.first_token.begin(), tr.first_token.end());
  const Clock::time_point decoded = *std::max_element(tr.last_token.begin(), tr.last_token.end());
  return {std::chrono::duration<double>(prefilled - start).count(),
          std::chrono::duration<double>(decoded - prefilled).count()};
}

std::unique_ptr<Engine> engine_for(const BenchSetup& s, int32_t batch) {
  EngineConfig c;
  c.max_sequences = batch + 1;  // + the gate
  // One step can hold the whole prefill when that is reasonable; beyond that it is chunked.
  c.max_batched_tokens =
      static_cast<int32_t>(std::clamp<int64_t>(int64_t{batch} * s.prompt_len, 512, 8192));
  const int64_t per_seq = (s.prompt_len + s.gen_len + 1 + s.block_size - 1) / s.block_size;
  c.kv_cache_blocks = int64_t{batch} * per_seq + batch + 2;
  c.block_size = s.block_size;
  c.kv_dtype = s.kv_dtype;
  c.enable_prefix_caching = false;  // random prompts share nothing anyway
  c.swap_space_bytes = 0;
  return std::make_unique<Engine>(s.model, c);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string describe(const LlamaModel& model, const Backend& backend) {
  const ModelConfig& c = model.config();
  uint64_t bytes = 0;
  int64_t params = 0;
  for (const gguf::TensorInfo& t : model.file().tensors()) {
    bytes += t.nbytes;
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    params += n;
  }
  const gguf::TensorInfo* w = model.file().find_tensor("blk.0.ffn_down.weight");
  std::string where = backend.name();
  if (where.find("thread") == std::string::npos)
    where += ", " + std::to_string(backend.num_threads()) + " threads";
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "model: %s '%s', %lld layers, dim %lld, vocab %lld, %.2fM params, %s, %s weights; "
                "backend %s",
                c.architecture.c_str(), c.name.c_str(), static_cast<long long>(c.num_layers),
                static_cast<long long>(c.dim), static_cast<long long>(c.vocab_size),
                static_cast<double>(params) / 1e6, human_bytes(static_cast<double>(bytes)).c_str(),
                w != nullptr ? std::string(dtype_name(w->dtype)).c_str() : "?", where.c_str());
  return buf;
}

}  // namespace

int run_bench(int argc, char** argv) {
  Args args(
      "bench", "batched prefill/decode benchmark through the engine (like llama-batched-bench)",
      {{"-m", "--model", "PATH", "GGUF model (default: $LLMOS_MODEL, else the embedded default)"},
       {"", "--batch", "LIST", "comma-separated batch sizes (default 1,4,16,32)"},
       {"-p", "--n-prompt", "P", "prompt tokens per sequence (default 128)"},
       {"-n", "--n-gen", "N", "decode steps per sequence (default 128)"},
       {"", "--reps", "R", "runs per batch size; the median is reported (default 1)"},
       {"", "--seed", "S", "seed of the random prompt tokens (default 1234)"},
       {"", "--kv-dtype", "TYPE", "KV cache type: f32, f16, bf16 (default f16)"},
       {"", "--block-size", "S", "tokens per KV block (default 16)"},
       {"-t", "--threads", "N", "CPU threads (default: all)"},
       {"", "--device", "DEV", "cpu (default) or cuda[:N]"}});
  BenchSetup setup;
  std::vector<int32_t> batches;
  int reps = 1;
  BackendOptions backend_options;
  try {
    args.parse(argc, argv, 2);
    if (args.has("--help")) {
      std::cout << args.usage();
      return 0;
    }
    batches = parse_batch_list(args.get_or("--batch", "1,4,16,32"));
    setup.prompt_len = static_cast<int32_t>(args.get_int("--n-prompt", 128, 1, 1 << 20));
    setup.gen_len = static_cast<int32_t>(args.get_int("--n-gen", 128, 1, 1 << 20));
    reps = static_cast<int>(args.get_int("--reps", 1, 1, 1000));
    setup.seed = args.get_u64("--seed", 1234);
    setup.kv_dtype = parse_kv_dtype(args);
    setup.block_size = static_cast<int>(args.get_int("--block-size", 16, 1, 1024));
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
    std::shared_ptr<Backend> backend = create_backend(backend_options);
    setup.model = LlamaModel::load(source->path, backend);
    const ModelConfig& mc = setup.model->config();
    if (int64_t{setup.prompt_len} + setup.gen_len + 1 > mc.context_length) {
      throw_error(StatusCode::kInvalidArgument, "bench: -p ", setup.prompt_len, " + -n ",
                  setup.gen_len, " + 1 tokens exceed the model's context length ",
                  mc.context_length);
    }
    setup.candidates = prompt_candidates(setup.model->tokenizer(), mc.vocab_size);

    std::printf("%s\n", describe(*setup.model, *backend).c_str());
    std::printf("kv %s, block size %d, prompt seed %llu, %d rep(s) per row (median)\n\n",
                std::string(dtype_name(setup.kv_dtype)).c_str(), setup.block_size,
                static_cast<unsigned long long>(setup.seed), reps);
    std::printf("| %6s | %6s | %5s | %7s | %8s | %9s | %8s | %9s | %8s | %9s |\n", "PP", "TG", "B",
                "N_KV", "T_PP s", "S_PP t/s", "T_TG s", "S_TG t/s", "T s", "S t/s");
    std::printf(
        "|--------|--------|-------|---------|----------|-----------|----------|-----------|-------"
        "---|"
        "-----------|\n");
    std::fflush(stdout);

    {
      // Warm-up (untimed): pages the weights in and starts the thread pool.
      BenchSetup warm = setup;
      warm.gen_len = 1;
      auto engine = engine_for(warm, 1);
      run_once(*engine, warm, 1, setup.seed);
    }
    for (const int32_t b : batches) {
      auto engine = engine_for(setup, b);
      std::vector<double> pp, tg;
      for (int r = 0; r < reps; ++r) {
        const RunTimes t = run_once(*engine, setup, b, setup.seed + static_cast<uint64_t>(r));
        pp.push_back(t.pp);
        tg.push_back(t.tg);
      }
      const double t_pp = median(pp), t_tg = median(tg), t = t_pp + t_tg;
      const double n_kv = static_cast<double>(b) * (setup.prompt_len + setup.gen_len);
      auto rate = [](double tokens, double secs) { return secs > 0 ? tokens / secs : 0.0; };
      std::printf("| %6d | %6d | %5d | %7.0f | %8.4f | %9.2f | %8.4f | %9.2f | %8.4f | %9.2f |\n",
                  setup.prompt_len, setup.gen_len, b, n_kv, t_pp,
                  rate(static_cast<double>(b) * setup.prompt_len, t_pp), t_tg,
                  rate(static_cast<double>(b) * setup.gen_len, t_tg), t, rate(n_kv, t));
      std::fflush(stdout);
    }
    return 0;
  } catch (const Error& e) {
    std::cerr << "llmos bench: error: " << e.message() << "\n";
    return 1;
  }
}

}  // namespace llmos::cli
