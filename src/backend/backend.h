// The op contract the model is written against. Ops are few and coarse; each public method is a
// front end that validates shapes and dtypes (kInvalidArgument naming the operand) and then
// calls the device implementation. This is the only place that dispatches on device: the CPU
// backend lives in backend/cpu/, the CUDA backend in backend/cuda/.
//
// Activations are f32 tensors of shape [rows, features] with contiguous rows. Weights are any
// dtype, stored [out_features, in_features] (one output per row).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"

namespace llmos {

class KvCache;
struct Batch;

// One output of fused_matmul: y = input · weightᵀ (+ bias).
struct MatmulOutput {
  const Tensor* weight = nullptr;
  const Tensor* bias = nullptr;  // optional
  Tensor* y = nullptr;
};

// What fused_matmul does with its outputs once they are computed.
enum class MatmulEpilogue {
  kNone,
  kSwiglu,    // two outputs {gate, up}: gate's y becomes silu(gate) * up (up's y is scratch)
  kAddTo,     // one output: residual += y (y is scratch)
};

// Several matmuls of one input, with an optional RMSNorm before and an epilogue after:
//   input = norm_weight ? (h = rms_norm(x) * norm_weight) : x;  y_i = input · W_iᵀ + b_i.
// The transformer block is four of these (QKV, output projection + residual, gate/up + SwiGLU,
// down projection + residual). A backend may fuse the steps (normalise and quantize each row
// once for all weights; apply the epilogue while the outputs are hot) but must give what the
// unfused ops would.
struct FusedMatmul {
  const Tensor* x = nullptr;
  const Tensor* norm_weight = nullptr;  // optional RMSNorm weight [dim]
  float norm_eps = 1e-5f;
  Tensor* h = nullptr;                  // receives the normalised x (with norm_weight)
  std::span<const MatmulOutput> outputs;
  MatmulEpilogue epilogue = MatmulEpilogue::kNone;
  Tensor* residual = nullptr;           // kAddTo
};

struct RopeSpec {
  int rot_dim = 0;              // rotated dimensions per head (even)
  bool neox = false;            // pairing: false = adjacent pairs, true = halves
  std::vector<float> inv_freq;  // [rot_dim / 2], scaling already applied
  float attn_factor = 1.0f;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual Device device() const = 0;
  virtual std::string name() const = 0;
  virtual int num_threads() const = 0;

  // Memory on this backend's device.
  virtual Tensor alloc(const std::vector<int64_t>& shape, DType dtype) = 0;
  Tensor alloc_zeros(const std::vector<int64_t>& shape, DType dtype);
  // Makes a host tensor usable by this backend (the CPU backend returns it as is: no copy).
  virtual Tensor upload(const Tensor& host) = 0;
  // Copies a backend tensor into host memory (CPU: a view, no copy).
  virtual Tensor download(const Tensor& tensor) = 0;

  // out[i] = dequantized row tokens[i] of table.                     out: [T, dim]
  void embed(const Tensor& table, std::span<const int32_t> tokens, Tensor& out);
  // y = x · weightᵀ (+ bias).                                        x: [m, k], y: [m, n]
  void matmul(const Tensor& weight, const Tensor* bias, const Tensor& x, Tensor& y);
  // y = rms_norm(x) * weight (y may be x).                           x, y: [rows, dim]
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y);
  // In-place rotary embedding of x: [T, heads * head_dim].
  void rope(Tensor& x, int heads, int head_dim, const RopeSpec& rope,
            std::span<const int32_t> positions);
  // Writes this step's K and V ([T, kv_heads * head_dim]) into the cache of `layer`.
  void write_kv(KvCache& cache, int layer, const Tensor& k, const Tensor& v,
                std::span<const int64_t> slots);
  // out = softmax(q kᵀ · scale) v over the paged cache, causal per sequence, GQA.
  void attention(const Tensor& q, const KvCache& cache, int layer, const Batch& batch,
                 int num_heads, float scale, Tensor& out);
  // out = silu(gate) * up (out may alias gate).                      [rows, n]
  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out);
  // y += x.
  void add(Tensor& y, const Tensor& x);
  // See FusedMatmul.
  void fused_matmul(const FusedMatmul& op);
  // Rotary embedding of q (in place) and k, then write_kv of the rotated k and v: what
  // rope(q), rope(k), write_kv(...) do, except that k's own contents are unspecified afterwards
  // (the CPU backend rotates K while writing it into the cache).
  void rope_write_kv(KvCache& cache, int layer, Tensor& q, int num_heads, Tensor& k,
                     const Tensor& v, const RopeSpec& rope, std::span<const int32_t> positions,
                     std::span<const int64_t> slots);
  // dst[i] = src[rows[i]].
  void gather_rows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst);

  // Block transfers of a KV cache whose pools live in this backend's device memory (KvCache
  // calls these; a host-memory cache copies bytes itself). A block's host image is every
  // layer's K then V rows, KvCache::block_bytes() long. The default reports kUnsupported.
  virtual void copy_kv_block(KvCache& cache, int32_t src, int32_t dst);
  virtual void read_kv_block(const KvCache& cache, int32_t block, std::span<std::byte> host);
  virtual void write_kv_block(KvCache& cache, int32_t block, std::span<const std::byte> host);

 protected:
  virtual void embed_impl(const Tensor& table, std::span<const int32_t> tokens, Tensor& out) = 0;
  virtual void matmul_impl(const Tensor& weight, const Tensor* bias, const Tensor& x, Tensor& y) = 0;
  virtual void rms_norm_impl(const Tensor& x, const Tensor& weight, float eps, Tensor& y) = 0;
  virtual void rope_impl(Tensor& x, int heads, int head_dim, const RopeSpec& rope,
                         std::span<const int32_t> positions) = 0;
  virtual void write_kv_impl(KvCache& cache, int layer, const Tensor& k, const Tensor& v,
                             std::span<const int64_t> slots) = 0;
  virtual void attention_impl(const Tensor& q, const KvCache& cache, int layer, const Batch& batch,
                              int num_heads, float scale, Tensor& out) = 0;
  virtual void swiglu_impl(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  virtual void add_impl(Tensor& y, const Tensor& x) = 0;
  virtual void gather_rows_impl(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) = 0;
  // Defaults: the unfused ops, in order.
  virtual void fused_matmul_impl(const FusedMatmul& op);
  virtual void rope_write_kv_impl(KvCache& cache, int layer, Tensor& q, int num_heads, Tensor& k,
                                  const Tensor& v, const RopeSpec& rope,
                                  std::span<const int32_t> positions,
                                  std::span<const int64_t> slots);
};

struct BackendOptions {
  Device device = Device::cpu();
  int num_threads = 0;  // 0: one per hardware thread (CPU)
  // CPU: run the scalar reference kernels (double accumulation: the oracle, slow) instead of
  // the fast ISA kernels (kernels/cpu, chosen by kernels::cpu::active_isa()).
  bool reference_kernels = false;
};

// Creates the backend for options.device; kUnsupported when this build or machine lacks it.
std::unique_ptr<Backend> create_backend(const BackendOptions& options);

}  // namespace llmos
