// What the CUDA test files share: the skip on a machine without a device, the GPU / reference
// backend pair they compare, random activations and the row-scaled comparison. Include it only
// inside `#if LLMOS_HAVE_CUDA`.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_probe.h"
#include "core/tensor.h"

// Skips the test, saying why, when the driver reports no usable device.
#define REQUIRE_CUDA_DEVICE()                                                          \
  do {                                                                                 \
    const ::llmos::CudaProbe probe_ = ::llmos::probe_cuda();                           \
    if (probe_.device_count == 0) GTEST_SKIP() << "no CUDA device: " << probe_.detail; \
  } while (0)

namespace llmos::cuda_test {

// Device 0 and the scalar reference backend (kernels/ref, double accumulation).
struct Backends {
  std::unique_ptr<Backend> gpu = create_backend({Device::cuda(0)});
  std::unique_ptr<Backend> ref = create_backend({Device::cpu(), 2, true});
};

// A host [rows, cols] f32 tensor of normal(0, scale) values.
inline Tensor random_f32(int64_t rows, int64_t cols, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  Tensor t = Tensor::empty({rows, cols}, DType::kF32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = normal(rng);
  return t;
}

// |got - want| <= tol * max|want row| element by element (NaN fails).
inline void expect_close_rows(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  for (int64_t r = 0; r < want.dim(0); ++r) {
    const auto* g = static_cast<const float*>(got.row(r));
    const auto* w = static_cast<const float*>(want.row(r));
    double scale = 0.0;
    for (int64_t c = 0; c < want.dim(1); ++c) scale = std::max(scale, std::fabs(static_cast<double>(w[c])));
    for (int64_t c = 0; c < want.dim(1); ++c) {
      ASSERT_NEAR(g[c], w[c], tol * scale + 1e-30) << what << " at [" << r << ", " << c << "]";
    }
  }
}

// A device copy of a host vector (cudaMalloc'd, so 256-byte aligned), freed on scope exit.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    LLMOS_CUDA_CHECK(cudaMalloc(&ptr_, bytes == 0 ? 1 : bytes));
  }
  template <typename T>
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size() * sizeof(T)) {
    LLMOS_CUDA_CHECK(cudaMemcpy(ptr_, host.data(), bytes_, cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  template <typename T>
  std::vector<T> download() const {
    std::vector<T> host(bytes_ / sizeof(T));
    LLMOS_CUDA_CHECK(cudaMemcpy(host.data(), ptr_, host.size() * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace llmos::cuda_test
