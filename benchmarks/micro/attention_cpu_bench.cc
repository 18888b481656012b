// Fused paged attention on the CPU (kernels/cpu/attention_cpu.h), bench-200m shape: 16 query
// heads, 4 KV heads, head_dim 64, f16 KV cache, block size 16, scattered block tables.
//
// Before the benchmarks it measures and prints the ceilings (read bandwidth over a 1 GiB buffer,
// register-only fp32 FMA loop) next to the DESIGN.md figures (70 GB/s, 520 GFLOP/s at 2 threads).
//   decode/B/kv/threads: B sequences, one query each, kv_len tokens of context. GB/s = K and V
//     bytes read per second; %BW = of the measured bandwidth at that thread count; %70 = of the
//     DESIGN.md 70 GB/s. Each iteration reads another copy of the cache ("layer"), the copies
//     spanning 640 MiB, so K/V come from DRAM as in a model with many layers.
//   prefill/T/kv/threads: one prompt chunk of T queries, causal, kv_len tokens of context (the
//     chunk's own plus kv_len - T earlier ones). GFLOP/s = 4 * head_dim * heads * sum over queries
//     of their context length / time (QK^T and PV multiply-adds, counted as 2; for a fresh causal
//     chunk that is 4 * T * kv * head_dim * heads / 2); %FMA = of the measured fp32 FMA peak at
//     that thread count; %520 = of the DESIGN.md 2-thread fp32 FMA ceiling, 520 GFLOP/s.
// The plan is made once per benchmark (once per step in the backend), outside the timed loop;
// its cost is printed separately.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/matmul_cpu_internal.h"

namespace llmos {
namespace {

using kernels::PagedAttentionParams;
using kernels::cpu::Isa;
using Clock = std::chrono::steady_clock;

constexpr int kHeads = 16, kKvHeads = 4, kHeadDim = 64, kBlockSize = 16;
constexpr size_t kArenaBytes = size_t{640} << 20;
constexpr int kMaxThreads = 2;
constexpr double kDesignBandwidth = 70e9;
constexpr double kDesignFma = 520e9;

ThreadPool& pool(int threads) {
  static ThreadPool one(1), two(2);
  return threads == 1 ? one : two;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ---- Ceilings ----

double g_bandwidth[kMaxThreads + 1];
double g_fma[kMaxThreads + 1];

double measure_bandwidth(int threads) {
  const size_t bytes = size_t{1} << 30;
  const size_t words = bytes / sizeof(uint64_t);
  HostBuffer buf(bytes);
  auto* w = static_cast<uint64_t*>(buf.data());
  for (size_t i = 0; i < words; ++i) w[i] = i;
  double best = 0.0;
  uint64_t sink = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<uint64_t> sums(kMaxThreads, 0);
    const auto t0 = Clock::now();
    pool(threads).parallel_for(threads, 1, [&](int thread, int64_t b, int64_t e) {
      for (int64_t part = b; part < e; ++part) {
        const size_t lo = words / threads * part, hi = words / threads * (part + 1);
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = lo; i < hi; i += 4) {
          s0 += w[i];
          s1 += w[i + 1];
          s2 += w[i + 2];
          s3 += w[i + 3];
        }
        sums[thread] += s0 + s1 + s2 + s3;
      }
    });
    best = std::max(best, static_cast<double>(bytes) / seconds_since(t0));
    for (uint64_t s : sums) sink += s;
  }
  benchmark::DoNotOptimize(sink);
  return best;
}

double measure_fma_peak(int threads) {
  const Isa isa = kernels::cpu::detect_isa();
  if (isa == Isa::kScalar) return 0.0;
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<double> ops(kMaxThreads, 0.0);
    const auto t0 = Clock::now();
    pool(threads).parallel_for(threads, 1, [&](int thread, int64_t, int64_t) {
      using kernels::cpu::detail::PeakLoop;
      ops[thread] = isa == Isa::kAvx512 ? kernels::cpu::detail::peak_loop_avx512(PeakLoop::kFp32Fma, 20'000'000)
                                        : kernels::cpu::detail::peak_loop_avx2(PeakLoop::kFp32Fma, 20'000'000);
    });
    const double t = seconds_since(t0);
    best = std::max(best, std::accumulate(ops.begin(), ops.end(), 0.0) / t);
  }
  return best;
}

void measure_ceilings() {
  std::printf("Ceilings measured now (DESIGN.md ceilings for 2 threads: 70 GB/s read, fp32 FMA 520 GFLOP/s)\n");
  for (int t = 1; t <= kMaxThreads; ++t) {
    g_bandwidth[t] = measure_bandwidth(t);
    g_fma[t] = measure_fma_peak(t);
    std::printf("  %d thread(s): read bandwidth (1 GiB) %6.1f GB/s, fp32 FMA (%s) %6.1f GFLOP/s\n", t,
                g_bandwidth[t] / 1e9, kernels::cpu::isa_name(kernels::cpu::detect_isa()), g_fma[t] / 1e9);
  }
}

// ---- The KV arena: copies ("layers") of one batch's cache, f16 random values ----

struct Arena {
  HostBuffer buf{kArenaBytes};
  Arena() {
    // Random f16 values in about [-2, 2] (exponent 13..15, any mantissa, any sign).
    auto* h = static_cast<uint16_t*>(buf.data());
    uint32_t x = 12345;
    for (size_t i = 0; i < kArenaBytes / 2; ++i) {
      x = x * 1664525u + 1013904223u;
      h[i] = static_cast<uint16_t>(((x >> 16) & 0x83ffu) | ((13u + (x >> 30) % 3u) << 10));
    }
  }
};

Arena& arena() {
  static Arena a;
  return a;
}

struct Workload {
  std::vector<int32_t> query_start{0}, kv_len, block_indptr{0}, block_indices;
  std::vector<float> q, out;
  int64_t layer_bytes = 0;  // K (or V) pool bytes of one layer
  int layers = 1;
  int64_t tokens = 0;
  double context_sum = 0;  // sum over queries of their context length

  // `seqs` sequences of kv tokens, each with n_new queries.
  Workload(int seqs, int kv, int n_new) {
    const int blocks_per_seq = (kv + kBlockSize - 1) / kBlockSize;
    const int64_t num_blocks = int64_t{seqs} * blocks_per_seq;
    layer_bytes = num_blocks * kKvHeads * kBlockSize * kHeadDim * 2;
    layers = static_cast<int>(std::max<int64_t>(1, static_cast<int64_t>(kArenaBytes) / (2 * layer_bytes)));
    std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
    std::iota(ids.begin(), ids.end(), 0);
    std::mt19937 rng(7);
    std::shuffle(ids.begin(), ids.end(), rng);
    block_indices = ids;
    for (int s = 0; s < seqs; ++s) {
      query_start.push_back(query_start.back() + n_new);
      kv_len.push_back(kv);
      block_indptr.push_back((s + 1) * blocks_per_seq);
      for (int j = 0; j < n_new; ++j) context_sum += kv - n_new + j + 1;
    }
    tokens = query_start.back();
    q.resize(static_cast<size_t>(tokens * kHeads * kHeadDim));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (auto& v : q) v = normal(rng);
    out.assign(q.size(), 0.0f);
  }

  PagedAttentionParams params(int layer) {
    PagedAttentionParams p;
    p.q = q.data();
    p.q_stride = kHeads * kHeadDim;
    p.out = out.data();
    p.out_stride = kHeads * kHeadDim;
    auto* base = static_cast<uint8_t*>(arena().buf.data());
    p.k_pool = base + 2 * static_cast<size_t>(layer) * static_cast<size_t>(layer_bytes);
    p.v_pool = base + (2 * static_cast<size_t>(layer) + 1) * static_cast<size_t>(layer_bytes);
    p.kv_dtype = DType::kF16;
    p.num_heads = kHeads;
    p.num_kv_heads = kKvHeads;
    p.head_dim = kHeadDim;
    p.block_size = kBlockSize;
    p.num_seqs = static_cast<int>(kv_len.size());
    p.query_start = query_start.data();
    p.kv_len = kv_len.data();
    p.block_indptr = block_indptr.data();
    p.block_indices = block_indices.data();
    p.scale = 0.125f;
    return p;
  }
};

// Times attention_forward over the workload (a kernel failure ends the benchmark with an error).
void run(benchmark::State& state, Isa isa, Workload& w, int threads, bool cycle_layers) {
  PagedAttentionParams p = w.params(0);
  kernels::cpu::AttentionPlan plan;
  if (kernels::cpu::attention_plan(p, threads, &plan) != StatusCode::kOk) {
    state.SkipWithError("attention_plan failed");
    return;
  }
  HostBuffer ws(std::max<size_t>(64, kernels::cpu::attention_workspace_bytes(plan)));
  int layer = 0;
  for (auto _ : state) {
    p = w.params(layer);
    if (kernels::cpu::attention_forward(pool(threads), isa, p, plan, ws.data()) != StatusCode::kOk) {
      state.SkipWithError("attention_forward failed");
      return;
    }
    benchmark::ClobberMemory();
    if (cycle_layers) layer = (layer + 1) % w.layers;
  }
  state.counters["items"] = static_cast<double>(plan.items.size());
  state.counters["splits"] = static_cast<double>(plan.combines.size());
}

void BM_Decode(benchmark::State& state, Isa isa) {
  const int batch = static_cast<int>(state.range(0)), kv = static_cast<int>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  Workload w(batch, kv, 1);
  run(state, isa, w, threads, true);
  const double bytes = 2.0 * batch * kv * kKvHeads * kHeadDim * 2;  // K and V, f16
  using C = benchmark::Counter;
  state.counters["GB/s"] = C(bytes / 1e9, C::kIsIterationInvariantRate);
  state.counters["%BW"] = C(100.0 * bytes / g_bandwidth[threads], C::kIsIterationInvariantRate);
  state.counters["%70"] = C(100.0 * bytes / kDesignBandwidth, C::kIsIterationInvariantRate);
}

void BM_Prefill(benchmark::State& state, Isa isa) {
  const int t = static_cast<int>(state.range(0)), kv = static_cast<int>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  Workload w(1, kv, t);
  run(state, isa, w, threads, false);
  const double flops = 4.0 * kHeadDim * kHeads * w.context_sum;
  using C = benchmark::Counter;
  state.counters["GFLOP/s"] = C(flops / 1e9, C::kIsIterationInvariantRate);
  if (g_fma[threads] > 0) state.counters["%FMA"] = C(100.0 * flops / g_fma[threads], C::kIsIterationInvariantRate);
  state.counters["%520"] = C(100.0 * flops / kDesignFma, C::kIsIterationInvariantRate);
}

void print_plan_cost() {
  for (int batch : {1, 32}) {
    Workload w(batch, 4096, 1);
    PagedAttentionParams p = w.params(0);
    kernels::cpu::AttentionPlan plan;
    const int reps = 1000;
    const auto t0 = Clock::now();
    for (int i = 0; i < reps; ++i) benchmark::DoNotOptimize(kernels::cpu::attention_plan(p, 2, &plan));
    std::printf("attention_plan, decode B=%d kv 4096, 2 threads: %.2f us (%zu items, %zu splits)\n", batch,
                seconds_since(t0) / reps * 1e6, plan.items.size(), plan.combines.size());
  }
}

void register_benchmarks() {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kScalar}) {
    if (!kernels::cpu::isa_supported(isa)) continue;
    const std::string name = kernels::cpu::isa_name(isa);
    auto* d = benchmark::RegisterBenchmark(("decode/" + name).c_str(), BM_Decode, isa);
    for (int threads : {1, 2}) {
      for (int batch : {1, 8, 32}) {
        for (int kv : {256, 1024, 4096}) {
          if (isa == Isa::kScalar && (batch > 1 || kv > 1024)) continue;  // the scalar path is slow
          d->Args({batch, kv, threads});
        }
      }
    }
    d->ArgNames({"B", "kv", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
    auto* pf = benchmark::RegisterBenchmark(("prefill/" + name).c_str(), BM_Prefill, isa);
    for (int threads : {1, 2}) {
      pf->Args({512, 512, threads});
      if (isa != Isa::kScalar) pf->Args({512, 2048, threads});
    }
    pf->ArgNames({"T", "kv", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
  }
}

}  // namespace
}  // namespace llmos

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  llmos::measure_ceilings();
  llmos::arena();
  llmos::print_plan_cost();
  std::fflush(stdout);
  llmos::register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
