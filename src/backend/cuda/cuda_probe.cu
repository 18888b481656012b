#include <cuda_runtime.h>

#include "backend/cuda/cuda_probe.h"

namespace llmos {

CudaProbe probe_cuda() {
  CudaProbe probe;
  probe.compiled = true;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    probe.detail = std::string("no usable CUDA device: ") + cudaGetErrorString(err);
    return probe;
  }
  probe.device_count = count;
  if (count > 0) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
      probe.detail = std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
                     std::to_string(prop.minor) + ")";
    }
  } else {
    probe.detail = "the CUDA driver reports no devices";
  }
  return probe;
}

}  // namespace llmos
