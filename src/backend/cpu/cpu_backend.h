// The CPU backend: runs the kernels in kernels/ on host memory, split over a persistent thread
// pool. By default the fast kernels of kernels/cpu at the active ISA (AVX-512, AVX2 or their
// scalar twins): weights are repacked once where the kernels want it (CpuMatmul). With
// reference_kernels, the scalar oracles of kernels/ref, weights used in place.
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_matmul.h"
#include "core/allocator.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/isa.h"

namespace llmos {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int num_threads, bool reference_kernels = false);

  Device device() const override { return Device::cpu(); }
  std::string name() const override;
  int num_threads() const override { return pool_.num_threads(); }
  ThreadPool& pool() { return pool_; }

  Tensor alloc(const std::vector<int64_t>& shape, DType dtype) override;
  Tensor upload(const Tensor& host) override;
  Tensor download(const Tensor& tensor) override;

 protected:
  void embed_impl(const Tensor& table, std::span<const int32_t> tokens, Tensor& out) override;
  void matmul_impl(const Tensor& weight, const Tensor* bias, const Tensor& x, Tensor& y) override;
  void rms_norm_impl(const Tensor& x, const Tensor& weight, float eps, Tensor& y) override;
  void rope_impl(Tensor& x, int heads, int head_dim, const RopeSpec& rope,
                 std::span<const int32_t> positions) override;
  void write_kv_impl(KvCache& cache, int layer, const Tensor& k, const Tensor& v,
                     std::span<const int64_t> slots) override;
  void attention_impl(const Tensor& q, const KvCache& cache, int layer, const Batch& batch,
                      int num_heads, float scale, Tensor& out) override;
  void swiglu_impl(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void add_impl(Tensor& y, const Tensor& x) override;
  void gather_rows_impl(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) override;
  void fused_matmul_impl(const FusedMatmul& op) override;
  void rope_write_kv_impl(KvCache& cache, int layer, Tensor& q, int num_heads, Tensor& k,
                          const Tensor& v, const RopeSpec& rope, std::span<const int32_t> positions,
                          std::span<const int64_t> slots) override;

 private:
  // Per-thread scratch for the kernels, grown to the largest call seen (kernels never allocate).
  float* f32_scratch(int thread, size_t count);
  double* f64_scratch(int thread, size_t count);
  void reserve_scratch(size_t f32_count, size_t f64_count);

  void attention_fast(const kernels::PagedAttentionParams& p, Tensor& out);
  // The cos/sin table of `rope` at `positions` ([T][rot_dim / 2][2]). Every layer of a step
  // asks for the same one, so the last table is kept and reused while the positions and the
  // frequencies are unchanged.
  const double* rope_table(const RopeSpec& rope, std::span<const int32_t> positions);

  ThreadPool pool_;
  bool reference_;
  kernels::cpu::Isa isa_;
  CpuMatmul matmul_;
  kernels::cpu::AttentionPlan attention_plan_;
  HostBuffer attention_workspace_;
  struct RopeTable {
    std::vector<int32_t> positions;
    std::vector<float> inv_freq;
    float attn_factor = 0.0f;
    std::vector<double> cos_sin;
  } rope_table_;
  std::vector<std::vector<float>> f32_scratch_;
  std::vector<std::vector<double>> f64_scratch_;
};

}  // namespace llmos
