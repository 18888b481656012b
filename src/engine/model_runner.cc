#include "engine/model_runner.h"

#include <algorithm>
#include <span>

#include "core/error.h"

namespace llmos {

ModelRunner::ModelRunner(LlamaModel& model, KvCache& cache, KvCacheManager& manager,
                         PagedKvSlots& slots)
    : model_(model), cache_(cache), manager_(manager), slots_(slots) {}

Sampler& ModelRunner::sampler_for(const Request& r) {
  auto it = samplers_.find(r.id);
  if (it == samplers_.end()) {
    // Created once per request and kept across preemptions, so the random
    // stream continues where it was: a preempted request resumes with the
    // output it would have had.
    it =
        samplers_
            .emplace(r.id, std::make_unique<Sampler>(r.params.sampling, model_.config().vocab_size))
            .first;
  }
  return *it->second;
}

StepResult ModelRunner::execute(const SchedulerOutput& out, const Scheduler& scheduler) {
  StepResult result;
  if (out.scheduled.empty()) return result;
  const int block_size = cache_.spec().block_size;

  batch_.clear();
  std::vector<const Request*> sampling;
  for (const ScheduledRequest& s : out.scheduled) {
    const Request* r = scheduler.find(s.request_id);
    if (r == nullptr)
      throw_error(StatusCode::kInternal, "model runner: scheduled request ", s.request_id,
                  " unknown");
    const auto new_tokens = std::span<const int32_t>(r->tokens).subspan(
        static_cast<size_t>(s.start_position), static_cast<size_t>(s.num_new_tokens));
    batch_.add_sequence(new_tokens, s.start_position,
                        manager_.block_table(static_cast<SeqId>(r->id)), block_size,
                        s.samples ? Batch::Logits::kLast : Batch::Logits::kNone);
    if (s.samples) sampling.push_back(r);
  }

  const int64_t vocab64 = model_.config().vocab_size;
  const auto rows_needed = static_cast<int64_t>(sampling.size());
  if (!logits_.defined() || logits_.dim(0) < rows_needed) {
    logits_ = Tensor::empty({std::max<int64_t>(rows_needed, 8), vocab64}, DType::kF32);
  }
  Tensor step_logits = logits_.slice_rows(0, rows_needed);
  slots_.apply_block_copies();
  model_.forward(batch_, cache_, step_logits);

  const int32_t vocab = model_.config().vocab_size;
  const auto* rows = static_cast<const float*>(logits_.data());
  for (size_t i = 0; i < sampling.size(); ++i) {
    const Request& r = *sampling[i];
    try {
      const int32_t token = sampler_for(r).sample(
          std::span<const float>(rows + i * static_cast<size_t>(vocab), static_cast<size_t>(vocab)),
          r.tokens);
      result.sampled.push_back({r.id, token});
    } catch (const Error& e) {
      result.failed.emplace_back(r.id, e.what());
    }
  }

  // Blocks filled by this step's K/V become reusable prefixes for later
  // requests.
  if (manager_.pool().prefix_caching_enabled()) {
    for (const ScheduledRequest& s : out.scheduled) {
      const Request* r = scheduler.find(s.request_id);
      if (!slots_.may_cache(r->id)) continue;
      const auto computed = std::span<const int32_t>(r->tokens).first(
          static_cast<size_t>(s.start_position + s.num_new_tokens));
      manager_.commit_full_blocks(static_cast<SeqId>(r->id), computed);
    }
  }
  return result;
}

}  // namespace llmos
