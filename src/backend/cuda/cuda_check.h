// Turns CUDA runtime and cuBLAS status codes into llmos::Error. Every call into either library
// goes through LLMOS_CUDA_CHECK / LLMOS_CUBLAS_CHECK so a failure names the call, the file and
// the line; allocation failures map to kOutOfMemory, everything else to kInternal.
#pragma once

#include "core/error.h"

namespace llmos::cuda {

// The llmos code for a cudaError_t / cublasStatus_t value (given as int so this header needs
// no CUDA include; kOk for success).
StatusCode cuda_status_code(int cuda_error);
StatusCode cublas_status_code(int cublas_status);

// Throw when `status` is not success; `call` is the expression's text.
void check_cuda(int cuda_error, const char* call, const char* file, int line);
void check_cublas(int cublas_status, const char* call, const char* file, int line);

}  // namespace llmos::cuda

#define LLMOS_CUDA_CHECK(call) \
  ::llmos::cuda::check_cuda(static_cast<int>(call), #call, __FILE__, __LINE__)
#define LLMOS_CUBLAS_CHECK(call) \
  ::llmos::cuda::check_cublas(static_cast<int>(call), #call, __FILE__, __LINE__)
