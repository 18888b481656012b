#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstring>

#include "backend/cuda/cuda_check.h"
#include "backend/kernel_params.h"
#include "core/error.h"
#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/attention_prefill_cuda.h"
#include "kernels/cuda/attention_prefill_plan.h"
#include "kernels/cuda/elementwise_cuda.h"
#include "kernels/cuda/matmul_cuda.h"
#include "kernels/cuda/rope_kv_cuda.h"
#include "kv/kv_cache.h"
#include "model/batch.h"

namespace llmos {
namespace {

// Launchers return a status; after the front end's checks a failure is a bug or a device fault.
void check_launch(cudaError_t err, const char* kernel, const char* file, int line) {
  if (err == cudaSuccess) return;
  throw_error(cuda::cuda_status_code(err) == StatusCode::kOutOfMemory ? StatusCode::kOutOfMemory
                                                                     : StatusCode::kInternal,
              "CUDA kernel ", kernel, " failed at ", file, ":", line, ": ", cudaGetErrorName(err), " (",
              cudaGetErrorString(err), ")");
}
#define LLMOS_CUDA_LAUNCH(kernel, ...) check_launch(kernel(__VA_ARGS__), #kernel, __FILE__, __LINE__)

void check_rows(int64_t rows, const char* op) {
  if (rows > kernels::cuda::kMaxRows) {
    throw_error(StatusCode::kUnsupported, op, ": the CUDA backend takes at most ",
                kernels::cuda::kMaxRows, " rows per call, got ", rows);
  }
}

// Batches with a prefill chunk over an f16 cache with head_dim 64 or 128 run on the tensor-core
// kernel (decode tokens of the batch included, as rows of their own tiles); decode-only batches
// and other caches stay on the per-token kernels, which split long decode contexts.
bool use_prefill_kernel(const kernels::PagedAttentionParams& p, const Batch& batch) {
  return kernels::cuda::batch_has_prefill(batch.query_start.data(), p.num_seqs) &&
         kernels::cuda::prefill_attention_serves(p);
}

}  // namespace

CudaBackend::CudaBackend(int index) : index_(index) {
  int count = 0;
  LLMOS_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (index < 0 || index >= count) {
    throw_error(StatusCode::kUnsupported, "device cuda:", index, ": the driver reports ", count,
                " CUDA device(s)");
  }
  LLMOS_CUDA_CHECK(cudaSetDevice(index));
  cudaDeviceProp prop{};
  LLMOS_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  name_ = "cuda:" + std::to_string(index) + " (" + prop.name + ", sm_" + std::to_string(prop.major) +
          std::to_string(prop.minor) + ")";
  sm_count_ = std::max(1, prop.multiProcessorCount);
  LLMOS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  try {
    LLMOS_CUBLAS_CHECK(cublasCreate(&cublas_));
    LLMOS_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  } catch (...) {
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
    throw;
  }
  const int dev = index;
  cuda::RawDeviceAllocator raw;
  raw.allocate = [dev](size_t bytes) -> void* {
    LLMOS_CUDA_CHECK(cudaSetDevice(dev));
    void* ptr = nullptr;
    const cudaError_t err = cudaMalloc(&ptr, bytes);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // clear the sticky-free error so later calls start clean
      return nullptr;
    }
    LLMOS_CUDA_CHECK(err);
    return ptr;
  };
  raw.free = [dev](void* ptr) {
    // Freeing runs from destructors; a failure (driver shut down at exit) is not reportable.
    if (cudaSetDevice(dev) == cudaSuccess) (void)cudaFree(ptr);
  };
  pool_ = std::make_shared<cuda::DevicePool>(std::move(raw));
  uploads_ = std::make_unique<cuda::UploadCache>(pool_);
}

CudaBackend::~CudaBackend() {
  uploads_.reset();
  scratch_.reset();
  if (cudaSetDevice(index_) == cudaSuccess) {
    (void)cudaStreamSynchronize(stream_);
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    (void)cudaStreamDestroy(stream_);
  }
  // pool_ lives on while tensors allocated from it do.
}

void CudaBackend::activate() const { LLMOS_CUDA_CHECK(cudaSetDevice(index_)); }

void CudaBackend::synchronize() {
  activate();
  LLMOS_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::check_on_device(const Tensor& t, const char* op, const char* operand) const {
  LLMOS_CHECK_ARG(t.device() == device(), op, ": ", operand, " ", t.describe(), " is on ",
                  device_name(t.device()), ", not on ", device_name(device()));
}

Tensor CudaBackend::alloc(const std::vector<int64_t>& shape, DType dtype) {
  activate();
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) {
    LLMOS_CHECK_ARG(shape[i] >= 0, "alloc: negative dimension in shape");
    rows *= shape[i];
  }
  const int64_t bytes = shape.empty() ? dtype_row_bytes(dtype, 1) : rows * dtype_row_bytes(dtype, shape.back());
  std::shared_ptr<void> block = pool_->allocate_shared(static_cast<size_t>(bytes));
  if (bytes > 0) LLMOS_CUDA_CHECK(cudaMemsetAsync(block.get(), 0, static_cast<size_t>(bytes), stream_));
  return Tensor::borrow(block.get(), shape, dtype, block, device());
}

Tensor CudaBackend::upload(const Tensor& host) {
  LLMOS_CHECK_ARG(host.defined(), "upload: tensor is undefined");
  if (host.device() == device()) return host;
  LLMOS_CHECK_ARG(host.device().is_cpu(), "upload: tensor on ", device_name(host.device()),
                  " is neither on the host nor on ", device_name(device()));
  Tensor out = alloc(host.shape(), host.dtype());
  if (host.is_contiguous()) {
    LLMOS_CUDA_CHECK(cudaMemcpyAsync(out.data(), host.data(), static_cast<size_t>(host.nbytes()),
                                     cudaMemcpyHostToDevice, stream_));
  } else {
    LLMOS_CHECK_ARG(host.ndim() == 2, "upload: a strided tensor must be 2-D, got ", host.describe());
    LLMOS_CUDA_CHECK(cudaMemcpy2DAsync(out.data(), static_cast<size_t>(out.row_bytes()), host.data(),
                                       static_cast<size_t>(host.stride_bytes(0)),
                                       static_cast<size_t>(host.row_bytes()),
                                       static_cast<size_t>(host.dim(0)), cudaMemcpyHostToDevice, stream_));
  }
  // The host bytes may be a temporary (an aligned clone) or an mmap the caller unmaps later.
  synchronize();
  return out;
}

Tensor CudaBackend::download(const Tensor& tensor) {
  LLMOS_CHECK_ARG(tensor.defined(), "download: tensor is undefined");
  if (tensor.device().is_cpu()) return tensor;
  check_on_device(tensor, "download", "tensor");
  activate();
  Tensor host = Tensor::empty(tensor.shape(), tensor.dtype());
  if (tensor.is_contiguous()) {
    LLMOS_CUDA_CHECK(cudaMemcpyAsync(host.data(), tensor.data(), static_cast<size_t>(tensor.nbytes()),
                                     cudaMemcpyDeviceToHost, stream_));
  } else {
    LLMOS_CHECK_ARG(tensor.ndim() == 2, "download: a strided tensor must be 2-D, got ", tensor.describe());
    LLMOS_CUDA_CHECK(cudaMemcpy2DAsync(host.data(), static_cast<size_t>(host.row_bytes()), tensor.data(),
                                       static_cast<size_t>(tensor.stride_bytes(0)),
                                       static_cast<size_t>(tensor.row_bytes()),
                                       static_cast<size_t>(tensor.dim(0)), cudaMemcpyDeviceToHost, stream_));
  }
  LLMOS_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return host;
}

void* CudaBackend::scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    scratch_bytes_ = std::max(bytes, scratch_bytes_ + scratch_bytes_ / 2);
    scratch_ = pool_->allocate_shared(scratch_bytes_);
  }
  return scratch_.get();
}

void CudaBackend::embed_impl(const Tensor& table, std::span<const int32_t> tokens, Tensor& out) {
  check_on_device(table, "embed", "table");
  check_on_device(out, "embed", "out");
  LLMOS_CHECK_ARG(kernels::cuda::weight_dtype_supported(table.dtype()), "embed: the CUDA backend has no ",
                  dtype_name(table.dtype()), " decoder");
  activate();
  const auto* rows = static_cast<const int32_t*>(
      uploads_->upload(cuda::UploadSlot::kTokens, tokens.data(), tokens.size_bytes(), stream_));
  LLMOS_CUDA_LAUNCH(kernels::cuda::dequantize_rows_cuda, table.dtype(), table.data(), table.stride_bytes(0),
                    rows, static_cast<int64_t>(tokens.size()), table.dim(1), DType::kF32, out.data(),
                    row_stride_floats(out), stream_);
}

void CudaBackend::matmul_impl(const Tensor& weight, const Tensor* bias, const Tensor& x, Tensor& y) {
  check_on_device(weight, "matmul", "weight");
  check_on_device(x, "matmul", "x");
  check_on_device(y, "matmul", "y");
  if (bias != nullptr) check_on_device(*bias, "matmul", "bias");
  LLMOS_CHECK_ARG(kernels::cuda::weight_dtype_supported(weight.dtype()), "matmul: the CUDA backend has no ",
                  dtype_name(weight.dtype()), " kernel (supported: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, "
                  "q8_0, q4_K, q5_K, q6_K)");
  check_rows(x.dim(0), "matmul");
  activate();
  if (x.dim(0) <= kernels::cuda::kGemvMaxRows) {
    matmul_gemv(weight, bias, x, y);
    return;
  }
  matmul_cublas(weight, x, y);
  if (bias != nullptr) {
    LLMOS_CUDA_LAUNCH(kernels::cuda::add_bias_cuda, y.data_as<float>(), row_stride_floats(y),
                      bias->data_as<const float>(), y.dim(0), y.dim(1), stream_);
  }
}

void CudaBackend::rms_norm_impl(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
  check_on_device(x, "rms_norm", "x");
  check_on_device(weight, "rms_norm", "weight");
  check_on_device(y, "rms_norm", "y");
  check_rows(x.dim(0), "rms_norm");
  activate();
  const kernels::RmsNormParams p = rms_norm_params(x, weight, eps, y);
  LLMOS_CUDA_LAUNCH(kernels::cuda::rms_norm_cuda, p, stream_);
}

void CudaBackend::rope_impl(Tensor& x, int heads, int head_dim, const RopeSpec& rope,
                            std::span<const int32_t> positions) {
  check_on_device(x, "rope", "x");
  check_rows(x.dim(0), "rope");
  activate();
  kernels::RopeParams p = rope_params(x, heads, head_dim, rope, positions);
  p.positions = static_cast<const int32_t*>(
      uploads_->upload(cuda::UploadSlot::kPositions, positions.data(), positions.size_bytes(), stream_));
  p.inv_freq = static_cast<const float*>(uploads_->upload(
      cuda::UploadSlot::kInvFreq, rope.inv_freq.data(), rope.inv_freq.size() * sizeof(float), stream_));
  LLMOS_CUDA_LAUNCH(kernels::cuda::rope_cuda, p, stream_);
}

void CudaBackend::write_kv_impl(KvCache& cache, int layer, const Tensor& k, const Tensor& v,
                                std::span<const int64_t> slots) {
  check_on_device(cache.k(layer), "write_kv", "KV cache");
  check_on_device(k, "write_kv", "k");
  check_on_device(v, "write_kv", "v");
  check_rows(k.dim(0), "write_kv");
  activate();
  kernels::WriteKvParams p = write_kv_params(cache, layer, k, v, slots);
  p.slots = static_cast<const int64_t*>(
      uploads_->upload(cuda::UploadSlot::kSlots, slots.data(), slots.size_bytes(), stream_));
  LLMOS_CUDA_LAUNCH(kernels::cuda::write_kv_cuda, p, stream_);
}

void CudaBackend::attention_impl(const Tensor& q, const KvCache& cache, int layer, const Batch& batch,
                                 int num_heads, float scale, Tensor& out) {
  check_on_device(cache.k(layer), "attention", "KV cache");
  check_on_device(q, "attention", "q");
  check_on_device(out, "attention", "out");
  const KvCacheSpec& spec = cache.spec();
  if (spec.head_dim > kernels::cuda::kAttentionMaxHeadDim ||
      num_heads / spec.num_kv_heads > kernels::cuda::kAttentionMaxGroup ||
      q.dim(0) > kernels::cuda::kAttentionMaxTokens) {
    throw_error(StatusCode::kUnsupported, "attention: the CUDA kernel serves head_dim <= ",
                kernels::cuda::kAttentionMaxHeadDim, ", <= ", kernels::cuda::kAttentionMaxGroup,
                " query heads per KV head and <= ", kernels::cuda::kAttentionMaxTokens,
                " tokens; got head_dim ", spec.head_dim, ", ", num_heads, " / ", spec.num_kv_heads,
                " heads, ", q.dim(0), " tokens");
  }
  // The batch description is checked on the host, where it lives, before any of it is uploaded.
  kernels::PagedAttentionParams p =
      paged_attention_params(q, cache, layer, batch, num_heads, scale, out);
  LLMOS_CHECK_ARG(static_cast<int>(batch.query_start.size()) == p.num_seqs + 1 &&
                      static_cast<int>(batch.block_indptr.size()) == p.num_seqs + 1 &&
                      batch.query_start.back() == q.dim(0) &&
                      static_cast<size_t>(batch.block_indptr.back()) <= batch.block_indices.size(),
                  "attention: inconsistent batch description");
  if (kernels::validate_paged_attention(p, spec.num_blocks) != StatusCode::kOk) {
    throw_error(StatusCode::kInvalidArgument, "attention: inconsistent batch description");
  }
  activate();
  auto up = [&](cuda::UploadSlot slot, const std::vector<int32_t>& v) {
    return static_cast<const int32_t*>(uploads_->upload(slot, v.data(), v.size() * sizeof(int32_t), stream_));
  };
  p.query_start = up(cuda::UploadSlot::kQueryStart, batch.query_start);
  p.kv_len = up(cuda::UploadSlot::kKvLen, batch.kv_len);
  p.block_indptr = up(cuda::UploadSlot::kBlockIndptr, batch.block_indptr);
  p.block_indices = up(cuda::UploadSlot::kBlockIndices, batch.block_indices);
  if (use_prefill_kernel(p, batch)) {
    kernels::cuda::PrefillPlan plan;
    if (!kernels::cuda::plan_prefill_attention(batch.query_start.data(), batch.kv_len.data(), p.num_seqs,
                                               num_heads / spec.num_kv_heads, kernels::cuda::kPrefillTileRows,
                                               kernels::cuda::kPrefillKvTile, &plan)) {
      throw_error(StatusCode::kInvalidArgument, "attention: inconsistent batch description (prefill plan)");
    }
    // Every layer of a step plans the same tiles: the upload cache copies them once per step.
    const void* tiles = uploads_->upload(cuda::UploadSlot::kPrefillPlan, plan.tiles.data(), plan.bytes(), stream_);
    LLMOS_CUDA_LAUNCH(kernels::cuda::paged_attention_prefill_cuda, p,
                      static_cast<const kernels::cuda::PrefillTile*>(tiles), static_cast<int64_t>(plan.tiles.size()),
                      stream_);
    return;
  }
  token_seq_.resize(static_cast<size_t>(q.dim(0)));
  for (int s = 0; s < p.num_seqs; ++s) {
    std::fill(token_seq_.begin() + batch.query_start[s], token_seq_.begin() + batch.query_start[s + 1], s);
  }
  const int32_t* token_seq = up(cuda::UploadSlot::kTokenSeq, token_seq_);
  int64_t max_context = 0;
  for (int s = 0; s < p.num_seqs; ++s) max_context = std::max<int64_t>(max_context, batch.kv_len[s]);
  const kernels::cuda::SplitPlan plan = kernels::cuda::plan_split_attention(
      q.dim(0), spec.num_kv_heads, num_heads, spec.head_dim, max_context, sm_count_);
  if (plan.split()) {
    LLMOS_CUDA_LAUNCH(kernels::cuda::paged_attention_split_cuda, p, token_seq, q.dim(0), plan,
                      scratch(plan.workspace_bytes), stream_);
  } else {
    LLMOS_CUDA_LAUNCH(kernels::cuda::paged_attention_cuda, p, token_seq, q.dim(0), stream_);
  }
}

void CudaBackend::rope_write_kv_impl(KvCache& cache, int layer, Tensor& q, int num_heads, Tensor& k,
                                     const Tensor& v, const RopeSpec& rope, std::span<const int32_t> positions,
                                     std::span<const int64_t> slots) {
  check_on_device(cache.k(layer), "rope_write_kv", "KV cache");
  check_on_device(q, "rope_write_kv", "q");
  check_on_device(k, "rope_write_kv", "k");
  check_on_device(v, "rope_write_kv", "v");
  check_rows(q.dim(0), "rope_write_kv");
  activate();
  const int head_dim = cache.spec().head_dim;
  kernels::RopeParams qp = rope_params(q, num_heads, head_dim, rope, positions);
  qp.positions = static_cast<const int32_t*>(
      uploads_->upload(cuda::UploadSlot::kPositions, positions.data(), positions.size_bytes(), stream_));
  qp.inv_freq = static_cast<const float*>(uploads_->upload(
      cuda::UploadSlot::kInvFreq, rope.inv_freq.data(), rope.inv_freq.size() * sizeof(float), stream_));
  kernels::WriteKvParams kv = write_kv_params(cache, layer, k, v, slots);
  kv.slots = static_cast<const int64_t*>(
      uploads_->upload(cuda::UploadSlot::kSlots, slots.data(), slots.size_bytes(), stream_));
  LLMOS_CUDA_LAUNCH(kernels::cuda::rope_write_kv_cuda, qp, kv, stream_);
}

void CudaBackend::swiglu_impl(const Tensor& gate, const Tensor& up, Tensor& out) {
  check_on_device(gate, "swiglu", "gate");
  check_on_device(up, "swiglu", "up");
  check_on_device(out, "swiglu", "out");
  check_rows(gate.dim(0), "swiglu");
  activate();
  LLMOS_CUDA_LAUNCH(kernels::cuda::swiglu_cuda, gate.data_as<const float>(), row_stride_floats(gate),
                    up.data_as<const float>(), row_stride_floats(up), out.data_as<float>(), row_stride_floats(out),
                    gate.dim(0), gate.dim(1), stream_);
}

void CudaBackend::add_impl(Tensor& y, const Tensor& x) {
  check_on_device(y, "add", "y");
  check_on_device(x, "add", "x");
  check_rows(y.dim(0), "add");
  activate();
  LLMOS_CUDA_LAUNCH(kernels::cuda::add_cuda, y.data_as<float>(), row_stride_floats(y), x.data_as<const float>(),
                    row_stride_floats(x), y.dim(0), y.dim(1), stream_);
}

void CudaBackend::gather_rows_impl(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) {
  check_on_device(src, "gather_rows", "src");
  check_on_device(dst, "gather_rows", "dst");
  check_rows(static_cast<int64_t>(rows.size()), "gather_rows");
  activate();
  const auto* d_rows = static_cast<const int32_t*>(
      uploads_->upload(cuda::UploadSlot::kRows, rows.data(), rows.size_bytes(), stream_));
  LLMOS_CUDA_LAUNCH(kernels::cuda::gather_rows_cuda, src.data_as<const float>(), row_stride_floats(src), d_rows,
                    static_cast<int64_t>(rows.size()), src.dim(1), dst.data_as<float>(), row_stride_floats(dst),
                    stream_);
}

}  // namespace llmos
