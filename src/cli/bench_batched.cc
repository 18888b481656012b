// llmos bench --batch: batched prefill + decode throughput through the Engine, in the manner of
// llama.cpp's llama-batched-bench. For each batch size B: B sequences of P random prompt
// tokens are prefilled together, then decoded together for N steps (greedy, EOS ignored).
// Times are taken on the client side from the engine's token stream:
//   T_PP: from the start until every sequence has its first token (the prefill steps; the
//         first token is sampled from the prefill's logits, as llama-batched-bench's prefill
//         yields logits);
//   T_TG: from then until every sequence has N more tokens (N decode steps of B tokens).
// So each sequence gets N + 1 tokens and its KV cache holds exactly P + N of them.
// Each row reports the median times over the reps and the token counts over them.
//
// Ceiling of S_TG: a decode step reads the weights once for all B sequences, so B x the
// single-sequence bandwidth bound (read bandwidth / weight bytes per token), capped by the
// matmul peaks (2 x params per token at the weights' peak). KV cache reads, which grow with B
// and the context, are left out: the ceiling is optimistic for long contexts.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>

#include "cli/bench.h"
#include "core/error.h"
#include "engine/engine.h"

namespace llmos::cli::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct RunTimes {
  double pp = 0.0;
  double tg = 0.0;
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
RunTimes run_once(Engine& engine, const BenchContext& ctx, int32_t gen_len, int32_t batch,
                  uint64_t run_seed) {
  const BenchOptions& o = ctx.options;
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
  gate.prompt_tokens = {ctx.candidates.front()};
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
      r.prompt_tokens.resize(static_cast<size_t>(o.n_prompt));
      for (int32_t& t : r.prompt_tokens)
        t = ctx.candidates[next_random(rng) % ctx.candidates.size()];
      r.max_tokens = gen_len + 1;
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
    if (tr.reasons[b] != RequestFinishReason::kLength || tr.num_tokens[b] != gen_len + 1) {
      throw_error(StatusCode::kInternal, "bench: sequence ", b, " of batch ", batch, " ended with ",
                  request_finish_reason_name(tr.reasons[b]), " after ", tr.num_tokens[b], " of ",
                  gen_len + 1, " tokens", tr.errors[b].empty() ? "" : ": ", tr.errors[b]);
    }
  }
  const Clock::time_point prefilled =
      *std::max_element(tr.first_token.begin(), tr.first_token.end());
  const Clock::time_point decoded = *std::max_element(tr.last_token.begin(), tr.last_token.end());
  return {std::chrono::duration<double>(prefilled - start).count(),
          std::chrono::duration<double>(decoded - prefilled).count()};
}

std::unique_ptr<Engine> engine_for(const BenchContext& ctx, int32_t gen_len, int32_t batch) {
  const BenchOptions& o = ctx.options;
  EngineConfig c;
  c.max_sequences = batch + 1;  // + the gate
  // One step can hold the whole prefill when that is reasonable; beyond that it is chunked.
  c.max_batched_tokens =
      static_cast<int32_t>(std::clamp<int64_t>(int64_t{batch} * o.n_prompt, 512, 8192));
  const int64_t per_seq = (o.n_prompt + gen_len + 1 + o.block_size - 1) / o.block_size;
  c.kv_cache_blocks = int64_t{batch} * per_seq + batch + 2;
  c.block_size = o.block_size;
  c.kv_dtype = o.kv_dtype;
  c.enable_prefix_caching = false;  // random prompts share nothing anyway
  c.swap_space_bytes = 0;
  return std::make_unique<Engine>(ctx.model, c);
}

double rate(double tokens, double secs) { return secs > 0 ? tokens / secs : 0.0; }

}  // namespace

void run_batched_bench(const BenchContext& ctx, std::vector<std::string>& json_records) {
  const BenchOptions& o = ctx.options;
  const ModelCost cost = model_cost(*ctx.model);
  FILE* info = o.json ? stderr : stdout;
  std::fprintf(info, "%s\n", describe_model(*ctx.model, cost).c_str());
  std::fprintf(info, "%s", describe_ceilings(ctx.ceilings).c_str());
  if (ctx.ceilings) {
    std::fprintf(info,
                 "S_TG ceiling: B x read bandwidth / %.1f MB of weights read per token, capped "
                 "by the matmul peaks (KV cache reads left out)\n",
                 cost.decode_bytes / 1e6);
  }
  std::fprintf(info, "kv %s, block size %d, prompt seed %llu, %d rep(s) per row (median)\n\n",
               std::string(dtype_name(o.kv_dtype)).c_str(), o.block_size,
               static_cast<unsigned long long>(o.seed), o.reps);
  if (!o.json) {
    std::printf("| %6s | %6s | %5s | %7s | %8s | %9s | %8s | %9s | %8s | %9s | %9s | %7s |\n", "PP",
                "TG", "B", "N_KV", "T_PP s", "S_PP t/s", "T_TG s", "S_TG t/s", "T s", "S t/s",
                "S_TG ceil", "of ceil");
    std::printf(
        "|--------|--------|-------|---------|----------|-----------|----------|-----------|-------"
        "---|-----------|-----------|---------|\n");
    std::fflush(stdout);
  }

  {
    // Warm-up (untimed): pages the weights in and starts the thread pool.
    auto engine = engine_for(ctx, 1, 1);
    run_once(*engine, ctx, 1, 1, o.seed);
  }
  for (const int32_t b : o.batches) {
    auto engine = engine_for(ctx, o.n_gen, b);
    std::vector<double> pp, tg, tg_rates;
    for (int r = 0; r < o.reps; ++r) {
      const RunTimes t = run_once(*engine, ctx, o.n_gen, b, o.seed + static_cast<uint64_t>(r));
      pp.push_back(t.pp);
      tg.push_back(t.tg);
      tg_rates.push_back(rate(static_cast<double>(b) * o.n_gen, t.tg));
    }
    const double t_pp = median(pp), t_tg = median(tg), t = t_pp + t_tg;
    const double n_kv = static_cast<double>(b) * (o.n_prompt + o.n_gen);
    const double s_pp = rate(static_cast<double>(b) * o.n_prompt, t_pp);
    const double s_tg = rate(static_cast<double>(b) * o.n_gen, t_tg);
    const double s = rate(n_kv, t);
    const double ceiling = ctx.ceilings ? batched_tg_ceiling(cost, *ctx.ceilings, b) : 0.0;
    if (o.json) {
      JsonRecord rec;
      add_common_fields(rec, ctx, cost, "batched", s_tg, tg_rates, ceiling,
                        "B x read bandwidth / weight bytes per token, capped by the matmul peaks");
      rec.add("n_prompt", o.n_prompt)
          .add("n_gen", o.n_gen)
          .add("batch", b)
          .add("n_kv", n_kv)
          .add("t_pp", t_pp)
          .add("s_pp", s_pp)
          .add("t_tg", t_tg)
          .add("s_tg", s_tg)
          .add("t", t)
          .add("s", s);
      json_records.push_back(rec.str());
      continue;
    }
    char ceil_text[32] = "n/a", frac_text[32] = "n/a";
    if (ceiling > 0) {
      std::snprintf(ceil_text, sizeof(ceil_text), "%.2f", ceiling);
      std::snprintf(frac_text, sizeof(frac_text), "%.1f%%", 100.0 * s_tg / ceiling);
    }
    std::printf(
        "| %6d | %6d | %5d | %7.0f | %8.4f | %9.2f | %8.4f | %9.2f | %8.4f | %9.2f | %9s | %7s |\n",
        o.n_prompt, o.n_gen, b, n_kv, t_pp, s_pp, t_tg, s_tg, t, s, ceil_text, frac_text);
    std::fflush(stdout);
  }
}

}  // namespace llmos::cli::bench
