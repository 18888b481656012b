#include "engine/generator.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "core/allocator.h"
#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/batch.h"

namespace llmos {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength: return "length";
    case FinishReason::kEos: return "eos";
    case FinishReason::kContextFull: return "context";
    case FinishReason::kStopped: return "stopped";
  }
  return "unknown";
}

Generator::Generator(LlamaModel& model, GenerateOptions options) : model_(model), options_(std::move(options)) {
  LLMOS_CHECK_ARG(options_.max_tokens >= 0, "max_tokens must be non-negative, got ", options_.max_tokens);
  LLMOS_CHECK_ARG(options_.prefill_chunk > 0, "prefill_chunk must be positive, got ", options_.prefill_chunk);
  options_.sampling.validate();
}

std::vector<TokenId> Generator::prepare_prompt(std::string_view prompt) const {
  // BOS (and EOS, for the rare vocabularies that ask for it) as the vocabulary specifies.
  std::vector<TokenId> tokens = model_.tokenizer().encode(prompt, /*add_special=*/true);
  check_prompt(tokens);
  return tokens;
}

int64_t Generator::cache_capacity(size_t prompt_tokens) const {
  return std::min<int64_t>(model_.config().context_length,
                           static_cast<int64_t>(prompt_tokens) + options_.max_tokens);
}

void Generator::check_prompt(const std::vector<TokenId>& prompt) const {
  const ModelConfig& config = model_.config();
  LLMOS_CHECK_ARG(!prompt.empty(), "generate: the prompt is empty and the vocabulary adds no BOS token");
  for (TokenId id : prompt) {
    LLMOS_CHECK_ARG(id >= 0 && id < config.vocab_size, "generate: prompt token ", id,
                    " is outside the vocabulary of ", config.vocab_size);
  }
  LLMOS_CHECK_ARG(static_cast<int64_t>(prompt.size()) <= config.context_length, "generate: the prompt has ",
                  prompt.size(), " tokens, more than the context length ", config.context_length);
  const int64_t capacity = cache_capacity(prompt.size());
  const int64_t num_blocks = (capacity + options_.block_size - 1) / options_.block_size;
  const KvCacheSpec spec = model_.kv_cache_spec(num_blocks, options_.block_size, options_.kv_dtype);
  const uint64_t kv_bytes = static_cast<uint64_t>(spec.block_bytes()) * static_cast<uint64_t>(num_blocks);
  const uint64_t physical = host_physical_memory();
  if (physical != 0 && kv_bytes > physical) {
    throw_error(StatusCode::kOutOfMemory, "generate: a ", dtype_name(options_.kv_dtype), " KV cache for ", capacity,
                " tokens needs ", kv_bytes >> 20, " MiB, more than this machine's ", physical >> 20,
                " MiB; ask for fewer tokens or a smaller KV dtype");
  }
}

GenerateResult Generator::generate(std::string_view prompt, const TokenCallback& on_token) {
  return generate_tokens(prepare_prompt(prompt), on_token);
}

GenerateResult Generator::generate_tokens(std::vector<TokenId> prompt, const TokenCallback& on_token) {
  const ModelConfig& config = model_.config();
  const Tokenizer& tok = model_.tokenizer();
  check_prompt(prompt);

  GenerateResult result;
  result.prompt_tokens = prompt;
  const int64_t capacity = cache_capacity(prompt.size());
  const int64_t num_blocks = (capacity + options_.block_size - 1) / options_.block_size;
  const KvCacheSpec spec = model_.kv_cache_spec(num_blocks, options_.block_size, options_.kv_dtype);
  KvCache cache(spec, model_.backend());
  // One sequence owns the whole cache, so its block table is simply 0, 1, 2, ...
  std::vector<int32_t> block_table(static_cast<size_t>(num_blocks));
  std::iota(block_table.begin(), block_table.end(), 0);

  Sampler sampler(options_.sampling, static_cast<int32_t>(config.vocab_size));
  std::vector<TokenId> history = prompt;
  Tensor logits = Tensor::empty({1, config.vocab_size}, DType::kF32);
  Batch batch;

  // Prefill in chunks; only the last chunk's last token needs logits.
  auto start = std::chrono::steady_clock::now();
  for (size_t done = 0; done < prompt.size();) {
    const size_t n = std::min(prompt.size() - done, static_cast<size_t>(options_.prefill_chunk));
    const bool last = done + n == prompt.size();
    batch.clear();
    batch.add_sequence(std::span<const int32_t>(prompt.data() + done, n), static_cast<int32_t>(done),
                       block_table, options_.block_size, last ? Batch::Logits::kLast : Batch::Logits::kNone);
    Tensor step_logits = last ? logits : Tensor::empty({0, config.vocab_size}, DType::kF32);
    model_.forward(batch, cache, step_logits);
    done += n;
  }
  result.prefill_seconds = seconds_since(start);

  start = std::chrono::steady_clock::now();
  for (int32_t i = 0; i < options_.max_tokens; ++i) {
    const TokenId next = sampler.sample(logits.data_as<const float>(), history);
    if (options_.stop_at_eos && tok.is_eog(next)) {
      result.finish = FinishReason::kEos;
      break;
    }
    result.tokens.push_back(next);
    history.push_back(next);
    if (on_token && !on_token(next, tok.token_to_piece(next))) {
      result.finish = FinishReason::kStopped;
      break;
    }
    if (i + 1 == options_.max_tokens) break;
    if (static_cast<int64_t>(history.size()) >= capacity) {
      result.finish = FinishReason::kContextFull;
      break;
    }
    batch.clear();
    const int32_t token = next;
    batch.add_sequence(std::span<const int32_t>(&token, 1), static_cast<int32_t>(history.size() - 1),
                       block_table, options_.block_size, Batch::Logits::kLast);
    model_.forward(batch, cache, logits);
  }
  result.decode_seconds = seconds_since(start);
  return result;
}

}  // namespace llmos
