#include "backend/cuda/upload_cache.h"

#include <cstring>

#include "backend/cuda/cuda_check.h"

namespace llmos::cuda {

const void* UploadCache::upload(UploadSlot slot, const void* host, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return nullptr;
  Entry& e = entries_[static_cast<size_t>(slot)];
  if (e.valid && e.host.size() == bytes && std::memcmp(e.host.data(), host, bytes) == 0) {
    return e.device.get();
  }
  e.valid = false;
  if (bytes > e.capacity) {
    const size_t capacity = std::max(bytes, e.capacity * 2);
    e.device = pool_->allocate_shared(capacity);
    e.capacity = capacity;
  }
  e.host.assign(static_cast<const std::byte*>(host), static_cast<const std::byte*>(host) + bytes);
  // From pageable memory the call returns once the bytes are staged, so e.host may change after.
  LLMOS_CUDA_CHECK(cudaMemcpyAsync(e.device.get(), e.host.data(), bytes, cudaMemcpyHostToDevice, stream));
  e.valid = true;
  ++copies_;
  return e.device.get();
}

}  // namespace llmos::cuda
