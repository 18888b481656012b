// Token sampling. The chain runs in this order (the order GGUF runtimes use, so results are
// comparable): repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw.
// temperature == 0 is greedy (argmax after the penalty; lowest id wins ties; no random number
// is drawn).
// A Sampler owns its random generator: the same seed, params and logits give the same tokens
// run after run. The generator and the uniform draw are llmos's own (not <random>'s
// implementation-defined distributions) and candidate order is a strict total order, so
// across platforms only the last bit of libm's exp() can differ — enough to flip a draw that
// lands exactly on a boundary between two tokens, and nothing else.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace llmos {

struct SamplingParams {
  float temperature = 0.8f;     // 0 = greedy
  int32_t top_k = 40;           // <= 0 or >= vocab: disabled
  float top_p = 0.95f;          // 1: disabled
  float min_p = 0.05f;          // 0: disabled
  float repeat_penalty = 1.0f;  // 1: disabled; applied to the last repeat_last_n tokens
  int32_t repeat_last_n = 64;   // 0: disabled
  uint64_t seed = 0;

  // Throws kInvalidArgument naming the first bad field (temperature negative or not finite,
  // top_p outside (0, 1], min_p outside [0, 1], repeat_penalty <= 0 or not finite,
  // repeat_last_n < 0).
  void validate() const;
};

class Sampler {
 public:
  // Validates params; throws kInvalidArgument when vocab_size <= 0.
  Sampler(const SamplingParams& params, int32_t vocab_size);

  // Picks the next token from logits[0..vocab_size). `history` is the sequence so far (prompt
  // and generated tokens); the penalty looks at its last repeat_last_n entries.
  // Throws kInvalidArgument on a NaN or +inf logit (naming its index), when every logit is
  // -inf, or when a history token inside the penalty window is outside [0, vocab_size).
  // -inf marks a masked token, which is never returned. Allocation-free after construction.
  int32_t sample(const float* logits, std::span<const int32_t> history);
  // Same, checking that logits.size() == vocab_size.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

  // Restarts the random stream as if the sampler had just been built with this seed.
  void reseed(uint64_t seed);

  const SamplingParams& params() const { return params_; }
  int32_t vocab_size() const { return vocab_size_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;  // weight exp(logit - max_logit) once computed; a "penalised" flag before that
  };
  uint64_t next_random();  // splitmix64 state step
  double uniform01();      // [0, 1) with 53 random bits

  // Copies logits into candidates_ (index == id), rejecting NaN/+inf and all -inf.
  void load_candidates(const float* logits);
  int32_t greedy(const float* logits) const;  // temperature 0, no penalty: one pass
  void apply_repeat_penalty(std::span<const int32_t> history);
  int32_t argmax() const;  // over candidates_ still in id order; lowest id wins ties
  void apply_top_k();
  void apply_top_p();
  void apply_min_p();
  // Draws from exp((logit - max_logit) / temperature); weights_ready: p already holds them.
  int32_t draw(float max_logit, bool weights_ready);

  SamplingParams params_;
  int32_t vocab_size_;
  uint64_t state_;
  std::vector<Candidate> candidates_;
  size_t sorted_ = 0;  // candidates_[0, sorted_) are the largest, in descending order
};

}  // namespace llmos
