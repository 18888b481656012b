#include "engine/engine_config.h"

#include <cmath>

#include "core/error.h"

namespace llmos {

void EngineConfig::validate() const {
  LLMOS_CHECK_ARG(kv_cache_blocks >= 0, "engine kv_cache_blocks: ", kv_cache_blocks,
                  " (must be >= 0)");
  LLMOS_CHECK_ARG(kv_cache_bytes >= 0, "engine kv_cache_bytes: ", kv_cache_bytes,
                  " (must be >= 0)");
  LLMOS_CHECK_ARG(block_size > 0 && block_size <= 1024, "engine block_size: ", block_size,
                  " (must be in [1, 1024])");
  LLMOS_CHECK_ARG(kv_dtype == DType::kF16 || kv_dtype == DType::kF32 || kv_dtype == DType::kBF16,
                  "engine kv_dtype: ", dtype_name(kv_dtype), " (must be f16, f32 or bf16)");
  LLMOS_CHECK_ARG(std::isfinite(watermark) && watermark >= 0.0 && watermark < 1.0,
                  "engine watermark: ", watermark, " (must be in [0, 1))");
  LLMOS_CHECK_ARG(swap_space_bytes >= 0, "engine swap_space_bytes: ", swap_space_bytes,
                  " (must be >= 0)");
  LLMOS_CHECK_ARG(max_model_len >= 0, "engine max_model_len: ", max_model_len, " (must be >= 0)");
  // The rest is checked by SchedulerConfig::validate with the same field names.
}

}  // namespace llmos
