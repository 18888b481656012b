#include "core/device.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace llmos {
namespace {

TEST(Device, DefaultsToCpu) {
  Device d;
  EXPECT_TRUE(d.is_cpu());
  EXPECT_EQ(d, Device::cpu());
  EXPECT_FALSE(Device::cuda(0).is_cpu());
  EXPECT_NE(Device::cuda(0), Device::cuda(1));
  EXPECT_NE(Device::cpu(), Device::cuda(0));
}

TEST(Device, FormatNames) {
  EXPECT_EQ(device_name(Device::cpu()), "cpu");
  EXPECT_EQ(device_name(Device::cuda()), "cuda:0");
  EXPECT_EQ(device_name(Device::cuda(3)), "cuda:3");
}

TEST(Device, ParseRoundTrips) {
  for (Device d :
       {Device::cpu(), Device::cuda(0), Device::cuda(1), Device::cuda(15), Device::cuda(1000)}) {
    EXPECT_EQ(parse_device(device_name(d)), d) << device_name(d);
  }
  EXPECT_EQ(parse_device("cuda"), Device::cuda(0));
  EXPECT_EQ(parse_device("cuda:7"), Device::cuda(7));
}

TEST(Device, RejectsBadNames) {
  for (const char* bad :
       {"", "gpu", "CPU", "Cuda", "cpu:0", "cuda:", "cuda:-1", "cuda:+1", "cuda:1x", "cuda: 1",
        "cuda:1.0", "cuda:99999999999999999999", " cpu", "cpu ", "cuda0", "cuda::1"}) {
    try {
      parse_device(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), StatusCode::kInvalidArgument) << bad;
      // The message quotes the text and lists what would be accepted.
      EXPECT_NE(e.message().find(std::string("'") + bad + "'"), std::string::npos) << e.message();
      EXPECT_NE(e.message().find("cuda:N"), std::string::npos) << e.message();
    }
  }
}

TEST(Device, RejectsEmbeddedNul) {
  const std::string text("cpu\0x", 5);
  EXPECT_THROW(parse_device(text), Error);
}

}  // namespace
}  // namespace llmos
