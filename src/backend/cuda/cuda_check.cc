#include "backend/cuda/cuda_check.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace llmos::cuda {
namespace {

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
  }
}

}  // namespace

StatusCode cuda_status_code(int cuda_error) {
  switch (static_cast<cudaError_t>(cuda_error)) {
    case cudaSuccess: return StatusCode::kOk;
    case cudaErrorMemoryAllocation: return StatusCode::kOutOfMemory;
    // No driver or device: the machine lacks what was asked for.
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice: return StatusCode::kUnsupported;
    default: return StatusCode::kInternal;
  }
}

StatusCode cublas_status_code(int cublas_status) {
  switch (static_cast<cublasStatus_t>(cublas_status)) {
    case CUBLAS_STATUS_SUCCESS: return StatusCode::kOk;
    case CUBLAS_STATUS_ALLOC_FAILED: return StatusCode::kOutOfMemory;
    case CUBLAS_STATUS_NOT_SUPPORTED:
    case CUBLAS_STATUS_ARCH_MISMATCH: return StatusCode::kUnsupported;
    default: return StatusCode::kInternal;
  }
}

void check_cuda(int cuda_error, const char* call, const char* file, int line) {
  const StatusCode code = cuda_status_code(cuda_error);
  if (code == StatusCode::kOk) return;
  const auto err = static_cast<cudaError_t>(cuda_error);
  throw_error(code, "CUDA call ", call, " failed at ", file, ":", line, ": ", cudaGetErrorName(err),
              " (", cudaGetErrorString(err), ")");
}

void check_cublas(int cublas_status, const char* call, const char* file, int line) {
  const StatusCode code = cublas_status_code(cublas_status);
  if (code == StatusCode::kOk) return;
  throw_error(code, "cuBLAS call ", call, " failed at ", file, ":", line, ": ",
              cublas_status_name(static_cast<cublasStatus_t>(cublas_status)));
}

}  // namespace llmos::cuda
