// Single-sequence generation: tokenize a prompt, prefill it in chunks, then decode token by
// token with a sampler, streaming each token. This is the path `llmos generate` uses; the
// multi-client engine (scheduler, shared paged cache) runs the same model step on batches.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "model/llama_model.h"
#include "sample/sampler.h"

namespace llmos {

struct GenerateOptions {
  int32_t max_tokens = 128;      // new tokens to generate
  SamplingParams sampling;
  bool stop_at_eos = true;        // stop at EOS or another end-of-generation token
  DType kv_dtype = DType::kF16;  // f32 and bf16 are selectable
  int block_size = 16;
  int32_t prefill_chunk = 512;   // prompt tokens per forward step
};

enum class FinishReason { kLength, kEos, kContextFull, kStopped };
const char* finish_reason_name(FinishReason reason);

struct GenerateResult {
  std::vector<TokenId> prompt_tokens;
  std::vector<TokenId> tokens;   // generated tokens (excluding the prompt)
  FinishReason finish = FinishReason::kLength;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
};

// Called for each generated token with its printable piece; return false to stop.
using TokenCallback = std::function<bool(TokenId token, std::string_view piece)>;

class Generator {
 public:
  Generator(LlamaModel& model, GenerateOptions options);

  // Generates a continuation of `prompt`, tokenized with the special tokens the vocabulary
  // adds (BOS for Llama-style vocabularies).
  GenerateResult generate(std::string_view prompt, const TokenCallback& on_token = nullptr);
  // Same, from token ids (no BOS is added).
  GenerateResult generate_tokens(std::vector<TokenId> prompt, const TokenCallback& on_token = nullptr);

  // Tokenizes a prompt as generate() does and checks it would run (ids, context length, KV
  // cache memory), throwing before any work is done; pass the result to generate_tokens().
  std::vector<TokenId> prepare_prompt(std::string_view prompt) const;

 private:
  void check_prompt(const std::vector<TokenId>& prompt) const;
  int64_t cache_capacity(size_t prompt_tokens) const;

  LlamaModel& model_;
  GenerateOptions options_;
};

}  // namespace llmos
