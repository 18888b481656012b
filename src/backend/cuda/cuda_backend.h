// The CUDA backend: the ops of backend.h on one NVIDIA GPU. Device memory comes from a caching
// pool (cudaMalloc'd blocks, no managed memory); every op is enqueued on one stream, and only
// download() waits for it. Weights are uploaded once at load (Backend::upload); the small host
// arrays of a step (tokens, positions, slots, block tables) are uploaded once per step and
// reused by every layer (UploadCache). Kernels live in kernels/cuda/; F16/BF16/F32 GEMMs with
// more than kGemvMaxRows activation rows run on cuBLAS (see cuda_matmul.cc).
//
// Decode matmuls (<= kGemvMaxRows rows) on q4_0/q8_0/K-quant weights run int8 dp4a GEMVs on
// activations quantized as the CPU does; fused_matmul normalizes and quantizes once for all its
// outputs when they share an activation format (cuda_matmul.cc). Batches with a prefill chunk
// over an f16 cache (head_dim 64/128) run the tensor-core attention kernel; otherwise attention
// splits long decode contexts across CTAs when the launch alone would leave most SMs idle
// (plan_split_attention, kernels/cuda/attention_split.cuh). rope_write_kv is one fused kernel
// (kernels/cuda/rope_kv_cuda.h).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/device_pool.h"
#include "backend/cuda/upload_cache.h"

namespace llmos {

class CudaBackend final : public Backend {
 public:
  // Selects device `index`; kUnsupported when there is no such device.
  explicit CudaBackend(int index = 0);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::cuda(index_); }
  std::string name() const override { return name_; }
  int num_threads() const override { return 1; }

  // Zero-filled device memory (so Backend::alloc_zeros holds on this device too).
  Tensor alloc(const std::vector<int64_t>& shape, DType dtype) override;
  Tensor upload(const Tensor& host) override;
  Tensor download(const Tensor& tensor) override;

  // Block transfers of a KV cache allocated on this backend: what KvCache::copy_block,
  // read_block and write_block do for host caches, with the same host byte layout (every
  // layer's K then V rows of the block). Reads and writes wait until the host buffer is done
  // with; a copy between blocks is only queued.
  void copy_kv_block(KvCache& cache, int32_t src, int32_t dst) override;
  void read_kv_block(const KvCache& cache, int32_t block, std::span<std::byte> host) override;
  void write_kv_block(KvCache& cache, int32_t block, std::span<const std::byte> host) override;

  // Waits for every queued op.
  void synchronize();
  cudaStream_t stream() const { return stream_; }
  const cuda::DevicePool& pool() const { return *pool_; }

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
  // Decode-sized calls whose weights all take the same int8 GEMV: one pass of RMSNorm +
  // quantization shared by every output (cuda_matmul.cc); the rest: the unfused default.
  void fused_matmul_impl(const FusedMatmul& op) override;
  void rope_write_kv_impl(KvCache& cache, int layer, Tensor& q, int num_heads, Tensor& k, const Tensor& v,
                          const RopeSpec& rope, std::span<const int32_t> positions,
                          std::span<const int64_t> slots) override;

 private:
  void activate() const;  // makes this backend's device current on the calling thread
  void check_on_device(const Tensor& t, const char* op, const char* operand) const;
  // Device scratch of at least `bytes`, valid until the next call (stream-ordered reuse).
  void* scratch(size_t bytes);
  // matmul_impl's two paths (cuda_matmul.cc): decode-sized calls on the GEMV kernels, the
  // rest on cuBLAS.
  void matmul_gemv(const Tensor& weight, const Tensor* bias, const Tensor& x, Tensor& y);
  void matmul_cublas(const Tensor& weight, const Tensor& x, Tensor& y);
  // fused_matmul_impl's fused path; false (nothing enqueued) when it does not apply.
  bool fused_matmul_gemv(const FusedMatmul& op);

  int index_ = 0;
  int sm_count_ = 1;  // read once: the split-attention planner sizes launches against it
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::shared_ptr<cuda::DevicePool> pool_;
  std::unique_ptr<cuda::UploadCache> uploads_;
  std::shared_ptr<void> scratch_;
  size_t scratch_bytes_ = 0;
  std::vector<int32_t> token_seq_;
};

}  // namespace llmos
