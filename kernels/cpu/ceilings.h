// The machine's ceilings, measured on the spot: memory read bandwidth and the peak rates of the
// instructions the matmul kernels are built on. Benchmarks report their figures as fractions of
// these, measured in the same run with the same threads, because a shared VM's figures drift
// too much for constants to mean anything.
//
// Bandwidth: every thread of the pool reads its share of a buffer much larger than the last-level
// cache with full-width loads; the best of a few passes. Peaks: register-only loops of one
// instruction on 12 independent chains (kernels/cpu/*/matmul_peak_*.cc) on every thread at once;
// the best of a few runs, each thread timing its own loop. Everything runs at the active ISA
// level (the one the kernels use).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/isa.h"

namespace llmos {
class ThreadPool;
}

namespace llmos::kernels::cpu {

struct CeilingOptions {
  // Rounded down to a multiple of 256 per thread, and to 1/8 of the physical memory.
  size_t bandwidth_bytes = size_t{1} << 30;
  int bandwidth_passes = 6;
  // Per thread and run, 12 instructions each; fewer where one run would last over 30 ms.
  int64_t peak_iterations = 2'000'000;
  int peak_runs = 5;
};

struct Ceilings {
  Isa isa = Isa::kScalar;  // the level the loops ran at
  int threads = 0;
  size_t bandwidth_bytes = 0;  // the buffer read
  double read_bandwidth = 0;   // bytes/s
  double int8_peak = 0;        // int8 multiply-adds x 2 per second
  double fp32_peak = 0;        // fp32 FMA x 2 per second
  double bf16_peak = 0;        // vdpbf16ps x 2 per second; 0 when the CPU lacks AVX512_BF16
  double seconds = 0;          // how long measuring took
  // The instruction each peak loop used ("vpdpbusd", "vpmaddubsw", "scalar", ...).
  const char* int8_instruction = "";
  const char* fp32_instruction = "";
};

// Measures on every thread of `pool` at active_isa(). Throws kOutOfMemory when the buffer cannot
// be allocated, kInvalidArgument for options that measure nothing.
Ceilings measure_ceilings(ThreadPool& pool, const CeilingOptions& options = {});

// The parts, for benchmarks that want only one. Rates as in Ceilings.
double measure_read_bandwidth(ThreadPool& pool, Isa isa, size_t bytes, int passes);
enum class PeakKind { kInt8, kFp32, kBf16 };
// 0 when `isa` has no loop of that kind (bf16 without AVX512_BF16).
double measure_peak(ThreadPool& pool, Isa isa, PeakKind kind, int64_t iterations, int runs);

}  // namespace llmos::kernels::cpu
