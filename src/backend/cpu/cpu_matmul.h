// CpuMatmul: the CPU backend's matmul. It prepares each weight once for the active ISA (a
// repacked copy in the layout the kernels stream fastest, or a view of the GGUF bytes), keyed
// by the weight's address, then runs every call in the two phases of kernels/cpu/matmul_cpu.h:
// activations quantized once (rows split over the pool), then output columns split over the
// pool in whole kernel column groups. K-quant weights (Q4_K, Q5_K, Q6_K) go to their own
// kernels (kernels/cpu/matmul_kquant.h). Every path keeps the batch-invariance contract.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "backend/kernel_params.h"
#include "core/allocator.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/matmul_cpu.h"

namespace llmos {

struct CpuMatmulJob {
  const Tensor* weight = nullptr;
  const Tensor* bias = nullptr;
  Tensor* y = nullptr;
};

class CpuMatmul {
 public:
  CpuMatmul(ThreadPool& pool, kernels::cpu::Isa isa) : pool_(pool), isa_(isa) {}

  // y[m, n] = x[m, k] · weightᵀ (+ bias); operands already validated by the backend front end.
  void run(const Tensor& weight, const Tensor* bias, const Tensor& x, Tensor& y);

  // Several weights over one input x, in one pass of each phase:
  //   phase 1 (rows over the pool): before(row_begin, row_end) — e.g. writes those rows of x
  //     (an RMSNorm) — then the rows are quantized once for every weight of the same format;
  //   phase 2 (columns over the pool): the weights' column groups, concatenated; after each
  //     piece, after(job, col_begin, col_end) runs on the same thread while the outputs are hot.
  // With `paired`, jobs 0 and 1 have the same shape and split identically, a piece computes
  // the same columns of both and after() gets job -1 (SwiGLU consumes gate and up together).
  using RowHook = std::function<void(int64_t row_begin, int64_t row_end)>;
  using ColumnHook = std::function<void(int job, int64_t col_begin, int64_t col_end)>;
  void run_many(std::span<const CpuMatmulJob> jobs, const Tensor& x, const RowHook& before,
                const ColumnHook& after, bool paired);
  // Whether run_many can pair these two weights (same dtype and shape).
  bool can_pair(const Tensor& a, const Tensor& b);

  // Bytes of repacked weight copies held (the load-time cost of repacking).
  size_t packed_bytes() const;

 private:
  struct Prepared {
    bool kquant = false;
    kernels::cpu::PackedWeight generic;  // !kquant
    DType dtype = DType::kF32;           // kquant
    int64_t n = 0, k = 0;
    uint64_t sample = 0;                 // hash of a few bytes: detects a reused address
    HostBuffer packed;                   // kquant panels
  };
  const Prepared& prepare(const Tensor& weight);
  static uint64_t sample_bytes(const Tensor& weight);
  int64_t granule(const Prepared& w) const;
  void compute_columns(const Prepared& w, const Tensor* bias, const Tensor& x, Tensor& y,
                       const void* act, int thread, int64_t n_begin, int64_t n_end);

  ThreadPool& pool_;
  kernels::cpu::Isa isa_;
  mutable std::mutex mutex_;  // guards prepared_ (one forward at a time, but cheap insurance)
  std::unordered_map<const void*, std::unique_ptr<Prepared>> prepared_;
  // Quantized activations, one buffer per distinct format in a call, grown to the largest.
  std::vector<HostBuffer> act_;
  std::vector<std::vector<float>> scratch_;  // per thread (reference fallback rows)
};

}  // namespace llmos
