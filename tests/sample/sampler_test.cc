#include "sample/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"

// Counts heap allocations so the test can check that sample() makes none after construction.
// GCC cannot see that the replaced operator new pairs with the replaced operator delete once
// both are inlined into library code, and reports a false mismatch.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
std::atomic<long> g_allocations{0};
}  // namespace

// Every unaligned form is replaced, so that each allocation and its release pair up (under
// AddressSanitizer a mix of replaced and intercepted forms is reported as a mismatch).
namespace {
void* counted_alloc(size_t size) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
}  // namespace

void* operator new(size_t size) {
  if (void* p = counted_alloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size) {
  if (void* p = counted_alloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size); }
void* operator new[](size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace llmos {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Parameters with every truncation and the penalty switched off.
SamplingParams plain(float temperature, uint64_t seed = 1) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_penalty = 1.0f;
  p.seed = seed;
  return p;
}

std::vector<float> random_logits(int n, uint32_t seed, float scale = 3.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(gen);
  return v;
}

int32_t sample_once(const SamplingParams& p, const std::vector<float>& logits,
                    const std::vector<int32_t>& history = {}) {
  Sampler s(p, static_cast<int32_t>(logits.size()));
  return s.sample(logits.data(), history);
}

// Softmax probabilities in double, the test's own oracle.
std::vector<double> softmax(const std::vector<float>& logits, double temperature = 1.0) {
  double mx = -std::numeric_limits<double>::infinity();
  for (float l : logits) mx = std::max(mx, static_cast<double>(l));
  std::vector<double> p(logits.size());
  double total = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    p[i] = std::exp((logits[i] - mx) / temperature);
    total += p[i];
  }
  for (double& x : p) x /= total;
  return p;
}

// Ids ordered by descending logit, ascending id on ties.
std::vector<int32_t> order_desc(const std::vector<float>& logits) {
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(),
                   [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  return ids;
}

// Chi-square statistic of observed counts against expected probabilities.
double chi_square(const std::vector<int>& counts, const std::vector<double>& probs, int draws) {
  double chi = 0.0;
  for (size_t i = 0; i < probs.size(); ++i) {
    const double expected = probs[i] * draws;
    if (expected == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0";
      continue;
    }
    chi += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  return chi;
}

TEST(Sampler, GreedyPicksArgmax) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    auto logits = random_logits(500, seed);
    const auto expected =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    SamplingParams p;  // defaults, but greedy
    p.temperature = 0.0f;
    EXPECT_EQ(sample_once(p, logits), expected) << "seed " << seed;
  }
}

TEST(Sampler, GreedyLowestIdWinsTies) {
  EXPECT_EQ(sample_once(plain(0.0f), {1.0f, 3.0f, 3.0f, 2.0f}), 1);
  EXPECT_EQ(sample_once(plain(0.0f), {0.5f, 0.5f, 0.5f}), 0);
  EXPECT_EQ(sample_once(plain(0.0f), {kNegInf, 5.0f, 5.0f, kNegInf}), 1);
  EXPECT_EQ(sample_once(plain(0.0f), {kNegInf, kNegInf, -7.0f}), 2);
}

// The greedy fast path (vectorised scan) against the general path (candidates + argmax, taken
// when a repeat penalty is set; with no history the penalty changes nothing): same token, same
// errors, for vocabulary sizes around the vector width, many ties, masked tokens and bad logits
// anywhere (in the vector body, in the tail, first, last).
TEST(Sampler, GreedyFastPathMatchesTheGeneralPath) {
  SamplingParams fast = plain(0.0f);
  SamplingParams general = plain(0.0f);
  general.repeat_penalty = 1.5f;
  std::mt19937 rng(7);
  const std::vector<int> sizes = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 513, 32000};
  for (int n : sizes) {
    for (int trial = 0; trial < 40; ++trial) {
      std::vector<float> logits(static_cast<size_t>(n));
      std::uniform_int_distribution<int> level(-3, 3);  // few distinct values: many ties
      for (float& l : logits) l = static_cast<float>(level(rng)) * 0.5f;
      std::uniform_int_distribution<int> pos(0, n - 1);
      const int masked = trial % 4 == 0 ? n : trial % 3;  // trial 0: everything masked
      for (int k = 0; k < masked; ++k) logits[static_cast<size_t>(pos(rng))] = kNegInf;
      if (trial % 5 == 1) logits[static_cast<size_t>(pos(rng))] = -0.0f;
      const int bad_kind = trial % 7;  // 1: NaN, 2: +inf somewhere; 3: NaN last; 4: +inf first
      size_t bad_at = 0;
      if (bad_kind >= 1 && bad_kind <= 4) {
        bad_at = bad_kind == 3 ? static_cast<size_t>(n - 1)
                               : bad_kind == 4 ? 0 : static_cast<size_t>(pos(rng));
        logits[bad_at] = (bad_kind == 1 || bad_kind == 3) ? std::numeric_limits<float>::quiet_NaN()
                                                          : std::numeric_limits<float>::infinity();
      }
      std::string fast_error, general_error;
      int32_t fast_token = -1, general_token = -1;
      try {
        fast_token = sample_once(fast, logits);
      } catch (const Error& e) {
        fast_error = e.message();
      }
      try {
        general_token = sample_once(general, logits);
      } catch (const Error& e) {
        general_error = e.message();
      }
      ASSERT_EQ(fast_error, general_error) << "n " << n << " trial " << trial;
      ASSERT_EQ(fast_token, general_token) << "n " << n << " trial " << trial;
      if (bad_kind >= 1 && bad_kind <= 4) {
        EXPECT_NE(fast_error.find("index " + std::to_string(bad_at)), std::string::npos)
            << fast_error << " (n " << n << ")";
      }
    }
  }
}

TEST(Sampler, PenaltyChangesArgmax) {
  SamplingParams p = plain(0.0f);
  p.repeat_penalty = 1.5f;
  p.repeat_last_n = 64;
  // Positive logit is divided: 2.0 / 1.5 = 1.33 < 1.9.
  const std::vector<float> pos = {2.0f, 1.9f, 0.0f};
  EXPECT_EQ(sample_once(plain(0.0f), pos, {0}), 0);
  EXPECT_EQ(sample_once(p, pos, {0}), 1);
  // Negative logit is multiplied: -1.0 * 1.5 = -1.5 < -1.2.
  const std::vector<float> neg = {-1.0f, -1.2f, -3.0f};
  EXPECT_EQ(sample_once(p, neg, {0}), 1);
  // A penalty below 1 rewards repeats.
  SamplingParams reward = p;
  reward.repeat_penalty = 0.5f;
  EXPECT_EQ(sample_once(reward, {1.0f, 1.5f}, {0}), 0);    // 1.0 / 0.5 = 2.0 > 1.5
  EXPECT_EQ(sample_once(reward, {-1.0f, -0.6f}, {0}), 0);  // -1.0 * 0.5 = -0.5 > -0.6
}

TEST(Sampler, PenaltyCountsEachDistinctTokenOnce) {
  SamplingParams p = plain(0.0f);
  p.repeat_penalty = 1.5f;
  // Applied once: 2.0 / 1.5 = 1.33 > 1.0. Applied three times it would be 0.59 < 1.0.
  EXPECT_EQ(sample_once(p, {2.0f, 1.0f}, {0, 0, 0}), 0);
}

TEST(Sampler, PenaltyRespectsRepeatLastN) {
  SamplingParams p = plain(0.0f);
  p.repeat_penalty = 1.5f;
  const std::vector<float> logits = {2.0f, 1.9f, 0.0f, 0.0f};
  p.repeat_last_n = 3;
  EXPECT_EQ(sample_once(p, logits, {0, 2, 3, 2}), 0);  // token 0 is outside the window
  p.repeat_last_n = 4;
  EXPECT_EQ(sample_once(p, logits, {0, 2, 3, 2}), 1);  // now inside
  p.repeat_last_n = 100;                               // window longer than the history
  EXPECT_EQ(sample_once(p, logits, {0}), 1);
  p.repeat_last_n = 0;  // disabled
  EXPECT_EQ(sample_once(p, logits, {0}), 0);
}

TEST(Sampler, PenaltyRejectsHistoryOutsideVocab) {
  SamplingParams p = plain(0.0f);
  p.repeat_penalty = 1.1f;
  p.repeat_last_n = 2;
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  EXPECT_THROW(sample_once(p, logits, {0, 3}), Error);
  EXPECT_THROW(sample_once(p, logits, {-1, 0}), Error);
  // Outside the window, bad ids are not looked at.
  EXPECT_EQ(sample_once(p, logits, {99, 0, 1}), 2);
}

TEST(Sampler, PenaltyKeepsExtremeLogitsFinite) {
  SamplingParams p = plain(1.0f);
  p.repeat_penalty = 1e-30f;  // finite logits must not become +inf (softmax would be NaN)
  const std::vector<float> logits = {1e20f, 0.0f, kNegInf};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_once(p, logits, {0, 2}), 0);
}

TEST(Sampler, TopK1EqualsGreedyForAnyTemperature) {
  for (float temperature : {0.05f, 0.7f, 1.0f, 3.0f, 100.0f}) {
    for (uint32_t seed = 0; seed < 10; ++seed) {
      auto logits = random_logits(1000, seed);
      // Token seed*7 would win but is penalised; seed*7+1 and seed*7+2 tie behind it.
      logits[seed * 7] = 25.0f;
      logits[seed * 7 + 1] = logits[seed * 7 + 2] = 20.0f;
      SamplingParams p = plain(temperature, seed);
      p.top_k = 1;
      p.repeat_penalty = 1.3f;
      const std::vector<int32_t> history = {static_cast<int32_t>(seed * 7)};
      SamplingParams g = p;
      g.temperature = 0.0f;
      const int32_t greedy = sample_once(g, logits, history);
      EXPECT_EQ(greedy, static_cast<int32_t>(seed * 7 + 1));
      Sampler s(p, 1000);
      for (int i = 0; i < 5; ++i) EXPECT_EQ(s.sample(logits.data(), history), greedy);
    }
  }
}

std::vector<int32_t> generate(uint64_t seed, int steps) {
  SamplingParams p;  // the default chain: penalty-free top-k 40, top-p 0.95, min-p 0.05
  p.temperature = 1.0f;
  p.repeat_penalty = 1.1f;
  p.seed = seed;
  const int vocab = 300;
  Sampler s(p, vocab);
  std::vector<int32_t> history = {1, 2, 3};
  std::vector<int32_t> out;
  for (int i = 0; i < steps; ++i) {
    // Logits depend on the step so the walk does not settle on one token.
    auto logits = random_logits(vocab, static_cast<uint32_t>(i), 1.5f);
    const int32_t t = s.sample(logits.data(), history);
    history.push_back(t);
    out.push_back(t);
  }
  return out;
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedsDiffer) {
  const auto a = generate(42, 200);
  const auto b = generate(42, 200);
  const auto c = generate(43, 200);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // The sequence is not degenerate.
  EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 20u);
}

TEST(Sampler, ReseedRestartsTheStream) {
  const auto logits = random_logits(50, 7, 1.0f);
  Sampler s(plain(1.0f, 9), 50);
  std::vector<int32_t> first, second;
  for (int i = 0; i < 50; ++i) first.push_back(s.sample(logits.data(), {}));
  s.reseed(9);
  for (int i = 0; i < 50; ++i) second.push_back(s.sample(logits.data(), {}));
  EXPECT_EQ(first, second);
}

TEST(Sampler, EmpiricalDistributionMatchesSoftmax) {
  const std::vector<float> logits = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f, -2.0f, kNegInf, 1.5f};
  const int draws = 20000;
  // Chi-square critical value for 6 degrees of freedom (7 non-zero cells) at p = 0.001.
  const double critical = 22.46;
  for (double temperature : {1.0, 0.5, 2.0}) {
    Sampler s(plain(static_cast<float>(temperature), 1234), static_cast<int32_t>(logits.size()));
    std::vector<int> counts(logits.size(), 0);
    for (int i = 0; i < draws; ++i) ++counts[static_cast<size_t>(s.sample(logits.data(), {}))];
    const auto probs = softmax(logits, temperature);
    EXPECT_LT(chi_square(counts, probs, draws), critical) << "temperature " << temperature;
    for (size_t i = 0; i < probs.size(); ++i) {
      EXPECT_NEAR(counts[i] / static_cast<double>(draws), probs[i], 0.015)
          << "token " << i << " temperature " << temperature;
    }
  }
}

TEST(Sampler, EmpiricalDistributionAfterTopK) {
  // top-k 3 renormalises over the three largest.
  const std::vector<float> logits = {0.3f, 1.0f, -1.0f, 0.8f, 0.5f};
  SamplingParams p = plain(1.0f, 77);
  p.top_k = 3;
  Sampler s(p, 5);
  const int draws = 20000;
  std::vector<int> counts(5, 0);
  for (int i = 0; i < draws; ++i) ++counts[static_cast<size_t>(s.sample(logits.data(), {}))];
  std::vector<float> kept = {kNegInf, 1.0f, kNegInf, 0.8f, 0.5f};
  EXPECT_LT(chi_square(counts, softmax(kept), draws), 13.82);  // 2 dof, p = 0.001
}

// The set top-p keeps, computed independently; returns false when the cut lies so close to a
// candidate boundary that float rounding could legitimately move it.
bool top_p_kept(const std::vector<float>& logits, double top_p, std::set<int32_t>* kept) {
  const auto probs = softmax(logits);
  const auto ids = order_desc(logits);
  double cum = 0.0;
  for (int32_t id : ids) {
    const double before = cum;
    cum += probs[static_cast<size_t>(id)];
    kept->insert(id);
    // The sampler sums float weights: allow it a relative error far above float rounding.
    if (std::abs(cum - top_p) < 1e-6 || std::abs(before - top_p) < 1e-6) return false;
    if (cum >= top_p) break;
  }
  return true;
}

TEST(Sampler, TopPNeverReturnsOutsideKeptSet) {
  int checked = 0;
  for (uint32_t seed = 0; seed < 30; ++seed) {
    const auto logits = random_logits(400, seed, 2.0f);
    for (float top_p : {0.1f, 0.5f, 0.9f}) {
      std::set<int32_t> kept;
      if (!top_p_kept(logits, top_p, &kept)) continue;
      ++checked;
      SamplingParams p = plain(1.5f, seed);
      p.top_p = top_p;
      Sampler s(p, 400);
      std::set<int32_t> seen;
      for (int i = 0; i < 150; ++i) {
        const int32_t t = s.sample(logits.data(), {});
        ASSERT_TRUE(kept.count(t)) << "token " << t << " outside top-p " << top_p << " set of "
                                   << kept.size() << " (seed " << seed << ")";
        seen.insert(t);
      }
      // The cut is not over-eager: with a kept set of several tokens, several show up.
      if (kept.size() >= 3) {
        EXPECT_GE(seen.size(), 2u);
      }
    }
  }
  EXPECT_GT(checked, 60);
}

TEST(Sampler, TopPAndTopKOverWideCandidateSets) {
  // Flat logits make the kept sets thousands of tokens wide, past the first sorted batches.
  const int vocab = 20000;
  int checked = 0;
  for (uint32_t seed = 0; seed < 2; ++seed) {
    const auto logits = random_logits(vocab, seed + 900, 1.0f);
    std::set<int32_t> kept;
    if (!top_p_kept(logits, 0.6, &kept)) continue;
    ASSERT_GT(kept.size(), 1000u);
    SamplingParams p = plain(1.0f, seed);
    p.top_p = 0.6f;
    Sampler s(p, vocab);
    std::set<int32_t> seen;
    for (int i = 0; i < 100; ++i) {
      const int32_t t = s.sample(logits.data(), {});
      ASSERT_TRUE(kept.count(t)) << "token " << t << " outside the top-p set of " << kept.size();
      seen.insert(t);
    }
    EXPECT_GT(seen.size(), 50u);

    // top-k 3000, then top-p 0.9 of what is left.
    const auto ids = order_desc(logits);
    std::vector<float> topk(logits.size(), kNegInf);
    for (int i = 0; i < 3000; ++i) topk[ids[i]] = logits[ids[i]];
    std::set<int32_t> kept_kp;
    if (!top_p_kept(topk, 0.9, &kept_kp)) continue;
    ASSERT_GT(kept_kp.size(), 1000u);
    ASSERT_LT(kept_kp.size(), 3000u);
    p.top_k = 3000;
    p.top_p = 0.9f;
    Sampler s2(p, vocab);
    for (int i = 0; i < 100; ++i) {
      const int32_t t = s2.sample(logits.data(), {});
      ASSERT_TRUE(kept_kp.count(t)) << "token " << t << " outside the top-k + top-p set";
    }
    ++checked;
  }
  EXPECT_GE(checked, 1);
}

TEST(Sampler, TopPKeepsAtLeastOneToken) {
  SamplingParams p = plain(1.0f);
  p.top_p = 1e-6f;
  const auto logits = random_logits(1000, 3);
  const auto expected =
      static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  Sampler s(p, 1000);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(logits.data(), {}), expected);
}

TEST(Sampler, MinPNeverReturnsOutsideKeptSet) {
  int checked = 0;
  for (uint32_t seed = 0; seed < 30; ++seed) {
    const auto logits = random_logits(300, seed + 100, 2.0f);
    for (float min_p : {0.02f, 0.2f, 0.6f}) {
      const auto probs = softmax(logits);
      const double pmax = *std::max_element(probs.begin(), probs.end());
      std::set<int32_t> kept;
      bool near_edge = false;
      for (size_t i = 0; i < probs.size(); ++i) {
        const double ratio = probs[i] / pmax;
        if (std::abs(ratio - min_p) < 1e-4) near_edge = true;
        if (ratio >= min_p) kept.insert(static_cast<int32_t>(i));
      }
      if (near_edge) continue;
      ++checked;
      SamplingParams p = plain(2.0f, seed);  // a high temperature spreads the draws
      p.min_p = min_p;
      Sampler s(p, 300);
      for (int i = 0; i < 150; ++i) {
        const int32_t t = s.sample(logits.data(), {});
        ASSERT_TRUE(kept.count(t)) << "token " << t << " outside min-p " << min_p << " set";
      }
    }
  }
  EXPECT_GT(checked, 60);
}

TEST(Sampler, CombinedChainStaysInsideEveryFilter) {
  // top-k 20 -> top-p 0.8 (over the 20) -> min-p 0.1; the test recomputes each stage.
  for (uint32_t seed = 0; seed < 20; ++seed) {
    const auto logits = random_logits(2000, seed + 500, 2.5f);
    const auto ids = order_desc(logits);
    std::vector<float> topk(logits.size(), kNegInf);
    for (int i = 0; i < 20; ++i) topk[ids[i]] = logits[ids[i]];
    std::set<int32_t> after_p;
    if (!top_p_kept(topk, 0.8, &after_p)) continue;
    float best = logits[ids[0]];
    std::set<int32_t> kept;
    for (int32_t id : after_p) {
      if (std::exp(static_cast<double>(logits[id]) - best) >= 0.1) kept.insert(id);
    }
    SamplingParams p = plain(1.0f, seed);
    p.top_k = 20;
    p.top_p = 0.8f;
    p.min_p = 0.1f;
    Sampler s(p, 2000);
    for (int i = 0; i < 200; ++i) {
      const int32_t t = s.sample(logits.data(), {});
      ASSERT_TRUE(kept.count(t)) << "token " << t << " (seed " << seed << ")";
    }
  }
}

TEST(Sampler, MaskedTokensAreNeverSampled) {
  std::vector<float> logits(100, kNegInf);
  logits[17] = -50.0f;
  logits[60] = -50.5f;
  Sampler s(plain(1.0f, 5), 100);
  std::set<int32_t> seen;
  for (int i = 0; i < 500; ++i) seen.insert(s.sample(logits.data(), {}));
  EXPECT_EQ(seen, (std::set<int32_t>{17, 60}));
}

TEST(Sampler, TinyAndHugeTemperaturesStayWellDefined) {
  const std::vector<float> logits = {0.0f, 1.0f, 0.999f, kNegInf};
  Sampler cold(plain(1e-30f), 4);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(cold.sample(logits.data(), {}), 1);
  Sampler hot(plain(1e30f, 3), 4);
  std::set<int32_t> seen;
  for (int i = 0; i < 300; ++i) seen.insert(hot.sample(logits.data(), {}));
  EXPECT_EQ(seen, (std::set<int32_t>{0, 1, 2}));
}

TEST(Sampler, LargeVocabularyWithDefaults) {
  const int vocab = 152064;
  std::vector<float> logits;
  std::set<int32_t> kept;  // the top-p 0.5 set, for the second half
  for (uint32_t seed = 11;; ++seed) {
    logits = random_logits(vocab, seed, 4.0f);
    kept.clear();
    if (top_p_kept(logits, 0.5, &kept)) break;  // a cut clear of rounding edges
  }
  SamplingParams p;  // top-k 40, top-p 0.95, min-p 0.05, temperature 0.8
  p.seed = 3;
  Sampler s(p, vocab);
  const auto ids = order_desc(logits);
  const std::set<int32_t> top40(ids.begin(), ids.begin() + 40);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(top40.count(s.sample(logits.data(), {})));
  // Without top-k, top-p takes the lazy partial-sort path over the whole vocabulary.
  p.top_k = 0;
  p.min_p = 0.0f;
  p.top_p = 0.5f;
  Sampler s2(p, vocab);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(kept.count(s2.sample(logits.data(), {})));
}

TEST(Sampler, SampleDoesNotAllocate) {
  const int vocab = 5000;
  const auto logits = random_logits(vocab, 21);
  const std::vector<int32_t> history = {1, 2, 3, 2, 1, 4000};
  for (int mode = 0; mode < 4; ++mode) {
    SamplingParams p;
    p.repeat_penalty = 1.2f;
    if (mode == 1) p.temperature = 0.0f;
    if (mode == 2) p.top_k = 0;  // the lazy top-p sort path
    if (mode == 3) p.top_p = 1.0f;
    Sampler s(p, vocab);
    const long before = g_allocations.load();
    int32_t sum = 0;
    for (int i = 0; i < 20; ++i) sum += s.sample(logits.data(), history);
    const long after = g_allocations.load();
    EXPECT_EQ(after - before, 0) << "mode " << mode;
    EXPECT_GE(sum, 0);
  }
}

TEST(Sampler, ValidateRejectsEachBadField) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  auto expect_bad = [&](const std::string& field, const SamplingParams& p) {
    try {
      p.validate();
      ADD_FAILURE() << "validate() accepted a bad " << field;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(e.message().find(field), std::string::npos) << e.message();
    }
    EXPECT_THROW(Sampler(p, 10), Error) << field;
  };
  SamplingParams ok;
  EXPECT_NO_THROW(ok.validate());
  for (float bad : {-0.1f, -inf, inf, nan}) {
    SamplingParams p;
    p.temperature = bad;
    expect_bad("temperature", p);
  }
  for (float bad : {0.0f, -0.5f, 1.01f, nan}) {
    SamplingParams p;
    p.top_p = bad;
    expect_bad("top_p", p);
  }
  for (float bad : {-0.01f, 1.5f, nan}) {
    SamplingParams p;
    p.min_p = bad;
    expect_bad("min_p", p);
  }
  for (float bad : {0.0f, -1.0f, inf, nan}) {
    SamplingParams p;
    p.repeat_penalty = bad;
    expect_bad("repeat_penalty", p);
  }
  {
    SamplingParams p;
    p.repeat_last_n = -1;
    expect_bad("repeat_last_n", p);
  }
  // Boundary values are fine.
  SamplingParams edge;
  edge.temperature = 0.0f;
  edge.top_p = 1.0f;
  edge.min_p = 1.0f;
  edge.top_k = -5;
  edge.repeat_last_n = 0;
  EXPECT_NO_THROW(edge.validate());
  EXPECT_THROW(Sampler(ok, 0), Error);
  EXPECT_THROW(Sampler(ok, -3), Error);
}

TEST(Sampler, NonFiniteLogitsAreErrors) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (float temperature : {0.0f, 1.0f}) {
    std::vector<float> logits = {0.0f, 1.0f, nan, 2.0f};
    try {
      sample_once(plain(temperature), logits);
      ADD_FAILURE() << "NaN logit accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(e.message().find("index 2"), std::string::npos) << e.message();
      EXPECT_NE(e.message().find("NaN"), std::string::npos) << e.message();
    }
    logits[2] = std::numeric_limits<float>::infinity();
    EXPECT_THROW(sample_once(plain(temperature), logits), Error);
    const std::vector<float> all_masked(5, kNegInf);
    EXPECT_THROW(sample_once(plain(temperature), all_masked), Error);
  }
}

TEST(Sampler, SpanOverloadChecksSize) {
  Sampler s(plain(0.0f), 4);
  const std::vector<float> three = {1.0f, 2.0f, 3.0f};
  const std::vector<float> four = {1.0f, 2.0f, 4.0f, 3.0f};
  EXPECT_THROW(s.sample(std::span<const float>(three), {}), Error);
  EXPECT_EQ(s.sample(std::span<const float>(four), {}), 2);
}

}  // namespace
}  // namespace llmos
