// A read-only memory-mapped file. Model weights are used in place from the mapping: a tensor
// borrowed from a GGUF file holds a shared_ptr to the MmapFile, so the mapping outlives it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace llmos {

class MmapFile {
 public:
  // Maps the whole file read-only; throws kIo naming the path and the OS error.
  static std::shared_ptr<MmapFile> open(const std::string& path);
  ~MmapFile();
  MmapFile(const MmapFile&) = delete;
  MmapFile& operator=(const MmapFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MmapFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace llmos
