// Matmuls of the CUDA backend. Up to kGemvMaxRows activation rows (decode): the GEMV kernels,
// for Q4_0 / Q8_0 weights the int8 one on 32-value q8 blocks (the q8 math of
// kernels/matmul_q8.h; gemv_q8_cuda.h), for Q4_K / Q5_K / Q6_K the int8 one on 256-value q8_K
// blocks (the K-quant math of kernels/matmul_q8k.h; gemv_q8k_cuda.h), activations quantized on
// the device into scratch; for the other formats the f32 one.
// More rows (prefill): cuBLAS, f32 accumulation (CUBLAS_COMPUTE_32F) throughout:
//   f32 weights:        cublasGemmEx, A/B/C f32 (no TF32: exact enough for greedy parity);
//   f16 / bf16 weights: the activations converted to the weight's type, C f32;
//   quantized weights:  dequantized to f16 in panels of rows (bounded scratch), activations
//                       converted to f16, then the f16 GEMM. Decode-sized calls never come here.
// fused_matmul for decode: when every output's weight takes the same int8 GEMV, the RMSNorm and
// the quantization of its output run as one kernel (norm_quant_cuda.h) and every output's GEMV
// reads the same activation blocks; the results are the unfused ops' bits (same h, same blocks,
// same GEMVs, same epilogue launchers).
#include <cublas_v2.h>

#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/kernel_params.h"
#include "kernels/cuda/gemv_q8_cuda.h"
#include "kernels/cuda/gemv_q8k_cuda.h"
#include "kernels/cuda/matmul_cuda.h"
#include "kernels/cuda/norm_quant_cuda.h"

namespace llmos {
namespace {

constexpr size_t kPanelBytes = size_t{64} << 20;  // dequantized weight rows per GEMM call
constexpr size_t kAlign = 256;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::kF32: return CUDA_R_32F;
    case DType::kBF16: return CUDA_R_16BF;
    default: return CUDA_R_16F;
  }
}

void check_kernel(cudaError_t err, const char* kernel) {
  if (err != cudaSuccess) {
    throw_error(StatusCode::kInternal, "CUDA kernel ", kernel, " failed: ", cudaGetErrorName(err), " (",
                cudaGetErrorString(err), ")");
  }
}

// The activation blocks an int8 GEMV reads.
enum class ActFormat { kNone, kQ8, kQ8K };

ActFormat act_format(const kernels::MatmulParams& p) {
  if (kernels::cuda::gemv_q8_serves(p)) return ActFormat::kQ8;
  if (kernels::cuda::gemv_q8k_serves(p)) return ActFormat::kQ8K;
  return ActFormat::kNone;
}

kernels::MatmulParams gemv_params(const Tensor& weight, const Tensor* bias, const Tensor& x, Tensor& y) {
  kernels::MatmulParams p;
  p.weight = weight.data();
  p.weight_dtype = weight.dtype();
  p.weight_row_bytes = weight.stride_bytes(0);
  p.bias = bias != nullptr ? bias->data_as<const float>() : nullptr;
  p.x = x.data_as<const float>();
  p.x_stride = row_stride_floats(x);
  p.y = y.data_as<float>();
  p.y_stride = row_stride_floats(y);
  p.m = x.dim(0);
  p.n = weight.dim(0);
  p.k = weight.dim(1);
  return p;
}

}  // namespace

void CudaBackend::matmul_gemv(const Tensor& weight, const Tensor* bias, const Tensor& x, Tensor& y) {
  const kernels::MatmulParams p = gemv_params(weight, bias, x, y);
  switch (act_format(p)) {
    case ActFormat::kQ8: {
      auto* act = static_cast<kernels::cuda::Q8ActBlockCuda*>(scratch(kernels::cuda::q8_act_bytes(p.m, p.k)));
      check_kernel(kernels::cuda::quantize_q8_act_cuda(p.x, p.x_stride, p.m, p.k, act, stream_),
                   "quantize_q8_act_cuda");
      check_kernel(kernels::cuda::gemv_q8_cuda(p, act, stream_), "gemv_q8_cuda");
      return;
    }
    case ActFormat::kQ8K: {
      auto* act = static_cast<kernels::cuda::Q8KActBlockCuda*>(scratch(kernels::cuda::q8k_act_bytes(p.m, p.k)));
      check_kernel(kernels::cuda::quantize_q8k_act_cuda(p.x, p.x_stride, p.m, p.k, act, stream_),
                   "quantize_q8k_act_cuda");
      check_kernel(kernels::cuda::gemv_q8k_cuda(p, act, stream_), "gemv_q8k_cuda");
      return;
    }
    case ActFormat::kNone:
      break;
  }
  check_kernel(kernels::cuda::gemv_cuda(p, stream_), "gemv_cuda");
}

void CudaBackend::fused_matmul_impl(const FusedMatmul& op) {
  if (!fused_matmul_gemv(op)) Backend::fused_matmul_impl(op);
}

bool CudaBackend::fused_matmul_gemv(const FusedMatmul& op) {
  const Tensor& x = *op.x;
  const int64_t rows = x.dim(0), k = x.dim(1);
  if (rows < 1 || rows > kernels::cuda::kGemvMaxRows) return false;
  // Backend::fused_matmul checked shapes and aliasing; the devices are checked here, as the
  // unfused ops would.
  check_on_device(x, "fused_matmul", "x");
  const Tensor& input = op.norm_weight != nullptr ? *op.h : x;
  if (op.norm_weight != nullptr) {
    check_on_device(*op.norm_weight, "fused_matmul", "norm weight");
    check_on_device(*op.h, "fused_matmul", "h");
  }
  ActFormat format = ActFormat::kNone;
  for (const MatmulOutput& out : op.outputs) {
    check_on_device(*out.weight, "fused_matmul", "weight");
    check_on_device(*out.y, "fused_matmul", "y");
    if (out.bias != nullptr) check_on_device(*out.bias, "fused_matmul", "bias");
    const ActFormat f = act_format(gemv_params(*out.weight, out.bias, input, *out.y));
    if (f == ActFormat::kNone || (format != ActFormat::kNone && f != format)) return false;
    format = f;
  }
  activate();
  const size_t act_bytes = format == ActFormat::kQ8 ? kernels::cuda::q8_act_bytes(rows, k)
                                                    : kernels::cuda::q8k_act_bytes(rows, k);
  void* act = scratch(act_bytes);
  auto* act_q8 = static_cast<kernels::cuda::Q8ActBlockCuda*>(act);
  auto* act_q8k = static_cast<kernels::cuda::Q8KActBlockCuda*>(act);
  if (op.norm_weight != nullptr) {
    const kernels::RmsNormParams p = rms_norm_params(x, *op.norm_weight, op.norm_eps, *op.h);
    if (format == ActFormat::kQ8) {
      check_kernel(kernels::cuda::rms_norm_quant_q8_cuda(p, act_q8, stream_), "rms_norm_quant_q8_cuda");
    } else {
      check_kernel(kernels::cuda::rms_norm_quant_q8k_cuda(p, act_q8k, stream_), "rms_norm_quant_q8k_cuda");
    }
  } else if (format == ActFormat::kQ8) {
    check_kernel(kernels::cuda::quantize_q8_act_cuda(x.data_as<const float>(), row_stride_floats(x), rows, k,
                                                     act_q8, stream_),
                 "quantize_q8_act_cuda");
  } else {
    check_kernel(kernels::cuda::quantize_q8k_act_cuda(x.data_as<const float>(), row_stride_floats(x), rows, k,
                                                      act_q8k, stream_),
                 "quantize_q8k_act_cuda");
  }
  for (const MatmulOutput& out : op.outputs) {
    const kernels::MatmulParams p = gemv_params(*out.weight, out.bias, input, *out.y);
    if (format == ActFormat::kQ8) {
      check_kernel(kernels::cuda::gemv_q8_cuda(p, act_q8, stream_), "gemv_q8_cuda");
    } else {
      check_kernel(kernels::cuda::gemv_q8k_cuda(p, act_q8k, stream_), "gemv_q8k_cuda");
    }
  }
  // The epilogues are the unfused ops' own launches.
  if (op.epilogue == MatmulEpilogue::kSwiglu) {
    swiglu_impl(*op.outputs[0].y, *op.outputs[1].y, *op.outputs[0].y);
  } else if (op.epilogue == MatmulEpilogue::kAddTo) {
    add_impl(*op.residual, *op.outputs[0].y);
  }
  return true;
}

void CudaBackend::matmul_cublas(const Tensor& weight, const Tensor& x, Tensor& y) {
  const int64_t m = x.dim(0), n = weight.dim(0), k = weight.dim(1);
  const int64_t x_stride = x.dim(0) <= 1 ? k : x.stride_bytes(0) / 4;
  const int64_t y_stride = y.dim(0) <= 1 ? n : y.stride_bytes(0) / 4;
  LLMOS_CHECK_ARG(m <= INT32_MAX && n <= INT32_MAX && k <= INT32_MAX && x_stride <= INT32_MAX &&
                      y_stride <= INT32_MAX,
                  "matmul: shape too large for cuBLAS: ", weight.describe(), " x ", x.describe());
  const float alpha = 1.0f, beta = 0.0f;
  const DType wt = weight.dtype();
  if (wt == DType::kF32) {
    LLMOS_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                                    static_cast<int>(k), &alpha, weight.data(), CUDA_R_32F,
                                    static_cast<int>(weight.stride_bytes(0) / 4), x.data(), CUDA_R_32F,
                                    static_cast<int>(x_stride), &beta, y.data(), CUDA_R_32F,
                                    static_cast<int>(y_stride), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return;
  }
  const bool quantized = dtype_is_quantized(wt);
  const DType act = quantized ? DType::kF16 : wt;  // f16 or bf16
  const size_t x_bytes = align_up(static_cast<size_t>(m * k) * 2);
  const int64_t panel_rows =
      quantized ? std::clamp<int64_t>(static_cast<int64_t>(kPanelBytes / static_cast<size_t>(k * 2)), 1, n) : 0;
  auto* base = static_cast<std::byte*>(scratch(x_bytes + static_cast<size_t>(panel_rows * k) * 2));
  void* x_conv = base;
  void* panel = base + x_bytes;
  check_kernel(kernels::cuda::convert_f32_cuda(x.data_as<const float>(), x_stride, m, k, act, x_conv, stream_),
               "convert_f32_cuda");
  if (!quantized) {
    LLMOS_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                                    static_cast<int>(k), &alpha, weight.data(), cuda_type(wt),
                                    static_cast<int>(weight.stride_bytes(0) / 2), x_conv, cuda_type(act),
                                    static_cast<int>(k), &beta, y.data(), CUDA_R_32F, static_cast<int>(y_stride),
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return;
  }
  for (int64_t n0 = 0; n0 < n; n0 += panel_rows) {
    const int64_t rows = std::min(panel_rows, n - n0);
    check_kernel(kernels::cuda::dequantize_rows_cuda(wt, static_cast<const std::byte*>(weight.data()) +
                                                             n0 * weight.stride_bytes(0),
                                                     weight.stride_bytes(0), nullptr, rows, k, DType::kF16,
                                                     panel, k, stream_),
                 "dequantize_rows_cuda");
    LLMOS_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(m),
                                    static_cast<int>(k), &alpha, panel, CUDA_R_16F, static_cast<int>(k), x_conv,
                                    CUDA_R_16F, static_cast<int>(k), &beta, y.data_as<float>() + n0, CUDA_R_32F,
                                    static_cast<int>(y_stride), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace llmos
