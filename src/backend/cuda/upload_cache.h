// Device copies of the small host arrays a step's ops take (token ids, positions, slots, the
// batch's block tables): every layer passes the same arrays again, so each named slot keeps
// its last upload and reuses it while the host bytes are unchanged. Uploads are stream-ordered
// on the backend's stream, so reusing or growing a buffer never races a queued kernel.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <cstddef>
#include <memory>
#include <vector>

#include "backend/cuda/device_pool.h"

namespace llmos::cuda {

enum class UploadSlot {
  kTokens,
  kPositions,
  kSlots,
  kInvFreq,
  kQueryStart,
  kKvLen,
  kBlockIndptr,
  kBlockIndices,
  kTokenSeq,
  kRows,
  kPrefillPlan,  // the tensor-core prefill attention's tiles (the same for every layer)
  kCount,
};

class UploadCache {
 public:
  explicit UploadCache(std::shared_ptr<DevicePool> pool) : pool_(std::move(pool)) {}

  // A device pointer holding `bytes` bytes equal to `host`, valid until the next upload to
  // the same slot (null when bytes == 0).
  const void* upload(UploadSlot slot, const void* host, size_t bytes, cudaStream_t stream);

  size_t copies() const { return copies_; }  // uploads that actually copied (for tests)

 private:
  struct Entry {
    std::vector<std::byte> host;
    std::shared_ptr<void> device;
    size_t capacity = 0;
    bool valid = false;
  };
  std::shared_ptr<DevicePool> pool_;
  std::array<Entry, static_cast<size_t>(UploadSlot::kCount)> entries_;
  size_t copies_ = 0;
};

}  // namespace llmos::cuda
