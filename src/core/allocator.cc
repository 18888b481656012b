#include "core/allocator.h"

#include <cstdlib>

#include <unistd.h>

#include "core/error.h"

namespace llmos {

void* host_alloc(size_t size) {
  if (size == 0) size = kHostAlignment;
  const size_t rounded = (size + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
  if (rounded < size) throw_error(StatusCode::kOutOfMemory, "allocation of ", size, " bytes overflows");
  void* p = std::aligned_alloc(kHostAlignment, rounded);
  if (p == nullptr) throw_error(StatusCode::kOutOfMemory, "cannot allocate ", size, " bytes of host memory");
  return p;
}

void host_free(void* ptr) noexcept { std::free(ptr); }

uint64_t host_physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
}

}  // namespace llmos
