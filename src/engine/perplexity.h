// Perplexity the way llama.cpp's llama-perplexity measures it, so numbers compare across
// runtimes: the token stream is cut into consecutive chunks of n_ctx tokens; each chunk is
// evaluated from an empty cache (in batches of n_batch), its first token replaced by BOS when
// the vocabulary adds one; the tokens at positions n_ctx/2 + 1 … n_ctx − 1 are scored with the
// logits one position earlier; PPL = exp(mean negative log-likelihood).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/llama_model.h"

namespace llmos {

struct PerplexityOptions {
  int32_t n_ctx = 512;
  int32_t n_batch = 2048;       // tokens per forward step (clamped to n_ctx)
  int32_t max_chunks = -1;      // < 0: every whole chunk the text holds
  DType kv_dtype = DType::kF16;
};

struct PerplexityResult {
  int32_t chunks = 0;
  int64_t scored_tokens = 0;
  double mean_nll = 0.0;
  double ppl = 0.0;
  double ppl_error = 0.0;       // standard error of the estimate, as llama.cpp prints it
  double seconds = 0.0;
};

// Called after each chunk with the chunk index and the running estimate.
using PerplexityProgress = std::function<void(int32_t chunk, int32_t total, double running_ppl)>;

// `tokens` is the whole tokenized text, BOS included when the vocabulary adds one (as
// tokenize(text, add_special = true) gives). Throws kInvalidArgument when the text holds fewer
// than one chunk, naming how many tokens are needed.
PerplexityResult compute_perplexity(LlamaModel& model, std::span<const TokenId> tokens,
                                    const PerplexityOptions& options,
                                    const PerplexityProgress& progress = nullptr);

// -log softmax(logits)[token], computed as llama.cpp does (max-shifted, sum of exp in double).
double negative_log_likelihood(std::span<const float> logits, TokenId token);

}  // namespace llmos
