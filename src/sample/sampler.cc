#include "sample/sampler.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace llmos {
namespace {

// Largest vocabulary accepted: far above any real model (~256k), small enough that a corrupt
// size cannot trigger a multi-gigabyte candidate buffer.
constexpr int32_t kMaxVocab = 1 << 24;
// First batch of candidates sorted when top-p runs without top-k; later batches grow.
constexpr size_t kTopPFirstBatch = 64;

bool finite_nonneg(float x) { return std::isfinite(x) && x >= 0.0f; }

// Descending logit, then ascending id: a strict total order, so partial sorts are reproducible.
bool before(const auto& a, const auto& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// Moves the (mid - first) best of [first, last) to [first, mid), sorted. A heap-based
// partial_sort is cheapest for a short prefix; for a long one, selecting with nth_element and
// sorting only the selected part avoids the many heap updates.
template <typename It>
void sort_best(It first, It mid, It last) {
  auto cmp = [](const auto& a, const auto& b) { return before(a, b); };
  if (mid - first <= 256) {
    std::partial_sort(first, mid, last, cmp);
  } else {
    std::nth_element(first, mid, last, cmp);
    std::sort(first, mid, cmp);
  }
}

}  // namespace

void SamplingParams::validate() const {
  LLMOS_CHECK_ARG(finite_nonneg(temperature),
                  "SamplingParams.temperature must be finite and >= 0, got ", temperature);
  LLMOS_CHECK_ARG(top_p > 0.0f && top_p <= 1.0f, "SamplingParams.top_p must be in (0, 1], got ",
                  top_p);
  LLMOS_CHECK_ARG(min_p >= 0.0f && min_p <= 1.0f, "SamplingParams.min_p must be in [0, 1], got ",
                  min_p);
  LLMOS_CHECK_ARG(std::isfinite(repeat_penalty) && repeat_penalty > 0.0f,
                  "SamplingParams.repeat_penalty must be finite and > 0, got ", repeat_penalty);
  LLMOS_CHECK_ARG(repeat_last_n >= 0, "SamplingParams.repeat_last_n must be >= 0, got ",
                  repeat_last_n);
}

Sampler::Sampler(const SamplingParams& params, int32_t vocab_size)
    : params_(params), vocab_size_(vocab_size) {
  params_.validate();
  LLMOS_CHECK_ARG(vocab_size > 0 && vocab_size <= kMaxVocab, "Sampler: vocab_size ", vocab_size,
                  " must be in [1, ", kMaxVocab, "]");
  reseed(params_.seed);
  candidates_.reserve(static_cast<size_t>(vocab_size));
}

void Sampler::reseed(uint64_t seed) { state_ = seed; }

uint64_t Sampler::next_random() {
  // splitmix64 (Steele, Lea, Flood 2014): a full-period 64-bit generator that passes BigCrush.
  state_ += 0x9E3779B97F4A7C15ull;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Sampler::uniform01() {
  // The top 53 bits scaled by 2^-53: every double in [0, 1) on a 2^-53 grid, never 1.
  return static_cast<double>(next_random() >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  LLMOS_CHECK_ARG(logits.size() == static_cast<size_t>(vocab_size_), "Sampler: got ", logits.size(),
                  " logits for a vocabulary of ", vocab_size_);
  return sample(logits.data(), history);
}

int32_t Sampler::sample(const float* logits, std::span<const int32_t> history) {
  LLMOS_CHECK_ARG(logits != nullptr, "Sampler: logits pointer is null");
  const bool penalty = params_.repeat_penalty != 1.0f && params_.repeat_last_n != 0;
  if (params_.temperature == 0.0f && !penalty) return greedy(logits);
  load_candidates(logits);
  apply_repeat_penalty(history);
  const int32_t best = argmax();
  if (params_.temperature == 0.0f) return best;
  const float max_logit = candidates_[static_cast<size_t>(best)].logit;

  apply_top_k();
  const bool truncate = params_.top_p < 1.0f || params_.min_p > 0.0f;
  if (truncate) {
    // Weights relative to the best token: exp(l - max) = p / p_max, so top-p and min-p need no
    // normalisation pass of their own and -inf logits get weight 0. Computed after top-k, so
    // usually over k candidates rather than the whole vocabulary.
    for (Candidate& c : candidates_) c.p = std::exp(c.logit - max_logit);
    apply_top_p();
    apply_min_p();
  }
  return draw(max_logit, /*weights_ready=*/truncate && params_.temperature == 1.0f);
}

// Greedy without a penalty: the argmax over the logits with the checks and the tie rule (lowest
// id) of load_candidates + argmax, without copying the vocabulary. A batched decode step calls it
// for every sequence (32 x 32000 logits at B = 32), so the scan is vectorised: one pass for the
// maximum and for NaN / +inf, a second for the first index holding the maximum (equal to the
// first strictly greater one, +0 and -0 included). A bad logit is then found and named by the
// scalar loop.
int32_t Sampler::greedy(const float* logits) const {
  const size_t n = static_cast<size_t>(vocab_size_);
  float max_value = -std::numeric_limits<float>::infinity();
  bool bad = false;
  size_t i = 0;
#if defined(__SSE2__)
  {
    const __m128 inf = _mm_set1_ps(std::numeric_limits<float>::infinity());
    __m128 m0 = _mm_set1_ps(max_value), m1 = m0;
    __m128 bad_lanes = _mm_setzero_ps();
    for (; i + 8 <= n; i += 8) {
      const __m128 a = _mm_loadu_ps(logits + i), b = _mm_loadu_ps(logits + i + 4);
      bad_lanes = _mm_or_ps(bad_lanes, _mm_or_ps(_mm_cmpunord_ps(a, b), _mm_cmpeq_ps(a, inf)));
      bad_lanes = _mm_or_ps(bad_lanes, _mm_cmpeq_ps(b, inf));
      m0 = _mm_max_ps(m0, a);
      m1 = _mm_max_ps(m1, b);
    }
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, _mm_max_ps(m0, m1));
    for (float v : lanes) max_value = v > max_value ? v : max_value;
    bad = _mm_movemask_ps(bad_lanes) != 0;
  }
#endif
  for (; i < n; ++i) {
    const float l = logits[i];
    bad = bad || std::isnan(l) || l == std::numeric_limits<float>::infinity();
    max_value = l > max_value ? l : max_value;
  }
  if (bad) {
    for (size_t j = 0; j < n; ++j) {
      const float l = logits[j];
      if (std::isnan(l) || l == std::numeric_limits<float>::infinity()) {
        throw_error(StatusCode::kInvalidArgument, "Sampler: logit at index ", j, " is ",
                    std::isnan(l) ? "NaN" : "+inf", " (logits must be finite, or -inf to mask)");
      }
    }
  }
  LLMOS_CHECK_ARG(std::isfinite(max_value), "Sampler: all ", n,
                  " logits are -inf (every token is masked)");
  // The first index holding the maximum (lowest id wins ties), 8 logits per step.
  size_t best = 0;
#if defined(__SSE2__)
  const __m128 target = _mm_set1_ps(max_value);
  for (; best + 8 <= n; best += 8) {
    const int hit = _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(logits + best), target)) |
                    (_mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(logits + best + 4), target)) << 4);
    if (hit != 0) return static_cast<int32_t>(best + static_cast<size_t>(__builtin_ctz(hit)));
  }
#endif
  while (logits[best] != max_value) ++best;
  return static_cast<int32_t>(best);
}

void Sampler::load_candidates(const float* logits) {
  const size_t n = static_cast<size_t>(vocab_size_);
  candidates_.resize(n);  // within the reserved capacity: no allocation
  sorted_ = 0;
  bool any_finite = false;
  for (size_t i = 0; i < n; ++i) {
    const float l = logits[i];
    if (std::isnan(l) || l == std::numeric_limits<float>::infinity()) {
      throw_error(StatusCode::kInvalidArgument, "Sampler: logit at index ", i, " is ",
                  std::isnan(l) ? "NaN" : "+inf", " (logits must be finite, or -inf to mask)");
    }
    any_finite |= std::isfinite(l);
    candidates_[i] = Candidate{static_cast<int32_t>(i), l, 0.0f};
  }
  LLMOS_CHECK_ARG(any_finite, "Sampler: all ", n, " logits are -inf (every token is masked)");
}

void Sampler::apply_repeat_penalty(std::span<const int32_t> history) {
  const float penalty = params_.repeat_penalty;
  if (penalty == 1.0f || params_.repeat_last_n == 0) return;
  const size_t window = std::min(history.size(), static_cast<size_t>(params_.repeat_last_n));
  const size_t start = history.size() - window;
  constexpr float kMax = std::numeric_limits<float>::max();
  for (size_t i = start; i < history.size(); ++i) {
    const int32_t t = history[i];
    LLMOS_CHECK_ARG(t >= 0 && t < vocab_size_, "Sampler: history[", i, "] = ", t,
                    " is outside the vocabulary [0, ", vocab_size_, ")");
    Candidate& c = candidates_[static_cast<size_t>(t)];
    if (c.p != 0.0f) continue;  // each distinct token is penalised once
    c.p = 1.0f;
    if (!std::isfinite(c.logit)) continue;  // -inf stays masked
    // Clamp so an extreme penalty cannot turn a finite logit into +-inf (and the softmax into
    // NaN or a masked token).
    c.logit = std::clamp(c.logit > 0.0f ? c.logit / penalty : c.logit * penalty, -kMax, kMax);
  }
}

int32_t Sampler::argmax() const {
  size_t best = 0;
  for (size_t i = 1; i < candidates_.size(); ++i) {
    if (candidates_[i].logit > candidates_[best].logit) best = i;
  }
  return candidates_[best].id;
}

void Sampler::apply_top_k() {
  const int32_t k = params_.top_k;
  if (k <= 0 || static_cast<size_t>(k) >= candidates_.size()) return;
  sort_best(candidates_.begin(), candidates_.begin() + k, candidates_.end());
  candidates_.resize(static_cast<size_t>(k));
  sorted_ = candidates_.size();
}

void Sampler::apply_top_p() {
  if (params_.top_p >= 1.0f) return;
  double total = 0.0;
  for (const Candidate& c : candidates_) total += c.p;
  const double target = static_cast<double>(params_.top_p) * total;
  // Sort lazily: the kept prefix is usually tiny, so sort batches of growing size instead of
  // the whole vocabulary.
  const size_t n = candidates_.size();
  double cum = 0.0;
  size_t kept = 0;
  while (kept < n) {
    if (kept == sorted_) {
      if (kept > 0 && candidates_[kept - 1].p == 0.0f) break;  // only weightless ones remain
      size_t next = std::min(n, std::max(sorted_ * 2, kTopPFirstBatch));
      if (kept > 0) {
        // Every unsorted candidate weighs at most the last sorted one, so at least `need` more
        // are needed. Aim at twice that: on a flat distribution one more selection pass over
        // the vocabulary then usually suffices, and sorting a few extra is cheap.
        const double need = 2.0 * std::ceil((target - cum) / candidates_[kept - 1].p);
        if (need >= static_cast<double>(n - sorted_)) {
          next = n;
        } else {
          next = std::max(next, sorted_ + static_cast<size_t>(need));
        }
      }
      sort_best(candidates_.begin() + static_cast<ptrdiff_t>(sorted_),
                candidates_.begin() + static_cast<ptrdiff_t>(next), candidates_.end());
      sorted_ = next;
    }
    cum += candidates_[kept].p;
    ++kept;
    if (cum >= target) break;
  }
  candidates_.resize(std::max<size_t>(kept, 1));
  sorted_ = std::min(sorted_, candidates_.size());
}

void Sampler::apply_min_p() {
  const float min_p = params_.min_p;
  if (min_p <= 0.0f) return;
  // p / p_max is the weight; the best candidate (weight 1) always survives. Compaction keeps
  // the current order.
  size_t out = 0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    if (candidates_[i].p >= min_p) candidates_[out++] = candidates_[i];
  }
  candidates_.resize(out);
  sorted_ = std::min(sorted_, out);
}

int32_t Sampler::draw(float max_logit, bool weights_ready) {
  const double inv_t = 1.0 / static_cast<double>(params_.temperature);
  double total = 0.0;
  for (Candidate& c : candidates_) {
    if (!weights_ready) {
      // Subtract the max before scaling, in double, so a tiny temperature gives exp(-huge) = 0
      // rather than inf/inf; the exp itself is single precision (the weights are floats).
      const double scaled = (static_cast<double>(c.logit) - static_cast<double>(max_logit)) * inv_t;
      c.p = std::exp(static_cast<float>(std::max(scaled, -1000.0)));
    }
    total += c.p;
  }
  const double u = uniform01() * total;
  double cum = 0.0;
  for (const Candidate& c : candidates_) {
    cum += c.p;
    if (u < cum) return c.id;
  }
  // Rounding left u at the very top: take the last candidate that has any weight.
  for (size_t i = candidates_.size(); i-- > 0;) {
    if (candidates_[i].p > 0.0f) return candidates_[i].id;
  }
  LLMOS_ASSERT(false);
  return -1;
}

}  // namespace llmos
