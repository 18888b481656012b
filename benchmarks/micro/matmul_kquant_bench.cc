// K-quant (Q4_K, Q5_K, Q6_K) matmul on the CPU kernels of kernels/cpu/matmul_kquant.h, per ISA,
// on bench-200m's shapes, with 1 and 2 threads of llmos::ThreadPool (phase 1: quantize rows,
// phase 2: 16-column panels). Before running, the ceilings are measured and printed next to the
// DESIGN.md ones; every benchmark reports its rate as a fraction of both:
//   GEMV (m = 1): GB/s of packed weight bytes; "hot" re-reads one weight (it stays in the 260 MB
//     L3 of the development machine), "cold" cycles through copies totalling 512 MiB (DRAM).
//   GEMM (m = 32, 512): GOPS = 2 m n k / time against the int8 (vpdpbusd) peak.
//   pack: the load-time repack, MB/s of GGUF bytes.
// Run with --benchmark_repetitions=5 --benchmark_report_aggregates_only=true and quote medians;
// on a busy machine also look at the max aggregate of the rate counters (the best repetition).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/cpu/matmul_kquant.h"

namespace llmos::kernels::cpu {
namespace {

constexpr double kDesignBandwidth = 70e9;  // DESIGN.md: read bandwidth, 2 threads (38 with 1)
constexpr double kDesignInt8 = 1590e9;     // DESIGN.md: vpdpbusd zmm, 2 threads

struct Ceilings {
  double bandwidth[3] = {0, 0, 0};  // by thread count
  double int8[3] = {0, 0, 0};
};
Ceilings g_ceil;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i + 4 <= n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  return s0 ^ s1 ^ s2 ^ s3;
}

// Best of many short runs: on a shared machine long runs get preempted and read low.
void measure_ceilings() {
  volatile uint64_t sink = 0;
  const size_t words = (size_t{512} << 20) / 8;  // 512 MiB, past every cache
  std::vector<uint64_t> buf(words, 1);
  for (int threads = 1; threads <= 2; ++threads) {
    ThreadPool pool(threads);
    double best = 0;
    for (int rep = 0; rep < 8; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      pool.parallel_for(threads, 1, [&](int, int64_t b, int64_t e) {
        for (int64_t part = b; part < e; ++part)
          sink = sink + sum_words(buf.data() + part * words / threads, words / threads);
      });
      best = std::max(best, static_cast<double>(words * 8) / seconds_since(t0));
    }
    g_ceil.bandwidth[threads] = best;
    if (kquant_isa_usable(Isa::kAvx512)) {
      const int64_t iters = 200'000;  // about 0.5 ms per thread
      double peak = 0;
      for (int rep = 0; rep < 200; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        pool.parallel_for(threads, 1, [&](int, int64_t, int64_t) {
          sink = sink + static_cast<uint64_t>(kquant_detail::int8_peak_probe_avx512(iters));
        });
        peak = std::max(peak, threads * iters * 16.0 * 64 * 2 / seconds_since(t0));
      }
      g_ceil.int8[threads] = peak;
    }
  }
  std::printf("Ceilings measured now (best of many short runs; the machine may be shared):\n");
  for (int t = 1; t <= 2; ++t)
    std::printf("  %d thread(s): read bandwidth (512 MiB) %.1f GB/s, int8 vpdpbusd peak %.0f GOPS\n", t,
                g_ceil.bandwidth[t] / 1e9, g_ceil.int8[t] / 1e9);
  std::printf("DESIGN.md ceilings: 70 GB/s (38 with 1 thread), 1590 GOPS (2 threads)\n");
  std::printf("Counters: pct_bw / pct_int8 = %% of the measured ceiling for the thread count,\n"
              "          pct_bw_design / pct_int8_design = %% of the DESIGN.md 2-thread figure.\n\n");
}

// Random GGUF rows (every code and scale pattern), with sane f16 scales.
std::vector<uint8_t> random_gguf(DType dtype, int64_t n, int64_t k) {
  const int64_t row_bytes = dtype_row_bytes(dtype, k);
  std::vector<uint8_t> w(static_cast<size_t>(n * row_bytes));
  std::mt19937 rng(42);
  for (auto& b : w) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(0.0005f, 0.02f);
  for (int64_t blk = 0; blk < n * (k / 256); ++blk) {
    uint8_t* p = w.data() + blk * dtype_block_bytes(dtype);
    const uint16_t d = f32_to_f16(scale(rng)), dmin = f32_to_f16(scale(rng));
    if (dtype == DType::kQ6_K) {
      std::memcpy(p + 208, &d, 2);
    } else {
      std::memcpy(p, &d, 2);
      std::memcpy(p + 2, &dmin, 2);
    }
  }
  return w;
}

struct Weight {
  std::vector<uint8_t> gguf;
  std::vector<uint8_t> packed;  // `copies` back-to-back copies of the packed weight
  size_t packed_bytes = 0;
  int copies = 1;
};

const Weight& weight(DType dtype, int64_t n, int64_t k, bool cold) {
  static std::map<std::tuple<int, int64_t, int64_t, bool>, std::unique_ptr<Weight>> cache;
  // Keep at most one 512 MiB cold set alive.
  if (cold) {
    for (auto it = cache.begin(); it != cache.end();) {
      const bool other_cold = std::get<3>(it->first) && it->first != std::make_tuple(static_cast<int>(dtype), n, k, cold);
      it = other_cold ? cache.erase(it) : std::next(it);
    }
  }
  auto& slot = cache[{static_cast<int>(dtype), n, k, cold}];
  if (!slot) {
    slot = std::make_unique<Weight>();
    slot->gguf = random_gguf(dtype, n, k);
    slot->packed_bytes = kquant_packed_bytes(dtype, n, k);
    slot->copies = cold ? static_cast<int>((size_t{512} << 20) / slot->packed_bytes + 1) : 1;
    slot->packed.resize(slot->packed_bytes * static_cast<size_t>(slot->copies));
    const int64_t panels = kquant_panel_count(n);
    if (kquant_pack(dtype, slot->gguf.data(), dtype_row_bytes(dtype, k), n, k, slot->packed.data(), 0, panels) !=
        StatusCode::kOk)
      std::abort();
    for (int c = 1; c < slot->copies; ++c)
      std::memcpy(slot->packed.data() + c * slot->packed_bytes, slot->packed.data(), slot->packed_bytes);
  }
  return *slot;
}

void check(StatusCode s, benchmark::State& state) {
  if (s != StatusCode::kOk) state.SkipWithError(status_code_name(s));
}

void BM_Matmul(benchmark::State& state, Isa isa, DType dtype, int64_t m, int64_t n, int64_t k, int threads,
               bool cold, bool packed_path) {
  if (!kquant_isa_usable(isa)) {
    state.SkipWithError("ISA not usable on this CPU");
    return;
  }
  const Weight& w = weight(dtype, n, k, cold);
  std::vector<float> x(static_cast<size_t>(m * k));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& v : x) v = normal(rng);
  std::vector<float> bias(static_cast<size_t>(n), 0.25f);
  std::vector<uint8_t> act(kquant_activation_bytes(m, k));
  std::vector<float> y(static_cast<size_t>(m * n));
  ThreadPool pool(threads);
  const int64_t panels = kquant_panel_count(n);
  const int64_t row_bytes = dtype_row_bytes(dtype, k);
  int copy = 0;
  double total = 0;  // seconds over all iterations (manual timing, so the counters are plain)
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const uint8_t* packed = w.packed.data() + static_cast<size_t>(copy) * w.packed_bytes;
    copy = (copy + 1) % w.copies;
    pool.parallel_for(m, 1, [&](int, int64_t b, int64_t e) {
      check(kquant_quantize_activations(isa, x.data(), k, b, e, k, act.data()), state);
    });
    pool.parallel_for(panels, 1, [&](int, int64_t b, int64_t e) {
      const int64_t c0 = b * kKquantPanel, c1 = std::min(n, e * kKquantPanel);
      check(packed_path ? kquant_matmul_packed_columns(isa, dtype, packed, n, k, bias.data(), act.data(), m,
                                                       y.data(), n, c0, c1)
                        : kquant_matmul_columns(isa, dtype, w.gguf.data(), row_bytes, k, bias.data(), act.data(), m,
                                                y.data(), n, c0, c1),
            state);
    });
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    const double dt = seconds_since(t0);
    state.SetIterationTime(dt);
    total += dt;
  }
  const double iters = static_cast<double>(state.iterations());
  const double bytes = static_cast<double>(w.packed_bytes) * iters / total;  // per second
  const double ops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) * iters / total;
  if (m == 1) {
    state.counters["GB/s"] = bytes / 1e9;
    state.counters["pct_bw"] = 100.0 * bytes / g_ceil.bandwidth[threads];
    state.counters["pct_bw_design"] = 100.0 * bytes / kDesignBandwidth;
  }
  state.counters["GOPS"] = ops / 1e9;
  if (m > 1 && g_ceil.int8[threads] > 0) {
    state.counters["pct_int8"] = 100.0 * ops / g_ceil.int8[threads];
    state.counters["pct_int8_design"] = 100.0 * ops / kDesignInt8;
  }
}

void BM_Pack(benchmark::State& state, DType dtype, int64_t n, int64_t k) {
  const Weight& w = weight(dtype, n, k, false);
  std::vector<uint8_t> out(w.packed_bytes);
  for (auto _ : state) {
    kquant_pack(dtype, w.gguf.data(), dtype_row_bytes(dtype, k), n, k, out.data(), 0, kquant_panel_count(n));
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(w.gguf.size()) / 1e6,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

// With --benchmark_repetitions: "min" of the time / "max" of a rate counter is the best
// repetition, the least disturbed by other work on a shared machine.
double min_of(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double max_of(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

void register_all() {
  const std::pair<DType, const char*> dtypes[] = {{DType::kQ4_K, "q4_K"}, {DType::kQ5_K, "q5_K"}, {DType::kQ6_K, "q6_K"}};
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2}) {
    for (const auto& [dtype, dname] : dtypes) {
      for (int threads : {1, 2}) {
        const std::string base = std::string(isa_name(isa)) + "/" + dname + "/t" + std::to_string(threads);
        struct Shape { const char* name; int64_t m, n, k; bool cold; };
        const Shape shapes[] = {{"gemv_1x1024x2816_hot", 1, 2816, 1024, false},
                                {"gemv_1x1024x2816_cold", 1, 2816, 1024, true},
                                {"gemv_1x2816x1024_hot", 1, 1024, 2816, false},
                                {"gemv_1x2816x1024_cold", 1, 1024, 2816, true},
                                {"gemm_32x1024x2816", 32, 2816, 1024, false},
                                {"gemm_512x1024x2816", 512, 2816, 1024, false}};
        for (const Shape& s : shapes) {
          benchmark::RegisterBenchmark((base + "/" + s.name).c_str(), BM_Matmul, isa, dtype, s.m, s.n, s.k, threads,
                                       s.cold, true)
              ->UseManualTime()
              ->ComputeStatistics("min", min_of)
              ->ComputeStatistics("max", max_of)
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
  // The GGUF-row entry point (panels packed on the fly) for comparison, and the load-time repack.
  for (const auto& [dtype, dname] : dtypes) {
    for (int64_t m : {1, 512}) {
      benchmark::RegisterBenchmark((std::string("avx512/") + dname + "/t2/unpacked_" + std::to_string(m) + "x1024x2816").c_str(),
                                   BM_Matmul, Isa::kAvx512, dtype, m, int64_t{2816}, int64_t{1024}, 2, false, false)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
    benchmark::RegisterBenchmark((std::string("pack/") + dname + "/1024x2816").c_str(), BM_Pack, dtype, int64_t{2816},
                                 int64_t{1024})
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace
}  // namespace llmos::kernels::cpu

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  llmos::kernels::cpu::measure_ceilings();
  llmos::kernels::cpu::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
