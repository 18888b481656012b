// C API: scoring a continuation (the log-probability a model assigns to given tokens), the
// building block of classification by likelihood: callers rank a fixed set of candidate texts
// instead of trusting free generation.
#include <algorithm>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "capi/capi_internal.h"
#include "engine/perplexity.h"
#include "kv/kv_cache.h"
#include "model/batch.h"

using namespace llmos;
using namespace llmos::capi;

namespace {

// Tokens computed per forward step: bounds the activation workspace and the logits buffer
// whatever the caller's lengths.
constexpr int64_t kChunkTokens = 256;
constexpr int kBlockSize = 16;

void check_tokens(const llmos_token* tokens, size_t n, int64_t vocab, const char* what) {
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab) {
      invalid(std::string(what) + "[" + std::to_string(i) + "] = " + std::to_string(tokens[i]) +
              " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
}

// Sum of log p(sequence[i] | sequence[..i]) for i in [first_scored, size): one pass over the
// sequence, the unscored prefix without logits, the scored part with a logits row per token.
double score_sequence(LlamaModel& model, const std::vector<int32_t>& sequence,
                      int64_t first_scored) {
  const int64_t vocab = model.config().vocab_size;
  const auto n = static_cast<int64_t>(sequence.size());
  const int64_t num_blocks = (n + kBlockSize - 1) / kBlockSize;
  // f16 K/V, as the engine keeps them: a score matches what generation on the model sees.
  KvCache cache(model.kv_cache_spec(num_blocks, kBlockSize, DType::kF16), model.backend());
  std::vector<int32_t> block_table(static_cast<size_t>(num_blocks));
  std::iota(block_table.begin(), block_table.end(), 0);

  // Token t's logits predict token t + 1: tokens [0, first_scored - 1) need none, tokens
  // [first_scored - 1, n - 1) need all; the last token is never computed.
  double sum = 0.0;
  Batch batch;
  Tensor logits = Tensor::empty({kChunkTokens, vocab}, DType::kF32);
  for (int64_t done = 0; done < n - 1;) {
    const bool scored = done >= first_scored - 1;
    const int64_t end = std::min(scored ? n - 1 : first_scored - 1, done + kChunkTokens);
    const int64_t count = end - done;
    batch.clear();
    batch.add_sequence(std::span<const int32_t>(sequence.data() + done, static_cast<size_t>(count)),
                       static_cast<int32_t>(done), block_table, kBlockSize,
                       scored ? Batch::Logits::kAll : Batch::Logits::kNone);
    Tensor rows = logits.slice_rows(0, scored ? count : 0);
    model.forward(batch, cache, rows);
    if (scored) {
      for (int64_t r = 0; r < count; ++r) {
        const std::span<const float> row(static_cast<const float*>(rows.row(r)),
                                         static_cast<size_t>(vocab));
        sum -= negative_log_likelihood(row, sequence[static_cast<size_t>(done + r + 1)]);
      }
    }
    done = end;
  }
  return sum;
}

}  // namespace

extern "C" {

LLMOS_API llmos_status llmos_score(const llmos_model* model, const llmos_token* context,
                                   size_t n_context, const llmos_token* continuation,
                                   size_t n_continuation, double* logprob) {
  return guarded("llmos_score", [&] {
    if (logprob != nullptr) *logprob = 0.0;
    std::shared_ptr<llmos_model> m = get_model(model);
    require(logprob != nullptr, "logprob is NULL");
    require(context != nullptr || n_context == 0, "context is NULL while n_context is not 0");
    require(continuation != nullptr || n_continuation == 0,
            "continuation is NULL while n_continuation is not 0");
    require(n_context > 0, "n_context is 0: the first continuation token needs a context");
    require(n_continuation > 0, "n_continuation is 0: there is nothing to score");
    const ModelConfig& config = m->model->config();
    const int64_t vocab = config.vocab_size;
    if (n_context > static_cast<size_t>(config.context_length) ||
        n_continuation > static_cast<size_t>(config.context_length) - n_context) {
      invalid("n_context + n_continuation = " + std::to_string(n_context) + " + " +
              std::to_string(n_continuation) + " exceeds the model's context length " +
              std::to_string(config.context_length));
    }
    check_tokens(context, n_context, vocab, "context");
    check_tokens(continuation, n_continuation, vocab, "continuation");
    std::vector<int32_t> sequence(context, context + n_context);
    sequence.insert(sequence.end(), continuation, continuation + n_continuation);

    // A LlamaModel runs one step at a time (its workspace is shared): borrow the model's own
    // unless an engine holds it, in which case a second backend over the same mapped file
    // serves every scoring call from then on.
    std::lock_guard<std::mutex> lk(m->score_mu);
    const bool borrowed = !m->scorer && !m->attached.exchange(true);
    struct Release {
      llmos_model* m;
      bool on;
      ~Release() {
        if (on) m->attached.store(false);
      }
    } release{m.get(), borrowed};
    if (!borrowed && !m->scorer) {
      m->scorer = LlamaModel::from_file(m->model->file(), create_backend(m->backend_options));
    }
    LlamaModel& lm = borrowed ? *m->model : *m->scorer;
    *logprob = score_sequence(lm, sequence, static_cast<int64_t>(n_context));
    return LLMOS_OK;
  });
}

}  // extern "C"
