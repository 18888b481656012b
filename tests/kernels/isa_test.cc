// ISA detection and the LLMOS_ISA override.
#include <gtest/gtest.h>

#include "core/error.h"
#include "kernels/cpu/isa.h"

namespace llmos::kernels::cpu {
namespace {

TEST(Isa, LevelsAreOrderedAndScalarIsAlwaysThere) {
  EXPECT_TRUE(isa_supported(Isa::kScalar));
  // A CPU with AVX-512 (as llmos defines it) has the AVX2 level too.
  if (isa_supported(Isa::kAvx512)) {
    EXPECT_TRUE(isa_supported(Isa::kAvx2));
  }
  EXPECT_TRUE(isa_supported(detect_isa()));
  for (Isa better : {Isa::kAvx2, Isa::kAvx512}) {
    if (static_cast<int>(better) > static_cast<int>(detect_isa())) {
      EXPECT_FALSE(isa_supported(better)) << isa_name(better);
    }
  }
}

TEST(Isa, NamesParseBackAndUnknownNamesAreErrors) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) EXPECT_EQ(parse_isa(isa_name(isa)), isa);
  try {
    parse_isa("sse9");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("sse9"), std::string::npos);
  }
}

TEST(Isa, ActiveLevelFollowsTheEnvironment) {
  // ctest runs this binary as is; LLMOS_ISA may be set by the caller to force a level.
  const char* forced = std::getenv("LLMOS_ISA");
  if (forced != nullptr && *forced != '\0') {
    EXPECT_EQ(active_isa(), parse_isa(forced));
  } else {
    EXPECT_EQ(active_isa(), detect_isa());
  }
}

}  // namespace
}  // namespace llmos::kernels::cpu
