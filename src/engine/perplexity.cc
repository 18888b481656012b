#include "engine/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/batch.h"

namespace llmos {

double negative_log_likelihood(std::span<const float> logits, TokenId token) {
  LLMOS_CHECK_ARG(token >= 0 && static_cast<size_t>(token) < logits.size(), "token ", token,
                  " is outside the ", logits.size(), " logits");
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum_exp = 0.0;
  for (float l : logits) sum_exp += std::exp(static_cast<double>(l - max_logit));
  return -(static_cast<double>(logits[static_cast<size_t>(token)] - max_logit) - std::log(sum_exp));
}

PerplexityResult compute_perplexity(LlamaModel& model, std::span<const TokenId> tokens,
                                    const PerplexityOptions& options, const PerplexityProgress& progress) {
  const int64_t vocab = model.config().vocab_size;
  const int32_t n_ctx = options.n_ctx;
  LLMOS_CHECK_ARG(n_ctx >= 4, "perplexity: the context size must be at least 4, got ", n_ctx);
  LLMOS_CHECK_ARG(options.n_batch >= 1, "perplexity: the batch size must be positive, got ", options.n_batch);
  const int64_t available = static_cast<int64_t>(tokens.size()) / n_ctx;
  if (available == 0) {
    throw_error(StatusCode::kInvalidArgument, "perplexity: the text has ", tokens.size(),
                " tokens; at least ", n_ctx, " are needed for one chunk of ", n_ctx, " (use a smaller -c)");
  }
  const int32_t chunks = static_cast<int32_t>(
      options.max_chunks < 0 ? available : std::min<int64_t>(available, options.max_chunks));
  LLMOS_CHECK_ARG(chunks > 0, "perplexity: --chunks must be positive, got ", options.max_chunks);
  const int32_t n_batch = std::min(options.n_batch, n_ctx);
  const int32_t first = n_ctx / 2;
  const TokenId bos = model.tokenizer().vocab().add_bos ? model.tokenizer().vocab().bos : kNoToken;

  const int block_size = 16;
  const int64_t num_blocks = (n_ctx + block_size - 1) / block_size;
  KvCache cache(model.kv_cache_spec(num_blocks, block_size, options.kv_dtype), model.backend());
  std::vector<int32_t> block_table(static_cast<size_t>(num_blocks));
  std::iota(block_table.begin(), block_table.end(), 0);
  // Logits of every position of a chunk: the scored half needs them all.
  Tensor logits = Tensor::empty({n_ctx, vocab}, DType::kF32);

  PerplexityResult result;
  double nll_sum = 0.0, nll2_sum = 0.0;
  const auto start_time = std::chrono::steady_clock::now();
  std::vector<TokenId> chunk(static_cast<size_t>(n_ctx));
  Batch batch;
  for (int32_t c = 0; c < chunks; ++c) {
    std::copy_n(tokens.begin() + static_cast<int64_t>(c) * n_ctx, n_ctx, chunk.begin());
    if (bos != kNoToken) chunk[0] = bos;
    // The cache starts empty for each chunk: positions restart at 0 and overwrite its slots.
    for (int32_t done = 0; done < n_ctx; done += n_batch) {
      const int32_t n = std::min(n_batch, n_ctx - done);
      batch.clear();
      batch.add_sequence(std::span<const TokenId>(chunk.data() + done, static_cast<size_t>(n)), done, block_table,
                         block_size, Batch::Logits::kAll);
      Tensor rows = logits.slice_rows(done, done + n);
      model.forward(batch, cache, rows);
    }
    for (int32_t pos = first; pos < n_ctx - 1; ++pos) {
      const std::span<const float> row(static_cast<const float*>(logits.row(pos)), static_cast<size_t>(vocab));
      const double nll = negative_log_likelihood(row, chunk[static_cast<size_t>(pos + 1)]);
      nll_sum += nll;
      nll2_sum += nll * nll;
      ++result.scored_tokens;
    }
    result.chunks = c + 1;
    if (progress) progress(c, chunks, std::exp(nll_sum / static_cast<double>(result.scored_tokens)));
  }
  const double count = static_cast<double>(result.scored_tokens);
  result.mean_nll = nll_sum / count;
  result.ppl = std::exp(result.mean_nll);
  // Standard error of the mean NLL, carried to PPL: the estimate llama.cpp prints after "+/-".
  const double variance = nll2_sum / count - result.mean_nll * result.mean_nll;
  result.ppl_error = count > 1 && variance > 0 ? result.ppl * std::sqrt(variance / (count - 1)) : 0.0;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  return result;
}

}  // namespace llmos
