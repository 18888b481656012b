// KV block transfers of a device cache (CudaBackend::copy_kv_block / read_kv_block /
// write_kv_block) use the host layout of KvCache::read_block: a block written through write_kv
// reads back with the bytes the CPU cache holds for the same writes. Skips without a device.
#include <gtest/gtest.h>

#if LLMOS_HAVE_CUDA

#include <cstddef>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_probe.h"
#include "core/error.h"
#include "kv/kv_cache.h"

namespace llmos {
namespace {

Tensor random_f32(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Tensor t = Tensor::empty({rows, cols}, DType::kF32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = normal(rng);
  return t;
}

TEST(CudaKvTransfer, BlocksMoveInTheHostCacheLayout) {
  const CudaProbe probe = probe_cuda();
  if (probe.device_count == 0) GTEST_SKIP() << "no CUDA device: " << probe.detail;
  auto gpu_owner = create_backend({Device::cuda(0)});
  auto& gpu = dynamic_cast<CudaBackend&>(*gpu_owner);
  auto cpu = create_backend({Device::cpu(), 1});
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    KvCacheSpec spec;
    spec.num_layers = 3;
    spec.num_kv_heads = 2;
    spec.head_dim = 24;
    spec.block_size = 4;
    spec.num_blocks = 8;
    spec.dtype = dtype;
    KvCache host_cache(spec, *cpu), dev_cache(spec, gpu);
    // Fill blocks 2 and 5 completely, in every layer.
    const std::vector<int64_t> slots{8, 9, 10, 11, 20, 21, 22, 23};
    for (int layer = 0; layer < spec.num_layers; ++layer) {
      const Tensor k = random_f32(8, 48, 10 + layer), v = random_f32(8, 48, 20 + layer);
      cpu->write_kv(host_cache, layer, k, v, slots);
      gpu.write_kv(dev_cache, layer, gpu.upload(k), gpu.upload(v), slots);
    }
    const size_t bytes = static_cast<size_t>(host_cache.block_bytes());
    std::vector<std::byte> want(bytes), got(bytes);
    for (int32_t block : {2, 5}) {
      host_cache.read_block(block, want);
      gpu.read_kv_block(dev_cache, block, got);
      EXPECT_EQ(got, want) << dtype_name(dtype) << " block " << block;
    }
    gpu.copy_kv_block(dev_cache, 5, 1);
    host_cache.read_block(5, want);
    gpu.read_kv_block(dev_cache, 1, got);
    EXPECT_EQ(got, want) << "copy of block 5 into 1";
    std::vector<std::byte> pattern(bytes);
    for (size_t i = 0; i < bytes; ++i) pattern[i] = static_cast<std::byte>(i * 7 + 3);
    gpu.write_kv_block(dev_cache, 6, pattern);
    gpu.read_kv_block(dev_cache, 6, got);
    EXPECT_EQ(got, pattern) << "write then read of block 6";
    EXPECT_THROW(gpu.read_kv_block(dev_cache, 8, got), Error);
    std::vector<std::byte> short_buffer(bytes - 1);
    EXPECT_THROW(gpu.read_kv_block(dev_cache, 1, short_buffer), Error);
  }
}

}  // namespace
}  // namespace llmos

#else

TEST(CudaKvTransfer, Skipped) { GTEST_SKIP() << "built without CUDA"; }

#endif
