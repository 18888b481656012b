// Host-side logic of the CUDA backend that needs no GPU: the device memory pool's bookkeeping
// (with a fake raw allocator), the mapping of CUDA/cuBLAS statuses to llmos errors, and how
// create_backend answers for a CUDA device the machine does not have.
#include <gtest/gtest.h>

#if LLMOS_HAVE_CUDA

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdlib>
#include <map>
#include <set>

#include "backend/backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_probe.h"
#include "backend/cuda/device_pool.h"

namespace llmos {
namespace {

// Hands out host memory and records what is live; can be told to run out after a byte budget.
struct FakeDevice {
  std::set<void*> live;
  size_t budget = SIZE_MAX;
  size_t used = 0;
  size_t frees = 0;

  cuda::RawDeviceAllocator allocator() {
    cuda::RawDeviceAllocator raw;
    raw.allocate = [this](size_t bytes) -> void* {
      if (used + bytes > budget) return nullptr;
      void* p = std::malloc(bytes);
      used += bytes;
      live.insert(p);
      sizes[p] = bytes;
      return p;
    };
    raw.free = [this](void* p) {
      ASSERT_EQ(live.erase(p), 1u) << "freed a block twice or one it never handed out";
      used -= sizes[p];
      ++frees;
      std::free(p);
    };
    return raw;
  }
  std::map<void*, size_t> sizes;
};

TEST(DevicePool, RoundsRequestsToSizeClasses) {
  EXPECT_EQ(cuda::DevicePool::round_size(0), 512u);
  EXPECT_EQ(cuda::DevicePool::round_size(1), 512u);
  EXPECT_EQ(cuda::DevicePool::round_size(513), 1024u);
  EXPECT_EQ(cuda::DevicePool::round_size(5000), 8192u);
  EXPECT_EQ(cuda::DevicePool::round_size((1u << 20) + 1), 2u << 20);
  EXPECT_EQ(cuda::DevicePool::round_size((5u << 20) + 7), 6u << 20);
  for (size_t n : {1u, 700u, 4097u, 70000u, 3000000u}) EXPECT_GE(cuda::DevicePool::round_size(n), n);
}

TEST(DevicePool, ReleasedBlocksAreReusedWithoutNewAllocations) {
  FakeDevice dev;
  auto pool = std::make_shared<cuda::DevicePool>(dev.allocator());
  void* a = pool->allocate(1000);
  void* b = pool->allocate(1000);
  EXPECT_NE(a, b);
  EXPECT_EQ(pool->stats().raw_allocations, 2u);
  EXPECT_EQ(pool->stats().bytes_in_use, 2048u);
  pool->release(a);
  EXPECT_EQ(pool->stats().bytes_cached, 1024u);
  void* c = pool->allocate(900);  // same size class
  EXPECT_EQ(c, a);
  EXPECT_EQ(pool->stats().raw_allocations, 2u);
  EXPECT_EQ(pool->stats().reuses, 1u);
  void* d = pool->allocate(5000);  // another class: a new block
  EXPECT_EQ(pool->stats().raw_allocations, 3u);
  pool->release(b);
  pool->release(c);
  pool->release(d);
  EXPECT_EQ(pool->stats().bytes_in_use, 0u);
  pool->trim();
  EXPECT_TRUE(dev.live.empty());
  EXPECT_EQ(pool->stats().bytes_cached, 0u);
}

TEST(DevicePool, SharedOwnersReturnBlocksAndKeepThePoolAlive) {
  FakeDevice dev;
  std::shared_ptr<void> block;
  {
    auto pool = std::make_shared<cuda::DevicePool>(dev.allocator());
    block = pool->allocate_shared(4096);
    EXPECT_EQ(dev.live.size(), 1u);
  }
  // The pool is gone from this scope but the block's owner keeps it; dropping the block
  // returns it to the pool, whose destructor then frees it.
  EXPECT_EQ(dev.live.size(), 1u);
  block.reset();
  EXPECT_TRUE(dev.live.empty());
}

TEST(DevicePool, TrimsTheCacheWhenTheDeviceRunsOutThenReportsOutOfMemory) {
  FakeDevice dev;
  dev.budget = 4u << 20;
  auto pool = std::make_shared<cuda::DevicePool>(dev.allocator());
  void* a = pool->allocate(3u << 20);  // 4 MiB class
  pool->release(a);
  // The cached 4 MiB block must be freed to make room for a 2 MiB block.
  void* b = pool->allocate(2u << 20);
  EXPECT_EQ(dev.frees, 1u);
  try {
    pool->allocate(3u << 20);
    FAIL() << "expected kOutOfMemory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kOutOfMemory);
    EXPECT_NE(e.message().find("4194304 bytes"), std::string::npos) << e.message();
  }
  pool->release(b);
}

TEST(DevicePool, RejectsUnknownPointers) {
  FakeDevice dev;
  auto pool = std::make_shared<cuda::DevicePool>(dev.allocator());
  int not_from_pool = 0;
  EXPECT_THROW(pool->release(&not_from_pool), Error);
  pool->release(nullptr);  // a no-op
}

TEST(CudaErrors, MapToLlmosStatusCodes) {
  EXPECT_EQ(cuda::cuda_status_code(cudaSuccess), StatusCode::kOk);
  EXPECT_EQ(cuda::cuda_status_code(cudaErrorMemoryAllocation), StatusCode::kOutOfMemory);
  EXPECT_EQ(cuda::cuda_status_code(cudaErrorNoDevice), StatusCode::kUnsupported);
  EXPECT_EQ(cuda::cuda_status_code(cudaErrorIllegalAddress), StatusCode::kInternal);
  EXPECT_EQ(cuda::cublas_status_code(CUBLAS_STATUS_SUCCESS), StatusCode::kOk);
  EXPECT_EQ(cuda::cublas_status_code(CUBLAS_STATUS_ALLOC_FAILED), StatusCode::kOutOfMemory);
  EXPECT_EQ(cuda::cublas_status_code(CUBLAS_STATUS_EXECUTION_FAILED), StatusCode::kInternal);
}

TEST(CudaErrors, MessagesNameTheCallFileAndLine) {
  try {
    LLMOS_CUDA_CHECK(cudaErrorMemoryAllocation);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kOutOfMemory);
    EXPECT_NE(e.message().find("cudaErrorMemoryAllocation"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("cuda_host_test.cc:"), std::string::npos) << e.message();
  }
  try {
    LLMOS_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInternal);
    EXPECT_NE(e.message().find("CUBLAS_STATUS_INVALID_VALUE"), std::string::npos) << e.message();
  }
  EXPECT_NO_THROW(LLMOS_CUDA_CHECK(cudaSuccess));
}

TEST(CudaBackendCreation, AbsentDevicesAreUnsupportedNotCrashes) {
  const CudaProbe probe = probe_cuda();
  EXPECT_TRUE(probe.compiled);
  BackendOptions options;
  options.device = Device::cuda(probe.device_count);  // one past the last device
  try {
    create_backend(options);
    FAIL() << "expected kUnsupported for " << device_name(options.device);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnsupported);
    EXPECT_NE(e.message().find(device_name(options.device)), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace llmos

#else

TEST(CudaHost, Skipped) { GTEST_SKIP() << "built without CUDA"; }

#endif
