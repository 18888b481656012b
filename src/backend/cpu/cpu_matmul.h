// CpuMatmul: the CPU backend's matmul. It prepares each weight once for the active ISA (a
// repacked copy in the layout the kernels stream fastest, or a view of the GGUF bytes), keyed
// by the weight's address, then runs every call in the two phases of kernels/cpu/matmul_cpu.h:
// activations quantized once (rows split over the pool), then output columns split over the
// pool in whole kernel column groups. K-quant weights (Q4_K, Q5_K, Q6_K) go to their own
// kernels (kernels/cpu/matmul_kquant.h). Every path keeps the batch-invariance contract.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/allocator.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/matmul_cpu.h"

namespace llmos {

// Floats between rows of a 2-D f32 tensor (a single row: its length). Shared by the CPU
// backend's kernel calls.
inline int64_t row_stride_floats(const Tensor& t) {
  return t.dim(0) > 1 ? t.stride_bytes(0) / 4 : t.dim(1);
}

class CpuMatmul {
 public:
  CpuMatmul(ThreadPool& pool, kernels::cpu::Isa isa) : pool_(pool), isa_(isa) {}

  // y[m, n] = x[m, k] · weightᵀ (+ bias); operands already validated by the backend front end.
  void run(const Tensor& weight, const Tensor* bias, const Tensor& x, Tensor& y);

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

  ThreadPool& pool_;
  kernels::cpu::Isa isa_;
  mutable std::mutex mutex_;  // guards prepared_ (one forward at a time, but cheap insurance)
  std::unordered_map<const void*, std::unique_ptr<Prepared>> prepared_;
  HostBuffer act_;            // quantized activations, grown to the largest call
  std::vector<std::vector<float>> scratch_;  // per thread (reference fallback rows)
};

}  // namespace llmos
