#include "core/dtype.h"

#include <cctype>
#include <limits>

#include "core/error.h"

namespace llmos {
namespace {

// Block sizes and byte counts follow the GGUF layouts (see docs/formats.md).
constexpr DTypeInfo kDTypes[] = {
    {DType::kF32, "f32", 1, 4, false},
    {DType::kF16, "f16", 1, 2, false},
    {DType::kQ4_0, "q4_0", 32, 18, true},
    {DType::kQ4_1, "q4_1", 32, 20, true},
    {DType::kQ5_0, "q5_0", 32, 22, true},
    {DType::kQ5_1, "q5_1", 32, 24, true},
    {DType::kQ8_0, "q8_0", 32, 34, true},
    {DType::kQ2_K, "q2_K", 256, 84, true},
    {DType::kQ3_K, "q3_K", 256, 110, true},
    {DType::kQ4_K, "q4_K", 256, 144, true},
    {DType::kQ5_K, "q5_K", 256, 176, true},
    {DType::kQ6_K, "q6_K", 256, 210, true},
    {DType::kI8, "i8", 1, 1, false},
    {DType::kI16, "i16", 1, 2, false},
    {DType::kI32, "i32", 1, 4, false},
    {DType::kBF16, "bf16", 1, 2, false},
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

}  // namespace

const DTypeInfo& dtype_info(DType dtype) {
  for (const auto& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  throw_error(StatusCode::kInternal, "unknown dtype enumerator ", static_cast<uint32_t>(dtype));
}

std::optional<DType> dtype_from_ggml_id(uint32_t id) {
  for (const auto& info : kDTypes) {
    if (static_cast<uint32_t>(info.dtype) == id) return info.dtype;
  }
  return std::nullopt;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& info : kDTypes) {
    if (iequals(info.name, name)) return info.dtype;
  }
  return std::nullopt;
}

int64_t dtype_row_bytes(DType dtype, int64_t n) {
  const DTypeInfo& info = dtype_info(dtype);
  if (n < 0 || n % info.block_size != 0) {
    throw_error(StatusCode::kInvalidArgument, "row of ", n, " elements is not a multiple of the ",
                info.name, " block size ", info.block_size);
  }
  const int64_t blocks = n / info.block_size;
  if (blocks > std::numeric_limits<int64_t>::max() / info.block_bytes) {
    throw_error(StatusCode::kInvalidArgument, "row of ", n, " ", info.name,
                " elements overflows a 64-bit byte count");
  }
  return blocks * info.block_bytes;
}

const DTypeInfo* all_dtypes(size_t* count) {
  *count = sizeof(kDTypes) / sizeof(kDTypes[0]);
  return kDTypes;
}

}  // namespace llmos
