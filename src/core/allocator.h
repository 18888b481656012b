// Host memory: 64-byte aligned (one cache line, one zmm register) so kernels may use aligned
// loads on any tensor row start that is itself a multiple of 64 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace llmos {

inline constexpr size_t kHostAlignment = 64;

// Allocates size bytes aligned to kHostAlignment; throws kOutOfMemory naming the size on failure.
void* host_alloc(size_t size);
void host_free(void* ptr) noexcept;

// Physical memory of this machine in bytes (0 when the OS does not say).
uint64_t host_physical_memory();

struct HostDeleter {
  void operator()(void* p) const noexcept { host_free(p); }
};

// An owning aligned byte buffer.
class HostBuffer {
 public:
  HostBuffer() = default;
  explicit HostBuffer(size_t size) : data_(host_alloc(size)), size_(size) {}
  void* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  std::unique_ptr<void, HostDeleter> data_;
  size_t size_ = 0;
};

}  // namespace llmos
