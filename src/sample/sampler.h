// Token sampling. The chain runs in this order (the order GGUF runtimes use, so results are
// comparable): repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw.
// temperature == 0 is greedy (argmax after the penalty; lowest id wins ties).
// A Sampler owns its random generator: the same seed, params and logits give the same tokens on
// every platform (the generator and the uniform draw are llmos's own, not <random>'s
// implementation-defined distributions).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace llmos {

struct SamplingParams {
  float temperature = 0.8f;   // 0 = greedy
  int32_t top_k = 40;         // <= 0: disabled
  float top_p = 0.95f;        // >= 1: disabled
  float min_p = 0.05f;        // <= 0: disabled
  float repeat_penalty = 1.0f;  // 1: disabled; applied to the last repeat_last_n tokens
  int32_t repeat_last_n = 64;
  uint64_t seed = 0;

  // Throws kInvalidArgument naming the first bad field (negative temperature, top_p outside
  // (0, 1], min_p outside [0, 1], repeat_penalty <= 0, repeat_last_n < 0).
  void validate() const;
};

class Sampler {
 public:
  Sampler(const SamplingParams& params, int32_t vocab_size);

  // Picks the next token from logits[0..vocab_size). `history` is the sequence so far (prompt
  // and generated tokens); the penalty looks at its last repeat_last_n entries.
  int32_t sample(const float* logits, std::span<const int32_t> history);

  const SamplingParams& params() const { return params_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  uint64_t next_random();   // splitmix64 state step
  double uniform01();       // [0, 1) with 53 random bits

  SamplingParams params_;
  int32_t vocab_size_;
  uint64_t state_;
  std::vector<Candidate> candidates_;
};

}  // namespace llmos
