// The fast CPU matmul (kernels/cpu/matmul_cpu.h) per ISA x weight dtype x shape x threads, run
// the way the CPU backend runs it: phase 1 (activation quantization) split over rows and phase 2
// split over column groups on one llmos::ThreadPool.
//
// Before the benchmarks it measures and prints the machine's ceilings (read bandwidth over a
// 1 GiB buffer; register-only vpdpbusd, FMA and vdpbf16ps loops) with the DESIGN.md figures
// beside them, and the one-off repack cost of a 2816 x 1024 weight. Counters: GB/s = weight bytes
// read per second (%BW of the measured bandwidth at the same thread count); GOPS = 2mnk / time
// (%peak of the int8, bf16 or fp32 ceiling the kernel's inner instruction has); AVX-512 Q4_0
// GEMMs also get %tile, of the rate of their own register tile on L1-resident data (measured
// at start), which is the most the format's per-block float step allows.
//
// Decode-sized shapes ("cold") cycle through copies of the packed weight spanning 640 MiB, more
// than the last-level cache, so the weight comes from DRAM as it does in a model; the m = 512
// shape reuses one copy (compute bound). LLMOS_BENCH_UNADVERTISED_BF16=1 also measures
// vdpbf16ps (and a bf16dp kernel variant) where CPUID hides AVX512_BF16 but the CPU has it.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/thread_pool.h"
#include "kernels/cpu/matmul_cpu.h"
#include "kernels/cpu/matmul_cpu_internal.h"
#include "quant/quant.h"

namespace llmos {
namespace {

using kernels::cpu::Isa;
using kernels::cpu::PackedWeight;
using kernels::cpu::detail::PeakLoop;
using Clock = std::chrono::steady_clock;

constexpr size_t kArenaBytes = size_t{640} << 20;
constexpr int kMaxThreads = 2;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

ThreadPool& pool(int threads) {
  static ThreadPool one(1), two(2);
  return threads == 1 ? one : two;
}

bool unadvertised_bf16() {
  const char* v = std::getenv("LLMOS_BENCH_UNADVERTISED_BF16");
  return v != nullptr && std::string(v) == "1" && kernels::cpu::isa_supported(Isa::kAvx512);
}
bool bf16_dot_available() { return kernels::cpu::has_avx512_bf16() || unadvertised_bf16(); }

// ---- Ceilings ----

struct Ceilings {
  double bandwidth[kMaxThreads + 1] = {};  // bytes/s
  double int8[3][kMaxThreads + 1] = {};    // ops/s per Isa
  double fp32[3][kMaxThreads + 1] = {};
  double bf16[kMaxThreads + 1] = {};  // AVX-512 vdpbf16ps
  double q4_0_tile[kMaxThreads + 1] = {};  // AVX-512 Q4_0 GEMM register tile on L1 data
};
Ceilings g_ceil;

double measure_bandwidth(int threads) {
  const size_t bytes = size_t{1} << 30;
  HostBuffer buf(bytes);
  std::memset(buf.data(), 1, bytes);
  const Isa isa = kernels::cpu::detect_isa();
  double best = 0.0;
  uint64_t sink = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<uint64_t> sums(kMaxThreads, 0);
    const auto t0 = Clock::now();
    pool(threads).parallel_for(threads, 1, [&](int thread, int64_t b, int64_t e) {
      const size_t part = bytes / static_cast<size_t>(threads);
      for (int64_t t = b; t < e; ++t) {
        const void* p = static_cast<const uint8_t*>(buf.data()) + part * static_cast<size_t>(t);
        if (isa == Isa::kAvx512) {
          sums[thread] += kernels::cpu::detail::read_loop_avx512(p, part);
        } else if (isa == Isa::kAvx2) {
          sums[thread] += kernels::cpu::detail::read_loop_avx2(p, part);
        } else {
          const auto* q = static_cast<const uint64_t*>(p);
          for (size_t i = 0; i < part / 8; ++i) sums[thread] += q[i];
        }
      }
    });
    best = std::max(best, static_cast<double>(bytes) / seconds_since(t0));
    for (uint64_t s : sums) sink += s;
  }
  benchmark::DoNotOptimize(sink);
  return best;
}

// Best of three runs of `loop(iterations)` on each of `threads` threads, in ops/s.
template <class Loop>
double measure_rate(int threads, int64_t iterations, Loop loop) {
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<double> ops(kMaxThreads, 0.0);
    const auto t0 = Clock::now();
    pool(threads).parallel_for(threads, 1, [&](int thread, int64_t, int64_t) {
      ops[thread] = loop(iterations);
    });
    const double t = seconds_since(t0);
    double total = 0.0;
    for (double o : ops) total += o;
    best = std::max(best, total / t);
  }
  return best;
}

double measure_peak(Isa isa, PeakLoop loop, int threads) {
  return measure_rate(threads, 20'000'000, [&](int64_t iterations) {
    return isa == Isa::kAvx512 ? kernels::cpu::detail::peak_loop_avx512(loop, iterations)
                               : kernels::cpu::detail::peak_loop_avx2(loop, iterations);
  });
}

void measure_ceilings() {
  std::printf(
      "Ceilings measured now (DESIGN.md figures for 2 threads: 70 GB/s, int8 1590 GOPS, "
      "bf16 960 GFLOP/s, fp32 520 GFLOP/s)\n");
  for (int t = 1; t <= kMaxThreads; ++t) {
    g_ceil.bandwidth[t] = measure_bandwidth(t);
    std::printf("  read bandwidth, 1 GiB, %d thread(s): %7.1f GB/s\n", t,
                g_ceil.bandwidth[t] / 1e9);
  }
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2}) {
    if (!kernels::cpu::isa_supported(isa)) continue;
    const int i = static_cast<int>(isa);
    for (int t = 1; t <= kMaxThreads; ++t) {
      g_ceil.int8[i][t] = measure_peak(isa, PeakLoop::kInt8Dot, t);
      g_ceil.fp32[i][t] = measure_peak(isa, PeakLoop::kFp32Fma, t);
      std::printf("  %-6s %d thread(s): int8 %s %7.1f GOPS, fp32 FMA %7.1f GFLOP/s\n",
                  kernels::cpu::isa_name(isa), t, isa == Isa::kAvx512 ? "vpdpbusd " : "vpmaddubsw",
                  g_ceil.int8[i][t] / 1e9, g_ceil.fp32[i][t] / 1e9);
      if (isa == Isa::kAvx512) {
        g_ceil.q4_0_tile[t] = measure_rate(t, 200'000, kernels::cpu::detail::q4_0_tile_loop_avx512);
        std::printf(
            "  avx512 %d thread(s): Q4_0 GEMM register tile on L1 data %7.1f GOPS = %.1f%% of "
            "vpdpbusd (the cap of the format's per-block float step)\n",
            t, g_ceil.q4_0_tile[t] / 1e9, 100.0 * g_ceil.q4_0_tile[t] / g_ceil.int8[i][t]);
      }
      if (isa == Isa::kAvx512 && bf16_dot_available()) {
        g_ceil.bf16[t] = measure_peak(isa, PeakLoop::kBf16Dot, t);
        std::printf("  avx512 %d thread(s): bf16 vdpbf16ps %7.1f GFLOP/s%s\n", t,
                    g_ceil.bf16[t] / 1e9,
                    kernels::cpu::has_avx512_bf16() ? "" : " (not advertised by CPUID)");
      }
    }
  }
  if (!bf16_dot_available()) {
    std::printf(
        "  bf16 vdpbf16ps: n/a, CPUID does not advertise AVX512_BF16 "
        "(LLMOS_BENCH_UNADVERTISED_BF16=1 to try it anyway)\n");
  }
  // The scalar path is judged against the machine's best ceilings.
  const int best = static_cast<int>(kernels::cpu::detect_isa());
  for (int t = 1; t <= kMaxThreads; ++t) {
    g_ceil.int8[0][t] = g_ceil.int8[best][t];
    g_ceil.fp32[0][t] = g_ceil.fp32[best][t];
  }
}

// ---- Weights ----

std::vector<uint8_t> make_gguf_weight(DType dtype, int64_t n, int64_t k) {
  std::mt19937 rng(static_cast<uint32_t>(n * 31 + k));
  std::normal_distribution<float> normal(0.0f, 0.05f);
  const int64_t row_bytes = dtype_row_bytes(dtype, k);
  std::vector<uint8_t> w(static_cast<size_t>(n * row_bytes));
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t j = 0; j < n; ++j) {
    for (auto& v : row) v = normal(rng);
    quantize_row(dtype, row.data(), w.data() + j * row_bytes, k);
  }
  return w;
}

// One cached GGUF weight (benchmarks run in registration order, so the same weight repeats).
const std::vector<uint8_t>& gguf_weight(DType dtype, int64_t n, int64_t k) {
  static std::string key;
  static std::vector<uint8_t> w;
  const std::string want =
      std::string(dtype_name(dtype)) + "/" + std::to_string(n) + "x" + std::to_string(k);
  if (key != want) {
    w = make_gguf_weight(dtype, n, k);
    key = want;
  }
  return w;
}

PackedWeight pack(Isa isa, DType dtype, const void* data, int64_t n, int64_t k, bool dp) {
  if (dp) {
    return kernels::cpu::detail::pack_weight_layout(isa, kernels::cpu::detail::kLayoutBf16Dp, dtype,
                                                    data, n, k, dtype_row_bytes(dtype, k));
  }
  return kernels::cpu::pack_weight(isa, dtype, data, n, k, dtype_row_bytes(dtype, k));
}

size_t weight_bytes(const PackedWeight& w) {
  return w.owned ? w.owned_bytes : static_cast<size_t>(w.n * w.row_bytes);
}

// Copies of a packed weight filling the arena (cold) or just the weight itself (hot).
struct Ring {
  std::string key;
  std::unique_ptr<void, HostDeleter> arena;
  std::vector<PackedWeight> copies;
};
Ring g_ring;

const std::vector<PackedWeight>& ring_of(const std::string& key, const PackedWeight& w, bool cold) {
  if (g_ring.key == key + (cold ? "/cold" : "/hot")) return g_ring.copies;
  g_ring.copies.clear();
  g_ring.key = key + (cold ? "/cold" : "/hot");
  if (!cold) {
    g_ring.copies.push_back(w);
    return g_ring.copies;
  }
  if (!g_ring.arena) g_ring.arena.reset(host_alloc(kArenaBytes));
  const size_t bytes = (weight_bytes(w) + 4095) / 4096 * 4096;
  const size_t count = std::max<size_t>(1, kArenaBytes / bytes);
  for (size_t c = 0; c < count; ++c) {
    auto* dst = static_cast<uint8_t*>(g_ring.arena.get()) + c * bytes;
    std::memcpy(dst, w.data, weight_bytes(w));
    PackedWeight copy = w;
    copy.owned.reset();  // the arena owns the bytes
    copy.data = dst;
    g_ring.copies.push_back(copy);
  }
  return g_ring.copies;
}

// ---- The benchmark ----

struct Case {
  Isa isa;
  DType dtype;
  bool dp;  // BF16 through vdpbf16ps
  int64_t m, k, n;
  bool cold;
  int threads;
};

void bm_matmul(benchmark::State& state, Case c) {
  const std::vector<uint8_t>& gguf = gguf_weight(c.dtype, c.n, c.k);
  const PackedWeight packed = pack(c.isa, c.dtype, gguf.data(), c.n, c.k, c.dp);
  const std::string key = std::string(kernels::cpu::isa_name(c.isa)) + "/" +
                          std::string(dtype_name(c.dtype)) + (c.dp ? "dp/" : "/") +
                          std::to_string(c.n) + "x" + std::to_string(c.k);
  const std::vector<PackedWeight>& ring = ring_of(key, packed, c.cold);

  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(c.m * c.k)), y(static_cast<size_t>(c.m * c.n));
  for (auto& v : x) v = normal(rng);
  HostBuffer act(std::max<size_t>(64, kernels::cpu::activation_bytes(packed, c.m)));
  std::vector<std::vector<float>> scratch(kMaxThreads,
                                          std::vector<float>(kernels::cpu::scratch_floats(packed)));
  const bool quantized_x = kernels::cpu::activation_bytes(packed, c.m) > 0;
  const int64_t granule = kernels::cpu::column_granule(packed);
  const int64_t groups = (c.n + granule - 1) / granule;
  const int64_t row_grain = std::max<int64_t>(1, 16384 / c.k);
  ThreadPool& tp = pool(c.threads);
  size_t next = 0;
  std::atomic<int> failures{0};

  const auto t0 = Clock::now();
  for (auto _ : state) {
    const PackedWeight& w = ring[next];
    next = next + 1 == ring.size() ? 0 : next + 1;
    if (quantized_x) {
      tp.parallel_for(c.m, row_grain, [&](int, int64_t b, int64_t e) {
        if (kernels::cpu::quantize_activations(w, x.data(), c.k, b, e, act.data()) !=
            StatusCode::kOk)
          ++failures;
      });
    }
    tp.parallel_for(groups, 1, [&](int thread, int64_t b, int64_t e) {
      kernels::cpu::MatmulArgs a;
      a.weight = &w;
      a.x = x.data();
      a.x_stride = c.k;
      a.act = act.data();
      a.y = y.data();
      a.y_stride = c.n;
      a.m = c.m;
      a.scratch = scratch[static_cast<size_t>(thread)].data();
      if (kernels::cpu::matmul_columns(a, b * granule, std::min(c.n, e * granule)) !=
          StatusCode::kOk)
        ++failures;
    });
    benchmark::DoNotOptimize(y.data());
  }
  if (failures.load() != 0) state.SkipWithError("a kernel returned an error");

  const double seconds = seconds_since(t0) / static_cast<double>(state.iterations());
  const double bytes = static_cast<double>(weight_bytes(packed));
  const double ops = 2.0 * static_cast<double>(c.m * c.n * c.k);
  const int isa = static_cast<int>(c.isa);
  const double peak = c.dtype == DType::kQ4_0 || c.dtype == DType::kQ8_0
                          ? g_ceil.int8[isa][c.threads]
                      : c.dp ? g_ceil.bf16[c.threads]
                             : g_ceil.fp32[isa][c.threads];
  // Plain values (not rates), so they print as GB/s and percentages.
  state.counters["GB/s"] = bytes / seconds / 1e9;
  state.counters["%BW"] = 100.0 * bytes / seconds / g_ceil.bandwidth[c.threads];
  state.counters["GOPS"] = ops / seconds / 1e9;
  state.counters["%peak"] = peak > 0 ? 100.0 * ops / seconds / peak : 0.0;
  if (c.isa == Isa::kAvx512 && c.dtype == DType::kQ4_0 && c.m >= 4) {
    state.counters["%tile"] = 100.0 * ops / seconds / g_ceil.q4_0_tile[c.threads];
  }
}

// ---- Repack cost ----

void print_repack_costs() {
  std::printf("Repack cost, 2816 x 1024 weight (pack_weight at load; median of 5):\n");
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2}) {
    if (!kernels::cpu::isa_supported(isa)) continue;
    for (DType dtype : {DType::kQ4_0, DType::kQ8_0, DType::kF16, DType::kBF16, DType::kF32}) {
      const int64_t n = 2816, k = 1024;
      const std::vector<uint8_t> w = make_gguf_weight(dtype, n, k);
      std::vector<double> ms;
      size_t bytes = 0;
      for (int rep = 0; rep < 5; ++rep) {
        const auto t0 = Clock::now();
        const PackedWeight pw =
            kernels::cpu::pack_weight(isa, dtype, w.data(), n, k, dtype_row_bytes(dtype, k));
        ms.push_back(seconds_since(t0) * 1e3);
        bytes = weight_bytes(pw);
      }
      std::sort(ms.begin(), ms.end());
      std::printf("  %-6s %-5s %8.2f ms   GGUF %9zu bytes -> packed %9zu bytes\n",
                  kernels::cpu::isa_name(isa), std::string(dtype_name(dtype)).c_str(), ms[2],
                  w.size(), bytes);
    }
  }
}

void register_benchmarks() {
  struct Shape {
    const char* name;
    int64_t m, k, n;
    bool cold;
  };
  const Shape shapes[] = {{"gemv_1x1024x2816", 1, 1024, 2816, true},
                          {"gemv_1x2816x1024", 1, 2816, 1024, true},
                          {"gemv_1x1024x32000", 1, 1024, 32000, true},
                          {"gemm_32x1024x2816", 32, 1024, 2816, true},
                          {"gemm_512x1024x2816", 512, 1024, 2816, false}};
  struct Type {
    const char* name;
    DType dtype;
    bool dp;
  };
  std::vector<Type> types{{"q4_0", DType::kQ4_0, false},
                          {"q8_0", DType::kQ8_0, false},
                          {"f16", DType::kF16, false},
                          {"bf16", DType::kBF16, false},
                          {"f32", DType::kF32, false}};
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kScalar}) {
    if (!kernels::cpu::isa_supported(isa)) continue;
    std::vector<Type> isa_types = types;
    // Where CPUID advertises AVX512_BF16, "bf16" already runs vdpbf16ps.
    if (isa == Isa::kAvx512 && unadvertised_bf16() && !kernels::cpu::has_avx512_bf16()) {
      isa_types.insert(isa_types.begin() + 4, {"bf16dp", DType::kBF16, true});
    }
    for (const Type& type : isa_types) {
      for (const Shape& s : shapes) {
        // The scalar path is the exact reference: far too slow for prefill-sized products.
        if (isa == Isa::kScalar && s.m > 32) continue;
        for (int threads = 1; threads <= kMaxThreads; ++threads) {
          const std::string name = std::string("matmul/") + kernels::cpu::isa_name(isa) + "/" +
                                   type.name + "/" + s.name + "/t" + std::to_string(threads);
          const Case c{isa, type.dtype, type.dp, s.m, s.k, s.n, s.cold, threads};
          benchmark::RegisterBenchmark(name.c_str(), bm_matmul, c)
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
}

}  // namespace
}  // namespace llmos

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::printf("active ISA %s; AVX512_BF16 advertised: %s\n",
              llmos::kernels::cpu::isa_name(llmos::kernels::cpu::detect_isa()),
              llmos::kernels::cpu::has_avx512_bf16() ? "yes" : "no");
  llmos::measure_ceilings();
  llmos::print_repack_costs();
  std::fflush(stdout);
  llmos::register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
