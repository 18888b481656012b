// Element types, including GGUF block-quantized formats. Enumerator values are the GGML type
// ids used in GGUF tensor tables, so the file format maps onto DType without a lookup table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace llmos {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kBF16 = 30,
};

struct DTypeInfo {
  DType dtype;
  std::string_view name;   // GGUF/ggml spelling: "f32", "q4_K", ...
  int64_t block_size;      // elements per block (1 for plain types)
  int64_t block_bytes;     // bytes per block
  bool quantized;
};

// Information for a known dtype (throws kInternal for an out-of-range enumerator).
const DTypeInfo& dtype_info(DType dtype);
inline std::string_view dtype_name(DType dtype) { return dtype_info(dtype).name; }
inline int64_t dtype_block_size(DType dtype) { return dtype_info(dtype).block_size; }
inline int64_t dtype_block_bytes(DType dtype) { return dtype_info(dtype).block_bytes; }
inline bool dtype_is_quantized(DType dtype) { return dtype_info(dtype).quantized; }

// The dtype for a GGML type id read from a file; nullopt when llmos does not know it.
std::optional<DType> dtype_from_ggml_id(uint32_t id);
// Parses a name such as "q8_0", "Q4_K", "bf16" (case-insensitive); nullopt when unknown.
std::optional<DType> dtype_from_name(std::string_view name);

// Bytes for n elements laid out as one row; throws kInvalidArgument when n is not a multiple
// of the block size, or on overflow.
int64_t dtype_row_bytes(DType dtype, int64_t n);

// Every dtype llmos knows, in enumerator order (for tests and `llmos info`).
const DTypeInfo* all_dtypes(size_t* count);

}  // namespace llmos
