#include "backend/cuda/device_pool.h"

#include <bit>

#include "core/error.h"

namespace llmos::cuda {
namespace {

constexpr size_t kSmallGranule = 512;
constexpr size_t kSmallLimit = size_t{1} << 20;
constexpr size_t kLargeGranule = size_t{2} << 20;

size_t round_up(size_t n, size_t granule) { return (n + granule - 1) / granule * granule; }

}  // namespace

DevicePool::DevicePool(RawDeviceAllocator raw) : raw_(std::move(raw)) {
  LLMOS_CHECK_ARG(raw_.allocate && raw_.free, "DevicePool: the raw allocator is incomplete");
}

DevicePool::~DevicePool() {
  // Owners hold the pool alive, so nothing is in use here; destructors must not throw.
  try {
    trim();
  } catch (...) {
  }
}

size_t DevicePool::round_size(size_t bytes) {
  if (bytes == 0) return kSmallGranule;
  LLMOS_CHECK_ARG(bytes <= (size_t{1} << 60), "DevicePool: request of ", bytes, " bytes is too large");
  if (bytes <= 4096) return round_up(bytes, kSmallGranule);
  if (bytes <= kSmallLimit) return std::bit_ceil(bytes);
  return round_up(bytes, kLargeGranule);
}

void* DevicePool::allocate(size_t bytes) {
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cached_.find(size);
  if (it != cached_.end()) {
    void* ptr = it->second;
    cached_.erase(it);
    stats_.bytes_cached -= size;
    stats_.bytes_in_use += size;
    ++stats_.reuses;
    in_use_.emplace(ptr, size);
    return ptr;
  }
  void* ptr = raw_.allocate(size);
  if (ptr == nullptr && !cached_.empty()) {
    trim_locked();
    ptr = raw_.allocate(size);
  }
  if (ptr == nullptr) {
    throw_error(StatusCode::kOutOfMemory, "device memory: cannot allocate ", size, " bytes (",
                stats_.bytes_in_use, " bytes in use by llmos)");
  }
  ++stats_.raw_allocations;
  stats_.bytes_in_use += size;
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.bytes_in_use + stats_.bytes_cached);
  in_use_.emplace(ptr, size);
  return ptr;
}

void DevicePool::release(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = in_use_.find(ptr);
  LLMOS_ASSERT(it != in_use_.end());
  const size_t size = it->second;
  in_use_.erase(it);
  stats_.bytes_in_use -= size;
  stats_.bytes_cached += size;
  cached_.emplace(size, ptr);
}

std::shared_ptr<void> DevicePool::allocate_shared(size_t bytes) {
  void* ptr = allocate(bytes);
  std::shared_ptr<DevicePool> self = shared_from_this();
  return std::shared_ptr<void>(ptr, [self](void* p) {
    try {
      self->release(p);
    } catch (...) {
      // A deleter must not throw; an unknown pointer here is already a reported bug elsewhere.
    }
  });
}

void DevicePool::trim() {
  std::lock_guard<std::mutex> lock(mu_);
  trim_locked();
}

void DevicePool::trim_locked() {
  for (auto& [size, ptr] : cached_) raw_.free(ptr);
  cached_.clear();
  stats_.bytes_cached = 0;
}

DevicePoolStats DevicePool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace llmos::cuda
