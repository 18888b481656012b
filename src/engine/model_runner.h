// ModelRunner: turns one SchedulerOutput into one forward step. It builds the
// flattened Batch (each scheduled request's new tokens, its block table from
// the KV manager, logits for the requests that sample), performs pending
// copy-on-write block copies, runs the model, samples one token per sampling
// request with that request's own seeded Sampler, and registers the blocks that
// became full with the prefix cache. Runs on the engine's step thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "engine/paged_kv_slots.h"
#include "kv/kv_cache.h"
#include "kv/kv_cache_manager.h"
#include "model/batch.h"
#include "model/llama_model.h"
#include "sample/sampler.h"
#include "sched/scheduler.h"

namespace llmos {

struct StepResult {
  std::vector<SampledToken> sampled;
  // Requests whose token could not be sampled (e.g. non-finite logits), with
  // the reason.
  std::vector<std::pair<uint64_t, std::string>> failed;
};

class ModelRunner {
 public:
  ModelRunner(LlamaModel& model, KvCache& cache, KvCacheManager& manager, PagedKvSlots& slots);

  // Runs the step planned by `out`. Throws if the forward pass itself fails
  // (every request of the step is then affected); per-request sampling failures
  // are reported in the result.
  StepResult execute(const SchedulerOutput& out, const Scheduler& scheduler);

  // Forgets a finished request's sampler.
  void release(uint64_t request_id) { samplers_.erase(request_id); }

 private:
  Sampler& sampler_for(const Request& r);

  LlamaModel& model_;
  KvCache& cache_;
  KvCacheManager& manager_;
  PagedKvSlots& slots_;
  Batch batch_;
  Tensor logits_;
  std::unordered_map<uint64_t, std::unique_ptr<Sampler>> samplers_;
};

}  // namespace llmos
