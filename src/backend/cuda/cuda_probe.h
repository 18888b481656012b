// Whether this build has CUDA and how many devices the driver reports. The CUDA backend's
// kernels live in kernels/cuda/ and its implementation in this folder; builds without nvcc
// compile cuda_unavailable.cc instead, so callers never need #ifdefs.
#pragma once

#include <string>

namespace llmos {

struct CudaProbe {
  bool compiled = false;   // built with LLMOS_CUDA
  int device_count = 0;    // devices the driver reports (0 when none or no driver)
  std::string detail;      // driver/runtime message, or why there is no device
};

CudaProbe probe_cuda();

}  // namespace llmos
