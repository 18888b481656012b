// Compiled instead of the CUDA sources when the build has no nvcc (LLMOS_CUDA=OFF or AUTO
// without a CUDA toolkit).
#include "backend/cuda/cuda_probe.h"

namespace llmos {

CudaProbe probe_cuda() {
  CudaProbe probe;
  probe.detail = "this llmos build has no CUDA support (configure with -DLLMOS_CUDA=ON)";
  return probe;
}

}  // namespace llmos
