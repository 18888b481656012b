#include "core/allocator.h"

#include <cstdlib>

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

}  // namespace llmos
