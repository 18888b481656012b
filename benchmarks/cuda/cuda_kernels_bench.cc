// CUDA backend benchmarks: GEMV (decode) and GEMM (prefill) by weight dtype, paged attention for
// decode and prefill, and the device's ceilings measured in the same run (device-to-device copy
// bandwidth, a large cuBLAS bf16 GEMM). Each op runs through the public Backend API, timed with
// CUDA events on the backend's stream. Prints one "RESULT <name> <value> <unit>" line per
// measurement (scripts/gpu-check.sh turns them into a table). Exits 0 with a note when the
// machine has no CUDA device.
#include <cstdio>

#if LLMOS_HAVE_CUDA

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_probe.h"
#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/batch.h"

namespace llmos {
namespace {

// Mean milliseconds per call of `op` on `stream` (after warm-up).
double time_ms(cudaStream_t stream, const std::function<void()>& op, int iters = 20) {
  for (int i = 0; i < 3; ++i) op();
  cudaEvent_t start, stop;
  LLMOS_CUDA_CHECK(cudaEventCreate(&start));
  LLMOS_CUDA_CHECK(cudaEventCreate(&stop));
  LLMOS_CUDA_CHECK(cudaEventRecord(start, stream));
  for (int i = 0; i < iters; ++i) op();
  LLMOS_CUDA_CHECK(cudaEventRecord(stop, stream));
  LLMOS_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0.0f;
  LLMOS_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / iters;
}

void result(const std::string& name, double value, const char* unit) {
  std::printf("RESULT %s %.3f %s\n", name.c_str(), value, unit);
  std::fflush(stdout);
}

void bench_ceilings(CudaBackend& b) {
  const int64_t bytes = int64_t{1} << 30;
  Tensor src = b.alloc({bytes}, DType::kI8), dst = b.alloc({bytes}, DType::kI8);
  const double ms = time_ms(b.stream(), [&] {
    LLMOS_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice,
                                     b.stream()));
  });
  // A copy reads and writes every byte.
  result("ceiling_d2d_copy", 2.0 * static_cast<double>(bytes) / (ms * 1e6), "GB/s");

  const int n = 8192;
  Tensor a = b.alloc({n, n}, DType::kBF16), bb = b.alloc({n, n}, DType::kBF16), c = b.alloc({n, n}, DType::kF32);
  cublasHandle_t h;
  LLMOS_CUBLAS_CHECK(cublasCreate(&h));
  LLMOS_CUBLAS_CHECK(cublasSetStream(h, b.stream()));
  const float alpha = 1.0f, beta = 0.0f;
  const double gemm_ms = time_ms(b.stream(), [&] {
    LLMOS_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a.data(), CUDA_R_16BF, n,
                                    bb.data(), CUDA_R_16BF, n, &beta, c.data(), CUDA_R_32F, n,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }, 10);
  cublasDestroy(h);
  result("ceiling_cublas_bf16_gemm_8192", 2.0 * n * n * static_cast<double>(n) / (gemm_ms * 1e9), "TFLOP/s");
}

void bench_matmul(CudaBackend& b) {
  const int64_t n = 4096, k = 4096;
  for (DType dt : {DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K}) {
    const std::string name(dtype_name(dt));
    Tensor w = b.alloc({n, k}, dt);  // zero weights: the kernels' speed does not depend on values
    const double weight_bytes = static_cast<double>(w.nbytes());
    for (int64_t m : {1, 4}) {
      Tensor x = b.alloc({m, k}, DType::kF32), y = b.alloc({m, n}, DType::kF32);
      const double ms = time_ms(b.stream(), [&] { b.matmul(w, nullptr, x, y); });
      result("gemv_" + name + "_m" + std::to_string(m) + "_4096x4096", weight_bytes / (ms * 1e6), "GB/s");
    }
    const int64_t m = 512;
    Tensor x = b.alloc({m, k}, DType::kF32), y = b.alloc({m, n}, DType::kF32);
    const double ms = time_ms(b.stream(), [&] { b.matmul(w, nullptr, x, y); }, 10);
    result("gemm_" + name + "_m512_4096x4096", 2.0 * m * n * static_cast<double>(k) / (ms * 1e9), "TFLOP/s");
  }
}

// The int8 GEMVs (Q4_0 / Q8_0 on q8 blocks, Q4_K / Q5_K / Q6_K on q8_K blocks, decode) on the
// shapes of an 8B Llama layer and head, at 1 and 8 rows: few columns (1024, where the kernels
// split k across warps to keep enough bytes in flight), long rows (k = 14336) and many columns
// (32000). GB/s of weight bytes.
void bench_gemv_q8(CudaBackend& b) {
  struct Shape {
    int64_t n, k;
  };
  for (DType dt : {DType::kQ4_0, DType::kQ8_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    for (const Shape s :
         {Shape{1024, 4096}, Shape{14336, 4096}, Shape{4096, 14336}, Shape{32000, 4096}}) {
      // Zero weights: the kernel's speed does not depend on values.
      Tensor w = b.alloc({s.n, s.k}, dt);
      const double weight_bytes = static_cast<double>(w.nbytes());
      for (int64_t m : {1, 8}) {
        Tensor x = b.alloc({m, s.k}, DType::kF32), y = b.alloc({m, s.n}, DType::kF32);
        const double ms = time_ms(b.stream(), [&] { b.matmul(w, nullptr, x, y); });
        result("gemv_" + std::string(dtype_name(dt)) + "_m" + std::to_string(m) + "_" +
                   std::to_string(s.n) + "x" + std::to_string(s.k),
               weight_bytes / (ms * 1e6), "GB/s");
      }
    }
  }
}

// fused_matmul for decode (RMSNorm + quantization once, then every output's int8 GEMV) against
// the unfused ops, on an 8B layer's Q/K/V (4096 -> 4096 + 1024 + 1024) and gate/up + SwiGLU
// (4096 -> 2 x 14336) at 1 and 8 rows. Microseconds per call.
void bench_fused_matmul(CudaBackend& b) {
  const int64_t k = 4096;
  struct Shape {
    const char* name;
    std::vector<int64_t> n;
    MatmulEpilogue epilogue;
  };
  for (DType dt : {DType::kQ4_0, DType::kQ4_K}) {
    for (const Shape& s : {Shape{"qkv", {4096, 1024, 1024}, MatmulEpilogue::kNone},
                           Shape{"gate_up", {14336, 14336}, MatmulEpilogue::kSwiglu}}) {
      std::vector<Tensor> w, y;
      for (int64_t n : s.n) w.push_back(b.alloc({n, k}, dt));
      const Tensor norm = b.alloc({k}, DType::kF32);
      for (int64_t m : {1, 8}) {
        Tensor x = b.alloc({m, k}, DType::kF32), h = b.alloc({m, k}, DType::kF32);
        y.clear();
        for (int64_t n : s.n) y.push_back(b.alloc({m, n}, DType::kF32));
        std::vector<MatmulOutput> outs;
        for (size_t i = 0; i < w.size(); ++i) outs.push_back({&w[i], nullptr, &y[i]});
        FusedMatmul op;
        op.x = &x;
        op.norm_weight = &norm;
        op.h = &h;
        op.outputs = outs;
        op.epilogue = s.epilogue;
        const double fused = time_ms(b.stream(), [&] { b.fused_matmul(op); });
        const double unfused = time_ms(b.stream(), [&] {
          b.rms_norm(x, norm, op.norm_eps, h);
          for (size_t i = 0; i < w.size(); ++i) b.matmul(w[i], nullptr, h, y[i]);
          if (s.epilogue == MatmulEpilogue::kSwiglu) b.swiglu(y[0], y[1], y[0]);
        });
        const std::string name = std::string("fused_matmul_") + s.name + "_" + std::string(dtype_name(dt)) + "_m" +
                                 std::to_string(m);
        result(name, fused * 1e3, "us");
        result(name + "_unfused", unfused * 1e3, "us");
      }
    }
  }
}

struct AttentionShape {
  const char* name;
  int seqs, new_tokens, context;
};

void bench_attention(CudaBackend& b) {
  const int heads = 32, kv_heads = 8, head_dim = 128, block = 16;
  // Decode at batch 1 and 4 with long contexts takes the split-K path (few (token, KV head)
  // pairs for the SMs); batch 16 at 2048 does not.
  for (const AttentionShape& s : {AttentionShape{"decode_b16_ctx2048", 16, 1, 2048},
                                  AttentionShape{"decode_b1_ctx8192", 1, 1, 8192},
                                  AttentionShape{"decode_b1_ctx32768", 1, 1, 32768},
                                  AttentionShape{"decode_b4_ctx32768", 4, 1, 32768},
                                  AttentionShape{"decode_b1_ctx131072", 1, 1, 131072},
                                  AttentionShape{"prefill_b1_t2048", 1, 2048, 2048},
                                  AttentionShape{"prefill_b4_t512", 4, 512, 512}}) {
    KvCacheSpec spec;
    spec.num_layers = 1;
    spec.num_kv_heads = kv_heads;
    spec.head_dim = head_dim;
    spec.block_size = block;
    spec.num_blocks = static_cast<int64_t>(s.seqs) * (s.context / block + 1);
    spec.dtype = DType::kF16;
    KvCache cache(spec, b);
    Batch batch;
    int32_t next = 0;
    for (int i = 0; i < s.seqs; ++i) {
      std::vector<int32_t> table;
      for (int t = 0; t < s.context; t += block) table.push_back(next++);
      batch.add_sequence(std::vector<int32_t>(static_cast<size_t>(s.new_tokens), 1), s.context - s.new_tokens,
                         table, block, Batch::Logits::kNone);
    }
    Tensor q = b.alloc({batch.num_tokens(), heads * head_dim}, DType::kF32);
    Tensor out = b.alloc(q.shape(), DType::kF32);
    const double ms = time_ms(b.stream(), [&] { b.attention(q, cache, 0, batch, heads, 0.088f, out); }, 10);
    if (s.new_tokens == 1) {
      const double kv_bytes = 2.0 * s.seqs * s.context * kv_heads * head_dim * 2.0;
      result(std::string("attention_") + s.name, kv_bytes / (ms * 1e6), "GB/s");
    } else {
      // Causal: half of the score matrix, two matmuls (QK^T and PV) of 2 flops per element.
      const double flops = 4.0 * s.seqs * heads * head_dim * (static_cast<double>(s.new_tokens) * s.new_tokens / 2.0);
      result(std::string("attention_") + s.name, flops / (ms * 1e9), "TFLOP/s");
      result(std::string("attention_") + s.name + "_ms", ms, "ms");
    }
  }
}

}  // namespace
}  // namespace llmos

int main() {
  using namespace llmos;
  const CudaProbe probe = probe_cuda();
  if (probe.device_count == 0) {
    std::printf("cuda_kernels_bench: skipped, no CUDA device (%s)\n", probe.detail.c_str());
    return 0;
  }
  try {
    CudaBackend backend(0);
    std::printf("device: %s\n", backend.name().c_str());
    bench_ceilings(backend);
    bench_matmul(backend);
    bench_gemv_q8(backend);
    bench_fused_matmul(backend);
    bench_attention(backend);
  } catch (const Error& e) {
    std::fprintf(stderr, "cuda_kernels_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

#else

int main() {
  std::printf("cuda_kernels_bench: skipped, built without CUDA\n");
  return 0;
}

#endif
