// A caching pool of device memory. Blocks come from a raw allocator (cudaMalloc in the CUDA
// backend, a fake in tests), rounded up to size classes; freeing a block returns it to the pool,
// and a later request of the same class takes it back without a driver call. When the raw
// allocator runs out, the cached blocks are released and the request is tried once more.
// Host-side bookkeeping only: it never touches the memory it hands out. Thread-safe (tensors
// may be freed on any thread).
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace llmos::cuda {

struct RawDeviceAllocator {
  // Returns null when the device is out of memory; throws llmos::Error on any other failure.
  std::function<void*(size_t bytes)> allocate;
  std::function<void(void* ptr)> free;
};

struct DevicePoolStats {
  size_t bytes_in_use = 0;     // handed out, not yet released
  size_t bytes_cached = 0;     // released, kept for reuse
  size_t peak_bytes = 0;       // max of in_use + cached
  size_t raw_allocations = 0;  // calls to the raw allocator that succeeded
  size_t reuses = 0;           // requests served from the cache
};

class DevicePool : public std::enable_shared_from_this<DevicePool> {
 public:
  explicit DevicePool(RawDeviceAllocator raw);
  ~DevicePool();  // frees the cached blocks
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  // Size class of a request: multiples of 512 bytes up to 1 MiB (powers of two above 4 KiB),
  // multiples of 2 MiB above.
  static size_t round_size(size_t bytes);

  // A block of at least `bytes` (never null; bytes == 0 gives a minimal block). Throws
  // kOutOfMemory naming the size and the pool's usage when even a trimmed pool cannot serve it.
  void* allocate(size_t bytes);
  // Returns a block from allocate() to the cache; kInternal for an unknown pointer.
  void release(void* ptr);
  // A shared owner for a block: releasing the last copy returns the block to this pool, and
  // the owner keeps the pool alive.
  std::shared_ptr<void> allocate_shared(size_t bytes);
  // Frees every cached block through the raw allocator.
  void trim();

  DevicePoolStats stats() const;

 private:
  void trim_locked();

  RawDeviceAllocator raw_;
  mutable std::mutex mu_;
  std::unordered_map<void*, size_t> in_use_;  // pointer -> size class
  std::multimap<size_t, void*> cached_;       // size class -> free blocks
  DevicePoolStats stats_;
};

}  // namespace llmos::cuda
