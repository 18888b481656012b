// Everything an Engine is configured with at creation. Defaults suit an
// interactive server on this class of machine; every knob is described in
// docs/engine.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/dtype.h"
#include "sched/scheduler.h"

namespace llmos {

struct EngineConfig {
  // KV budget: kv_cache_blocks when > 0, else kv_cache_bytes when > 0, else
  // room for max_sequences full contexts capped at a quarter of physical
  // memory.
  int64_t kv_cache_blocks = 0;
  int64_t kv_cache_bytes = 0;
  int block_size = 16;
  DType kv_dtype = DType::kF16;  // f16, f32 or bf16
  bool enable_prefix_caching = true;
  double watermark = 0.01;                        // fraction of blocks kept free when admitting
  int64_t swap_space_bytes = int64_t{256} << 20;  // host memory for swapped-out sequences

  int32_t max_batched_tokens = 512;
  int32_t max_sequences = 64;
  int32_t max_model_len = 0;  // 0: the model's context length
  bool chunked_prefill = true;
  PreemptionMode preemption = PreemptionMode::kRecompute;
  int32_t aging_steps = 64;
  ClientQuota default_quota;                 // clients not listed in `quotas`
  std::map<std::string, ClientQuota> quotas;
  // true: only clients listed in `quotas` may submit; others get kInvalidArgument.
  bool reject_unknown_clients = false;

  // Throws kInvalidArgument naming the first bad field.
  void validate() const;
};

}  // namespace llmos
