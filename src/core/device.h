// Where a tensor's bytes live. The CPU backend serves kCpu; the CUDA backend (built when
// LLMOS_CUDA is on) serves kCuda.
#pragma once

#include <string>
#include <string_view>

namespace llmos {

enum class DeviceType { kCpu = 0, kCuda = 1 };

struct Device {
  DeviceType type = DeviceType::kCpu;
  int index = 0;

  static Device cpu() { return {DeviceType::kCpu, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::kCuda, index}; }
  bool is_cpu() const { return type == DeviceType::kCpu; }
  bool operator==(const Device&) const = default;
};

std::string device_name(Device device);       // "cpu", "cuda:0"
Device parse_device(std::string_view text);   // inverse of device_name; throws kInvalidArgument

}  // namespace llmos
