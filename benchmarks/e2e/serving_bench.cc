// serving_bench: end-to-end serving load on the Engine. N requests of P random prompt tokens
// each generate exactly G tokens (greedy, ignore_eos) with at most C in flight, submitted all
// at once or as seeded Poisson arrivals. Every token event is timestamped on arrival in the
// request's on_event callback, which is where an embedding server would forward it, so TTFT and
// inter-token latency include the engine's scheduling and delivery, not just the forward pass.
// TTFT counts from the submit() call: with --rate, a request that arrives while C are in flight
// is submitted when one of them ends.
//
//   serving_bench [-m MODEL] [--requests N] [--concurrency C] [--prompt P] [--gen G]
//                 [--rate R] [--kv-blocks B] [--block-size S] [--preemption recompute|swap]
//                 [--shared-prefix L] [--max-batched-tokens T] [--no-prefix-cache]
//                 [-t THREADS] [--seed S]
//
// Without -m a random-weight model (the embedded default's geometry) is written to a temporary
// file. The last line of output starts with "RESULT " and holds key=value pairs.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "backend/backend.h"
#include "core/error.h"
#include "engine/engine.h"
#include "model/llama_model.h"
#include "model/random_model.h"

namespace llmos {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string model;
  int64_t requests = 64;
  int64_t concurrency = 16;
  int64_t prompt = 128;
  int64_t gen = 128;
  double rate = 0.0;  // requests per second; 0 = all at once
  int64_t kv_blocks = 0;
  int64_t block_size = 16;
  PreemptionMode preemption = PreemptionMode::kRecompute;
  int64_t shared_prefix = 0;
  int64_t max_batched_tokens = 0;  // 0: the engine's default
  bool prefix_cache = true;
  int64_t threads = 0;  // 0: one per hardware thread
  uint64_t seed = 1;
};

void usage(FILE* out) {
  std::fputs(
      "usage: serving_bench [-m MODEL] [--requests N=64] [--concurrency C=16] [--prompt P=128]\n"
      "                     [--gen G=128] [--rate R=0] [--kv-blocks B] [--block-size S=16]\n"
      "                     [--preemption recompute|swap] [--shared-prefix L=0]\n"
      "                     [--max-batched-tokens T] [--no-prefix-cache] [-t THREADS]\n"
      "                     [--seed S=1]\n"
      "  --rate R: 0 submits everything at once (C in flight); else Poisson arrivals per second\n"
      "  --kv-blocks B: KV pool size in blocks (default: the engine's own sizing)\n"
      "  --shared-prefix L: the first L prompt tokens are the same for every request\n",
      out);
}

[[noreturn]] void bad_arg(const std::string& message) {
  std::fprintf(stderr, "serving_bench: %s\n", message.c_str());
  usage(stderr);
  std::exit(2);
}

int64_t parse_int(std::string_view flag, const char* text, int64_t lo, int64_t hi) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi) {
    bad_arg(std::string(flag) + ": '" + text + "' is not an integer in [" + std::to_string(lo) +
            ", " + std::to_string(hi) + "]");
  }
  return v;
}

double parse_double(std::string_view flag, const char* text, double lo, double hi) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !std::isfinite(v) || v < lo || v > hi) {
    char range[64];
    std::snprintf(range, sizeof range, "[%g, %g]", lo, hi);
    bad_arg(std::string(flag) + ": '" + text + "' is not a number in " + range);
  }
  return v;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) bad_arg(std::string(a) + ": missing value");
      return argv[++i];
    };
    constexpr int64_t kBig = int64_t{1} << 30;
    if (a == "-h" || a == "--help") {
      usage(stdout);
      std::exit(0);
    } else if (a == "-m" || a == "--model") {
      o.model = value();
    } else if (a == "--requests") {
      o.requests = parse_int(a, value(), 1, 1 << 20);
    } else if (a == "--concurrency") {
      o.concurrency = parse_int(a, value(), 1, 1 << 16);
    } else if (a == "--prompt") {
      o.prompt = parse_int(a, value(), 1, kBig);
    } else if (a == "--gen") {
      o.gen = parse_int(a, value(), 1, kBig);
    } else if (a == "--rate") {
      o.rate = parse_double(a, value(), 0.0, 1e9);
    } else if (a == "--kv-blocks") {
      o.kv_blocks = parse_int(a, value(), 1, kBig);
    } else if (a == "--block-size") {
      o.block_size = parse_int(a, value(), 1, 1024);
    } else if (a == "--preemption") {
      const std::string_view m = value();
      if (m == "recompute") {
        o.preemption = PreemptionMode::kRecompute;
      } else if (m == "swap") {
        o.preemption = PreemptionMode::kSwap;
      } else {
        bad_arg("--preemption: '" + std::string(m) + "' (expected recompute or swap)");
      }
    } else if (a == "--shared-prefix") {
      o.shared_prefix = parse_int(a, value(), 0, kBig);
    } else if (a == "--max-batched-tokens") {
      o.max_batched_tokens = parse_int(a, value(), 1, kBig);
    } else if (a == "--no-prefix-cache") {
      o.prefix_cache = false;
    } else if (a == "-t" || a == "--threads") {
      o.threads = parse_int(a, value(), 0, 4096);
    } else if (a == "--seed") {
      o.seed = static_cast<uint64_t>(parse_int(a, value(), 0, INT64_MAX));
    } else {
      bad_arg("unknown argument '" + std::string(a) + "'");
    }
  }
  if (o.shared_prefix > o.prompt) {
    bad_arg("--shared-prefix " + std::to_string(o.shared_prefix) + " exceeds --prompt " +
            std::to_string(o.prompt));
  }
  return o;
}

// splitmix64: a seeded stream that is the same on every platform (unlike <random>'s
// distributions), so a seed names one workload.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform01() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};

// Tokens a prompt may contain: ordinary text, byte and user-defined tokens, never control,
// unknown or unused ones, nor anything that ends generation.
std::vector<int32_t> prompt_vocabulary(const Tokenizer& tok) {
  const Vocab& v = tok.vocab();
  std::vector<int32_t> ids;
  for (size_t i = 0; i < v.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    const TokenType t = i < v.types.size() ? v.types[i] : TokenType::kNormal;
    if ((t == TokenType::kNormal || t == TokenType::kByte || t == TokenType::kUserDefined) &&
        !tok.is_eog(id) && id != v.bos) {
      ids.push_back(id);
    }
  }
  LLMOS_CHECK_ARG(!ids.empty(), "serving_bench: the vocabulary has no ordinary tokens");
  return ids;
}

// Prompts of exactly `prompt` tokens: BOS first when the vocabulary adds one (it is part of
// every prompt, like a real one), then `shared_prefix` tokens common to all, then random.
std::vector<std::vector<int32_t>> make_prompts(const Options& o, const Tokenizer& tok) {
  const std::vector<int32_t> pool = prompt_vocabulary(tok);
  Rng rng{o.seed};
  const Vocab& v = tok.vocab();
  std::vector<int32_t> common;
  if (v.add_bos && v.bos != kNoToken) common.push_back(v.bos);
  while (static_cast<int64_t>(common.size()) < o.shared_prefix)
    common.push_back(pool[rng.below(pool.size())]);

  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(o.requests));
  for (auto& p : prompts) {
    p = common;
    while (static_cast<int64_t>(p.size()) < o.prompt) p.push_back(pool[rng.below(pool.size())]);
    p.resize(static_cast<size_t>(o.prompt));
  }
  return prompts;
}

// Seconds after the start at which each request arrives.
std::vector<double> make_arrivals(const Options& o) {
  std::vector<double> at(static_cast<size_t>(o.requests), 0.0);
  if (o.rate <= 0.0) return at;
  Rng rng{o.seed ^ 0xa5a5a5a5a5a5a5a5ULL};
  double t = 0.0;
  for (double& a : at) {
    t += -std::log(1.0 - rng.uniform01()) / o.rate;
    a = t;
  }
  return at;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Record {
  Clock::time_point submitted;
  std::vector<Clock::time_point> tokens;  // arrival of each token event
  RequestFinishReason reason = RequestFinishReason::kNone;
  std::string error;
};

// Shared between the submit loop (main thread) and the callbacks (engine thread).
struct Run {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Record> records;
  int64_t in_flight = 0;
  int64_t done = 0;
  Clock::time_point last_finish;
  // Peak KV blocks in use, sampled from engine.stats() after every event and on a timer.
  std::atomic<int64_t> peak_used{0};
  void sample(const Engine& engine) {
    const int64_t used = engine.stats().kv.used_blocks;
    int64_t seen = peak_used.load(std::memory_order_relaxed);
    while (used > seen && !peak_used.compare_exchange_weak(seen, used)) {
    }
  }
};

struct TempFile {
  std::string path;
  ~TempFile() {
    if (!path.empty()) std::filesystem::remove(path);
  }
};

int run(const Options& o) {
  TempFile temp;
  std::string model_path = o.model;
  std::string model_label = o.model;
  if (model_path.empty()) {
    temp.path = (std::filesystem::temp_directory_path() /
                 ("llmos_serving_bench_" + std::to_string(::getpid()) + ".gguf"))
                    .string();
    write_random_model(default_demo_model_spec(), temp.path);
    model_path = temp.path;
    model_label = "default-random";
  }
  std::shared_ptr<Backend> backend =
      create_backend({Device::cpu(), static_cast<int>(o.threads)});
  std::shared_ptr<LlamaModel> model = LlamaModel::load(model_path, backend);
  const ModelConfig& mc = model->config();

  EngineConfig ec;
  ec.kv_cache_blocks = o.kv_blocks;
  ec.block_size = static_cast<int>(o.block_size);
  ec.preemption = o.preemption;
  ec.enable_prefix_caching = o.prefix_cache;
  if (o.max_batched_tokens > 0) ec.max_batched_tokens = static_cast<int32_t>(o.max_batched_tokens);
  ec.max_sequences = static_cast<int32_t>(std::max<int64_t>(ec.max_sequences, o.concurrency));
  Run st;  // outlives the engine: callbacks point into it
  Engine engine(model, ec);

  const std::vector<std::vector<int32_t>> prompts = make_prompts(o, model->tokenizer());
  const std::vector<double> arrivals = make_arrivals(o);
  const EngineStats s0 = engine.stats();

  std::printf(
      "config: model=%s (%s, %" PRId64 " layers, dim %" PRId64 ", %" PRId64 " kv heads x %" PRId64
      ", ctx %" PRId64 ") requests=%" PRId64 " concurrency=%" PRId64 " prompt=%" PRId64
      " gen=%" PRId64 " rate=%g/s shared_prefix=%" PRId64 "\n"
      "        kv_blocks=%" PRId64 " x %d tokens (%" PRId64 " bytes each, %s) preemption=%s "
      "prefix_cache=%s max_batched_tokens=%d max_sequences=%d threads=%" PRId64
      " seed=%" PRIu64 "\n",
      model_label.c_str(), mc.architecture.c_str(), mc.num_layers, mc.dim, mc.num_kv_heads,
      mc.head_dim, mc.context_length, o.requests, o.concurrency, o.prompt, o.gen, o.rate,
      o.shared_prefix, s0.kv.total_blocks, ec.block_size, s0.kv_block_bytes,
      std::string(dtype_name(ec.kv_dtype)).c_str(), o.preemption == PreemptionMode::kSwap ? "swap" : "recompute",
      o.prefix_cache ? "on" : "off", ec.max_batched_tokens, ec.max_sequences, o.threads,
      o.seed);
  std::fflush(stdout);

  st.records.resize(prompts.size());
  const Clock::time_point t0 = Clock::now();
  size_t next = 0;
  std::unique_lock<std::mutex> lk(st.mu);
  while (st.done < o.requests) {
    const Clock::time_point now = Clock::now();
    if (next < prompts.size() && st.in_flight < o.concurrency) {
      const Clock::time_point due =
          t0 + std::chrono::duration_cast<Clock::duration>(
                   std::chrono::duration<double>(arrivals[next]));
      if (now >= due) {
        const size_t i = next++;
        ++st.in_flight;
        st.records[i].submitted = Clock::now();
        lk.unlock();
        EngineRequest r;
        r.prompt_tokens = prompts[i];
        r.max_tokens = static_cast<int32_t>(o.gen);
        r.sampling.temperature = 0.0f;
        r.ignore_eos = true;
        r.on_event = [&st, &engine, i](const TokenEvent& ev) {
          const Clock::time_point t = Clock::now();
          st.sample(engine);
          std::lock_guard<std::mutex> g(st.mu);
          Record& rec = st.records[i];
          if (!ev.finished) {
            rec.tokens.push_back(t);
            return;
          }
          rec.reason = ev.finish_reason;
          rec.error = ev.error;
          st.last_finish = t;
          --st.in_flight;
          ++st.done;
          st.cv.notify_all();
        };
        try {
          engine.submit(std::move(r));
          lk.lock();
        } catch (const Error& e) {
          lk.lock();
          st.records[i].reason = RequestFinishReason::kError;
          st.records[i].error = e.what();
          st.last_finish = Clock::now();
          --st.in_flight;
          ++st.done;
        }
        continue;
      }
      st.cv.wait_until(lk, std::min(due, now + std::chrono::milliseconds(2)));
    } else {
      st.cv.wait_for(lk, std::chrono::milliseconds(2));
    }
    lk.unlock();
    st.sample(engine);
    lk.lock();
  }
  lk.unlock();
  const double wall = seconds(t0, st.last_finish);
  const EngineStats s1 = engine.stats();

  std::vector<double> ttft, itl;
  int64_t generated = 0, prompt_tokens = 0, errors = 0, short_requests = 0;
  for (size_t i = 0; i < st.records.size(); ++i) {
    const Record& rec = st.records[i];
    if (rec.reason == RequestFinishReason::kError || rec.reason == RequestFinishReason::kCancelled) {
      if (errors < 3) {
        std::fprintf(stderr, "request %zu: %s %s\n", i, request_finish_reason_name(rec.reason),
                     rec.error.c_str());
      }
      ++errors;
    }
    if (static_cast<int64_t>(rec.tokens.size()) != o.gen) ++short_requests;
    if (rec.tokens.empty()) continue;
    prompt_tokens += static_cast<int64_t>(prompts[i].size());
    generated += static_cast<int64_t>(rec.tokens.size());
    ttft.push_back(seconds(rec.submitted, rec.tokens.front()));
    for (size_t k = 1; k < rec.tokens.size(); ++k)
      itl.push_back(seconds(rec.tokens[k - 1], rec.tokens[k]));
  }

  const double total_tps = wall > 0 ? static_cast<double>(prompt_tokens + generated) / wall : 0;
  const double decode_tps = wall > 0 ? static_cast<double>(generated) / wall : 0;
  const int64_t total_blocks = s1.kv.total_blocks;
  const int64_t peak = st.peak_used.load();
  const double peak_frac =
      total_blocks > 0 ? static_cast<double>(peak) / static_cast<double>(total_blocks) : 0.0;
  const int64_t preemptions = s1.total_preemptions - s0.total_preemptions;

  std::printf("wall: %.3f s, %" PRId64 " requests, %" PRId64 " prompt + %" PRId64
              " generated tokens, %" PRId64 " engine steps (busy %.3f s)\n",
              wall, o.requests, prompt_tokens, generated, s1.steps - s0.steps,
              s1.busy_seconds - s0.busy_seconds);
  std::printf("throughput: total %.1f tok/s, decode %.1f tok/s\n", total_tps, decode_tps);
  std::printf("TTFT: p50 %.2f ms, p99 %.2f ms (from submit)\n", 1e3 * percentile(ttft, 0.50),
              1e3 * percentile(ttft, 0.99));
  std::printf("ITL:  p50 %.2f ms, p99 %.2f ms\n", 1e3 * percentile(itl, 0.50),
              1e3 * percentile(itl, 0.99));
  std::printf("KV: peak %" PRId64 " / %" PRId64 " blocks used (%.1f%%); prefix hit rate %.1f%% (%" PRId64
              " of %" PRId64 " looked-up tokens); preemptions %" PRId64 "\n",
              peak, total_blocks, 100.0 * peak_frac, 100.0 * s1.kv.prefix_hit_rate(),
              s1.kv.prefix_hit_tokens, s1.kv.prefix_query_tokens, preemptions);
  if (errors > 0 || short_requests > 0) {
    std::printf("WARNING: %" PRId64 " requests ended in error/cancel, %" PRId64
                " did not generate exactly %" PRId64 " tokens\n",
                errors, short_requests, o.gen);
  }
  std::printf(
      "RESULT model=%s requests=%" PRId64 " concurrency=%" PRId64 " prompt=%" PRId64
      " gen=%" PRId64 " rate=%g kv_blocks=%" PRId64 " block_size=%d preemption=%s"
      " shared_prefix=%" PRId64 " threads=%" PRId64 " seed=%" PRIu64
      " wall_s=%.4f total_tok_s=%.2f decode_tok_s=%.2f ttft_p50_ms=%.3f ttft_p99_ms=%.3f"
      " itl_p50_ms=%.3f itl_p99_ms=%.3f peak_kv_used=%" PRId64 " kv_total=%" PRId64
      " peak_kv_frac=%.4f prefix_hit_rate=%.4f preemptions=%" PRId64 " steps=%" PRId64
      " errors=%" PRId64 "\n",
      model_label.c_str(), o.requests, o.concurrency, o.prompt, o.gen, o.rate, total_blocks,
      ec.block_size, o.preemption == PreemptionMode::kSwap ? "swap" : "recompute",
      o.shared_prefix, o.threads, o.seed, wall, total_tps, decode_tps,
      1e3 * percentile(ttft, 0.50), 1e3 * percentile(ttft, 0.99), 1e3 * percentile(itl, 0.50),
      1e3 * percentile(itl, 0.99), peak, total_blocks, peak_frac, s1.kv.prefix_hit_rate(),
      preemptions, s1.steps - s0.steps, errors);
  return errors > 0 ? 1 : 0;
}

}  // namespace
}  // namespace llmos

int main(int argc, char** argv) {
  const llmos::Options options = llmos::parse_args(argc, argv);
  try {
    return llmos::run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serving_bench: %s\n", e.what());
    return 1;
  }
}
