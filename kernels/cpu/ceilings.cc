#include "kernels/cpu/ceilings.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/matmul_cpu_internal.h"

namespace llmos::kernels::cpu {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The empty asm makes a value opaque, so the loops below cannot be folded or hoisted.
template <typename T>
inline void opaque(T& v) {
  __asm__ volatile("" : "+r"(v));
}
inline void opaque(float& v) { __asm__ volatile("" : "+x"(v)); }

constexpr int kChains = 12;

// Baseline x86-64 code (no ISA flags here): what the scalar kernels can hope for.
double scalar_int8_loop(int64_t iterations) {
  int32_t acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = c;
  int32_t a = 3, b = -2;
  for (int64_t it = 0; it < iterations; ++it) {
    opaque(a);
    opaque(b);
    for (int c = 0; c < kChains; ++c) acc[c] += a * b;
  }
  int32_t s = 0;
  for (int c = 0; c < kChains; ++c) s += acc[c];
  opaque(s);
  return static_cast<double>(iterations) * kChains * 2;
}

double scalar_fp32_loop(int64_t iterations) {
  float acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = static_cast<float>(c);
  float a = 0.999f, b = 0.001f;
  for (int64_t it = 0; it < iterations; ++it) {
    opaque(a);
    opaque(b);
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * a + b;
  }
  float s = 0.0f;
  for (int c = 0; c < kChains; ++c) s += acc[c];
  opaque(s);
  return static_cast<double>(iterations) * kChains * 2;
}

double run_loop(Isa isa, PeakKind kind, int64_t iterations) {
  using detail::PeakLoop;
  const PeakLoop loop = kind == PeakKind::kInt8   ? PeakLoop::kInt8Dot
                        : kind == PeakKind::kFp32 ? PeakLoop::kFp32Fma
                                                  : PeakLoop::kBf16Dot;
  switch (isa) {
    case Isa::kAvx512: return detail::peak_loop_avx512(loop, iterations);
    case Isa::kAvx2: return detail::peak_loop_avx2(loop, iterations);
    case Isa::kScalar:
      return kind == PeakKind::kInt8   ? scalar_int8_loop(iterations)
             : kind == PeakKind::kFp32 ? scalar_fp32_loop(iterations)
                                       : 0.0;
  }
  return 0.0;
}

uint64_t read_part(Isa isa, const void* p, size_t bytes) {
  if (isa == Isa::kAvx512) return detail::read_loop_avx512(p, bytes);
  if (isa == Isa::kAvx2) return detail::read_loop_avx2(p, bytes);
  const auto* q = static_cast<const uint64_t*>(p);
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i + 4 <= bytes / 8; i += 4) {
    s0 += q[i];
    s1 += q[i + 1];
    s2 += q[i + 2];
    s3 += q[i + 3];
  }
  return s0 + s1 + s2 + s3;
}

}  // namespace

double measure_read_bandwidth(ThreadPool& pool, Isa isa, size_t bytes, int passes) {
  LLMOS_CHECK_ARG(passes >= 1, "measure_read_bandwidth: passes must be at least 1, got ", passes);
  LLMOS_CHECK_ARG(isa_supported(isa), "measure_read_bandwidth: this CPU lacks ", isa_name(isa));
  const int threads = pool.num_threads();
  // Each thread reads its own part: a multiple of 256 bytes (the read loops' step), 64-aligned.
  const size_t part = bytes / static_cast<size_t>(threads) / 256 * 256;
  LLMOS_CHECK_ARG(part > 0, "measure_read_bandwidth: ", bytes, " bytes is too small for ", threads,
                  " threads");
  HostBuffer buf(part * static_cast<size_t>(threads));
  auto base = [&](int64_t t) {
    return static_cast<uint8_t*>(buf.data()) + part * static_cast<size_t>(t);
  };
  // Touched by the thread that reads it, so the page faults are paid in parallel and up front.
  // Zeros: the AVX-512 read loop's final reduction adds signed lanes (GCC's
  // _mm512_reduce_add_epi64), which other contents could overflow.
  pool.parallel_for(threads, 1, [&](int, int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) std::memset(base(t), 0, part);
  });
  std::vector<uint64_t> sums(static_cast<size_t>(threads), 0);
  double best = 0.0;
  const auto start = Clock::now();
  // Passes stop early past half a second (a slow build or machine): one pass is a fair figure.
  for (int pass = 0; pass < passes && (pass == 0 || seconds_since(start) < 0.5); ++pass) {
    const auto t0 = Clock::now();
    pool.parallel_for(threads, 1, [&](int thread, int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t)
        sums[static_cast<size_t>(thread)] += read_part(isa, base(t), part);
    });
    best = std::max(best, static_cast<double>(part) * threads / seconds_since(t0));
  }
  uint64_t sink = 0;
  for (uint64_t s : sums) sink += s;
  opaque(sink);
  return best;
}

double measure_peak(ThreadPool& pool, Isa isa, PeakKind kind, int64_t iterations, int runs) {
  LLMOS_CHECK_ARG(runs >= 1 && iterations >= 1, "measure_peak: runs (", runs, ") and iterations (",
                  iterations, ") must be positive");
  LLMOS_CHECK_ARG(isa_supported(isa), "measure_peak: this CPU lacks ", isa_name(isa));
  if (kind == PeakKind::kBf16 && !(isa == Isa::kAvx512 && has_avx512_bf16())) return 0.0;
  const int threads = pool.num_threads();
  // Each thread times its own loop and the peak is the sum of the threads' rates: a thread that
  // starts late (woken late, or its range taken by the caller after its own) would otherwise
  // halve a wall-clock figure without the cores being any slower.
  std::vector<double> rate(static_cast<size_t>(threads), 0.0);
  std::vector<double> took(static_cast<size_t>(threads), 0.0);
  auto run = [&](int64_t n) {
    pool.parallel_for(threads, 1, [&](int thread, int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const auto t0 = Clock::now();
        const double done = run_loop(isa, kind, n);
        const double seconds = seconds_since(t0);
        rate[static_cast<size_t>(t)] = done / seconds;
        took[static_cast<size_t>(t)] = seconds;
      }
      (void)thread;
    });
    double total = 0.0, longest = 0.0;
    for (size_t t = 0; t < rate.size(); ++t) {
      total += rate[t];
      longest = std::max(longest, took[t]);
    }
    return std::pair<double, double>{total, longest};
  };
  // A short calibration run: where the loops are slow (an unoptimized build, the scalar level)
  // the runs are shortened to about kMaxRunSeconds, so measuring stays quick. Many short runs,
  // not a few long ones: on a shared machine the best of them is the one nothing interrupted.
  constexpr double kMaxRunSeconds = 0.03;
  const int64_t probe = std::min<int64_t>(iterations, 20'000);
  auto [best, probe_seconds] = run(probe);
  const double per_iteration = probe_seconds / static_cast<double>(probe);
  const double want = per_iteration > 0 ? kMaxRunSeconds / per_iteration : 1e18;
  const int64_t n = std::clamp<int64_t>(
      static_cast<int64_t>(std::min(want, static_cast<double>(iterations))), probe, iterations);
  for (int r = 0; r < runs; ++r) best = std::max(best, run(n).first);
  return best;
}

Ceilings measure_ceilings(ThreadPool& pool, const CeilingOptions& options) {
  const auto t0 = Clock::now();
  Ceilings c;
  c.isa = active_isa();
  c.threads = pool.num_threads();
  // A small machine gets a smaller buffer rather than an allocation failure or swapping.
  size_t bytes = options.bandwidth_bytes;
  if (const uint64_t physical = host_physical_memory(); physical > 0) {
    bytes = std::min<size_t>(bytes, static_cast<size_t>(physical / 8));
  }
  c.read_bandwidth = measure_read_bandwidth(pool, c.isa, bytes, options.bandwidth_passes);
  c.bandwidth_bytes =
      bytes / static_cast<size_t>(c.threads) / 256 * 256 * static_cast<size_t>(c.threads);
  c.int8_peak =
      measure_peak(pool, c.isa, PeakKind::kInt8, options.peak_iterations, options.peak_runs);
  c.fp32_peak =
      measure_peak(pool, c.isa, PeakKind::kFp32, options.peak_iterations, options.peak_runs);
  c.bf16_peak =
      measure_peak(pool, c.isa, PeakKind::kBf16, options.peak_iterations, options.peak_runs);
  switch (c.isa) {
    case Isa::kAvx512:
      c.int8_instruction = "vpdpbusd";
      c.fp32_instruction = "vfmadd zmm";
      break;
    case Isa::kAvx2:
      c.int8_instruction = "vpmaddubsw";
      c.fp32_instruction = "vfmadd ymm";
      break;
    case Isa::kScalar:
      c.int8_instruction = "scalar imul+add";
      c.fp32_instruction = "scalar mul+add";
      break;
  }
  c.seconds = seconds_since(t0);
  return c;
}

}  // namespace llmos::kernels::cpu
