#include "core/device.h"

#include <charconv>

#include "core/error.h"

namespace llmos {

std::string device_name(Device device) {
  if (device.type == DeviceType::kCpu) return "cpu";
  return "cuda:" + std::to_string(device.index);
}

Device parse_device(std::string_view text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda") return Device::cuda(0);
  if (text.substr(0, 5) == "cuda:") {
    int index = -1;
    auto rest = text.substr(5);
    auto res = std::from_chars(rest.data(), rest.data() + rest.size(), index);
    if (res.ec == std::errc() && res.ptr == rest.data() + rest.size() && index >= 0)
      return Device::cuda(index);
  }
  throw_error(StatusCode::kInvalidArgument, "unknown device '", text,
              "' (expected cpu, cuda or cuda:N)");
}

}  // namespace llmos
