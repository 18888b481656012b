// llmos bench without --batch: prompt processing and text generation speed of one sequence, in
// the manner of llama.cpp's llama-bench, straight on the model's forward pass (no engine):
//   pp<P>: P random prompt tokens from an empty cache, in forward calls of at most the engine's
//          step token budget (512, llama-bench's default micro-batch), logits for the last
//          token only; tokens/s = P / time.
//   tg<N>: N forward calls of one token each from an empty cache, each with its logits (the
//          tokens are random, not sampled: the forward pass is what is measured); tokens/s =
//          N / time.
// One untimed warm-up of each test first. Each test is run `reps` times; the median is the
// result, printed with the sample standard deviation as llama-bench prints its mean.
#include <chrono>
#include <cstdio>
#include <numeric>

#include "cli/bench.h"
#include "cli/cli_format.h"
#include "core/error.h"
#include "engine/engine_config.h"
#include "kv/kv_cache.h"
#include "model/batch.h"

namespace llmos::cli::bench {
namespace {

using Clock = std::chrono::steady_clock;

class SequenceRunner {
 public:
  SequenceRunner(LlamaModel& model, const BenchOptions& o, const std::vector<int32_t>& candidates)
      : model_(model),
        candidates_(candidates),
        block_size_(o.block_size),
        chunk_(EngineConfig{}.max_batched_tokens) {
    const int64_t capacity = std::max<int64_t>({o.n_prompt, o.n_gen, 1});
    const int64_t blocks = (capacity + block_size_ - 1) / block_size_;
    cache_ = std::make_unique<KvCache>(model.kv_cache_spec(blocks, block_size_, o.kv_dtype),
                                       model.backend());
    // One sequence owns the whole cache: its block table is 0, 1, 2, ...
    block_table_.resize(static_cast<size_t>(blocks));
    std::iota(block_table_.begin(), block_table_.end(), 0);
    logits_ = Tensor::empty({1, model.config().vocab_size}, DType::kF32);
    no_logits_ = Tensor::empty({0, model.config().vocab_size}, DType::kF32);
  }

  // Seconds to prefill n random tokens from an empty cache.
  double prefill(int32_t n, uint64_t seed) {
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    for (int32_t& t : tokens) t = random_token(seed);
    const Clock::time_point start = Clock::now();
    for (int32_t done = 0; done < n;) {
      const int32_t m = std::min(n - done, chunk_);
      const bool last = done + m == n;
      batch_.clear();
      batch_.add_sequence(std::span<const int32_t>(tokens.data() + done, static_cast<size_t>(m)),
                          done, block_table_, block_size_,
                          last ? Batch::Logits::kLast : Batch::Logits::kNone);
      model_.forward(batch_, *cache_, last ? logits_ : no_logits_);
      done += m;
    }
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

  // Seconds to decode n tokens one at a time from an empty cache.
  double generate(int32_t n, uint64_t seed) {
    const Clock::time_point start = Clock::now();
    for (int32_t pos = 0; pos < n; ++pos) {
      const int32_t token = random_token(seed);
      batch_.clear();
      batch_.add_sequence(std::span<const int32_t>(&token, 1), pos, block_table_, block_size_,
                          Batch::Logits::kLast);
      model_.forward(batch_, *cache_, logits_);
    }
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

 private:
  int32_t random_token(uint64_t& state) {
    return candidates_[next_random(state) % candidates_.size()];
  }

  LlamaModel& model_;
  const std::vector<int32_t>& candidates_;
  int block_size_;
  int32_t chunk_;
  std::unique_ptr<KvCache> cache_;
  std::vector<int32_t> block_table_;
  Tensor logits_, no_logits_;
  Batch batch_;
};

struct TestResult {
  std::string name;  // "pp512", "tg128"
  int32_t n_prompt = 0, n_gen = 0;
  std::vector<double> samples;  // tokens/s per rep
  double ceiling = 0;
  std::string basis;
};

const char* kHeader = "| %-28s | %10s | %9s | %-10s | %7s | %7s | %20s | %11s | %7s |\n";

void print_row(const TestResult& r, const std::string& model, const std::string& size,
               const std::string& params, const std::string& backend, int threads) {
  char tps[64], ceiling[32], fraction[32];
  std::snprintf(tps, sizeof(tps), "%.2f ± %.2f", median(r.samples), stddev(r.samples));
  if (r.ceiling > 0) {
    std::snprintf(ceiling, sizeof(ceiling), "%.2f", r.ceiling);
    std::snprintf(fraction, sizeof(fraction), "%.1f%%", 100.0 * median(r.samples) / r.ceiling);
  } else {
    std::snprintf(ceiling, sizeof(ceiling), "n/a");
    std::snprintf(fraction, sizeof(fraction), "n/a");
  }
  // "±" is two bytes but one column: pad by hand.
  std::printf("| %-28s | %10s | %9s | %-10s | %7d | %7s | %21s | %11s | %7s |\n", model.c_str(),
              size.c_str(), params.c_str(), backend.c_str(), threads, r.name.c_str(), tps, ceiling,
              fraction);
  std::fflush(stdout);
}

}  // namespace

void run_llama_bench(const BenchContext& ctx, std::vector<std::string>& json_records) {
  const BenchOptions& o = ctx.options;
  LlamaModel& model = *ctx.model;
  const ModelCost cost = model_cost(model);
  const int threads = model.backend().num_threads();

  std::vector<TestResult> tests;
  if (o.n_prompt > 0) {
    TestResult t;
    t.name = "pp" + std::to_string(o.n_prompt);
    t.n_prompt = o.n_prompt;
    if (ctx.ceilings) {
      t.ceiling = pp_ceiling(cost, *ctx.ceilings, o.n_prompt);
      t.basis = pp_basis(cost, *ctx.ceilings) + ": 2 x matmul params x tokens";
    }
    tests.push_back(t);
  }
  if (o.n_gen > 0) {
    TestResult t;
    t.name = "tg" + std::to_string(o.n_gen);
    t.n_gen = o.n_gen;
    if (ctx.ceilings) {
      t.ceiling = tg_ceiling(cost, *ctx.ceilings);
      t.basis = "read bandwidth: weight bytes read per token";
    }
    tests.push_back(t);
  }

  const std::string mtype = model_type(model, cost);
  const std::string size = human_bytes(cost.file_bytes);
  char params[32];
  std::snprintf(params, sizeof(params), "%.2f M", cost.file_params / 1e6);
  const std::string backend = backend_label(model.backend());

  FILE* info = o.json ? stderr : stdout;
  std::fprintf(info, "%s\n", describe_model(model, cost).c_str());
  std::fprintf(info, "%s", describe_ceilings(ctx.ceilings).c_str());
  if (ctx.ceilings) {
    const double layer_params = [&] {
      double p = 0;
      for (const MatmulWork& m : cost.layer_matmuls) p += m.params;
      return p;
    }();
    std::fprintf(info,
                 "test ceilings: tg = read bandwidth / %.1f MB of weights read per token; "
                 "pp = %s / (2 x %.2fM matmul params per token, + the output matrix once)\n",
                 cost.decode_bytes / 1e6, pp_basis(cost, *ctx.ceilings).c_str(),
                 layer_params / 1e6);
  }
  std::fprintf(info,
               "t/s: median ± sample std dev over %d rep(s) after one warm-up run; kv %s; "
               "prompt seed %llu\n\n",
               o.reps, std::string(dtype_name(o.kv_dtype)).c_str(),
               static_cast<unsigned long long>(o.seed));
  if (!o.json) {
    std::printf(kHeader, "model", "size", "params", "backend", "threads", "test", "t/s",
                "ceiling t/s", "of ceil");
    std::printf(
        "| %s | %s: | %s: | %s | %s: | %s: | %s: | %s: | %s: |\n", std::string(28, '-').c_str(),
        std::string(9, '-').c_str(), std::string(8, '-').c_str(), std::string(10, '-').c_str(),
        std::string(6, '-').c_str(), std::string(6, '-').c_str(), std::string(19, '-').c_str(),
        std::string(10, '-').c_str(), std::string(6, '-').c_str());
    std::fflush(stdout);
  }

  SequenceRunner runner(model, o, ctx.candidates);
  // Warm-up (untimed): pages the weights in, grows the workspaces, wakes the thread pool.
  if (o.n_prompt > 0) runner.prefill(o.n_prompt, o.seed);
  if (o.n_gen > 0) runner.generate(std::min<int32_t>(o.n_gen, 4), o.seed);

  for (TestResult& t : tests) {
    for (int r = 0; r < o.reps; ++r) {
      const uint64_t seed = o.seed + static_cast<uint64_t>(r) + 1;
      const double secs =
          t.n_prompt > 0 ? runner.prefill(t.n_prompt, seed) : runner.generate(t.n_gen, seed);
      const double n = t.n_prompt > 0 ? t.n_prompt : t.n_gen;
      t.samples.push_back(secs > 0 ? n / secs : 0.0);
    }
    if (o.json) {
      JsonRecord rec;
      add_common_fields(rec, ctx, cost, t.name, median(t.samples), t.samples, t.ceiling, t.basis);
      rec.add("n_prompt", t.n_prompt).add("n_gen", t.n_gen).add("batch", int32_t{1});
      json_records.push_back(rec.str());
    } else {
      print_row(t, mtype, size, params, backend, threads);
    }
  }
}

}  // namespace llmos::cli::bench
