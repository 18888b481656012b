#include "core/dtype.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace llmos {
namespace {

TEST(DType, BlockLayoutsMatchGguf) {
  EXPECT_EQ(dtype_block_size(DType::kQ4_0), 32);
  EXPECT_EQ(dtype_block_bytes(DType::kQ4_0), 18);
  EXPECT_EQ(dtype_block_bytes(DType::kQ8_0), 34);
  EXPECT_EQ(dtype_block_size(DType::kQ4_K), 256);
  EXPECT_EQ(dtype_block_bytes(DType::kQ4_K), 144);
  EXPECT_EQ(dtype_block_bytes(DType::kQ6_K), 210);
  EXPECT_EQ(dtype_block_bytes(DType::kQ2_K), 84);
  EXPECT_EQ(dtype_block_bytes(DType::kQ3_K), 110);
  EXPECT_EQ(dtype_block_bytes(DType::kQ5_K), 176);
  EXPECT_EQ(dtype_block_bytes(DType::kBF16), 2);
}

TEST(DType, NamesRoundTrip) {
  size_t n = 0;
  const DTypeInfo* all = all_dtypes(&n);
  ASSERT_GE(n, 16u);
  for (size_t i = 0; i < n; ++i) {
    auto parsed = dtype_from_name(all[i].name);
    ASSERT_TRUE(parsed.has_value()) << all[i].name;
    EXPECT_EQ(*parsed, all[i].dtype);
    EXPECT_EQ(dtype_from_ggml_id(static_cast<uint32_t>(all[i].dtype)), all[i].dtype);
  }
  EXPECT_EQ(dtype_from_name("Q4_K"), DType::kQ4_K);
  EXPECT_FALSE(dtype_from_name("q9_9").has_value());
  EXPECT_FALSE(dtype_from_ggml_id(4).has_value());  // removed Q4_2
  EXPECT_FALSE(dtype_from_ggml_id(1000).has_value());
}

TEST(DType, RowBytesRejectsPartialBlocks) {
  EXPECT_EQ(dtype_row_bytes(DType::kQ4_0, 64), 36);
  EXPECT_EQ(dtype_row_bytes(DType::kF16, 3), 6);
  EXPECT_THROW(dtype_row_bytes(DType::kQ4_0, 33), Error);
  EXPECT_THROW(dtype_row_bytes(DType::kQ4_K, -256), Error);
}

}  // namespace
}  // namespace llmos
