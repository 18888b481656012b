// f16 and bf16 scalar conversions (core/half.h) against independent references: exhaustive over
// every 16-bit pattern, plus rounding (ties to even), subnormals and overflow on crafted and
// random f32 inputs, checked against a nearest-value search done in double precision.
#include "core/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

namespace llmos {
namespace {

bool f16_is_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0; }
bool bf16_is_nan(uint16_t h) { return (h & 0x7F80) == 0x7F80 && (h & 0x007F) != 0; }

// The value of an f16 bit pattern from the IEEE definition (no bit tricks).
double f16_value(uint16_t h) {
  const int sign = h >> 15;
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  double v;
  if (exp == 0) {
    v = std::ldexp(static_cast<double>(mant), -24);
  } else if (exp == 31) {
    v = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else {
    v = std::ldexp(1.0 + mant / 1024.0, exp - 15);
  }
  return sign ? -v : v;
}

// Nearest f16 to a finite or infinite f32, ties to the even pattern, by search over the
// magnitude-ordered patterns 0x0000..0x7C00. Overflow follows IEEE: |x| >= 65520 (halfway from
// the largest finite value to 2^16) rounds to infinity.
uint16_t f16_reference(float f) {
  const double x = std::fabs(static_cast<double>(f));
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  if (x >= 65520.0) return sign | 0x7C00;
  // Largest pattern with value <= x.
  uint32_t lo = 0;
  uint32_t hi = 0x7BFF;
  while (lo < hi) {
    const uint32_t mid = (lo + hi + 1) / 2;
    if (f16_value(static_cast<uint16_t>(mid)) <= x) lo = mid; else hi = mid - 1;
  }
  const double below = f16_value(static_cast<uint16_t>(lo));
  const double above = lo == 0x7BFF ? 65536.0 : f16_value(static_cast<uint16_t>(lo + 1));
  uint32_t pick = lo;
  if (x - below > above - x || (x - below == above - x && (lo & 1))) pick = lo + 1;
  return static_cast<uint16_t>(sign | pick);
}

// Nearest bf16 (the top half of an f32) to a non-NaN f32, ties to even; the pattern after the
// largest finite one is infinity, which IEEE treats as 2^128 for rounding.
uint16_t bf16_reference(float f) {
  const uint32_t bits = f32_to_bits(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t mag = bits & 0x7FFFFFFF;
  if (mag >= 0x7F800000) return static_cast<uint16_t>(sign | 0x7F80);  // infinity
  const uint32_t lo = mag >> 16;
  const double x = bits_to_f32(mag);
  const double below = bits_to_f32(lo << 16);
  const double above = lo == 0x7F7F ? std::ldexp(1.0, 128) : bits_to_f32((lo + 1) << 16);
  uint32_t pick = lo;
  if (x - below > above - x || (x - below == above - x && (lo & 1))) pick = lo + 1;
  return static_cast<uint16_t>(sign | pick);
}

TEST(Half, F16ToF32MatchesTheDefinitionForAllPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    const double want = f16_value(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << h;
    } else {
      ASSERT_EQ(static_cast<double>(f), want) << std::hex << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << h;  // -0 stays -0
    }
  }
}

TEST(Half, F16RoundTripsEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    const uint16_t back = f32_to_f16(f16_to_f32(bits));
    if (f16_is_nan(bits)) {
      ASSERT_TRUE(f16_is_nan(back)) << std::hex << h << " -> " << back;
      ASSERT_EQ(back & 0x8000, bits & 0x8000) << std::hex << h;
    } else {
      ASSERT_EQ(back, bits) << std::hex << h;
    }
  }
}

TEST(Half, F32ToF16RoundsTiesToEven) {
  const float ulp1 = std::ldexp(1.0f, -10);  // f16 spacing in [1, 2)
  EXPECT_EQ(f32_to_f16(1.0f + ulp1 / 2), 0x3C00);          // tie, 1.0 is even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * ulp1 / 2), 0x3C02);      // tie, 0x3C02 is even
  EXPECT_EQ(f32_to_f16(std::nextafter(1.0f + ulp1 / 2, 2.0f)), 0x3C01);  // just above the tie
  EXPECT_EQ(f32_to_f16(std::nextafter(1.0f + 3 * ulp1 / 2, 0.0f)), 0x3C01);  // just below
  EXPECT_EQ(f32_to_f16(-(1.0f + ulp1 / 2)), 0xBC00);
  EXPECT_EQ(f32_to_f16(2.0f - ulp1 / 2), 0x4000);          // tie rounds up into the next binade
  EXPECT_EQ(f32_to_f16(0.1f), 0x2E66);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
}

TEST(Half, F32ToF16Subnormals) {
  const float tiny = std::ldexp(1.0f, -24);  // smallest f16 subnormal
  EXPECT_EQ(f32_to_f16(tiny), 0x0001);
  EXPECT_EQ(f32_to_f16(tiny / 2), 0x0000);                      // tie with 0: even
  EXPECT_EQ(f32_to_f16(std::nextafter(tiny / 2, 1.0f)), 0x0001);  // above the tie
  EXPECT_EQ(f32_to_f16(-tiny / 2), 0x8000);
  EXPECT_EQ(f32_to_f16(3 * tiny / 2), 0x0002);                  // tie between 1 and 2: even
  EXPECT_EQ(f32_to_f16(5 * tiny / 2), 0x0002);                  // tie between 2 and 3: even
  EXPECT_EQ(f32_to_f16(1023 * tiny), 0x03FF);                   // largest subnormal
  EXPECT_EQ(f32_to_f16(1023.5f * tiny), 0x0400);                // tie rounds up to a normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);         // smallest normal
  EXPECT_EQ(f32_to_f16(1e-10f), 0x0000);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::denorm_min()), 0x0000);
}

TEST(Half, F32ToF16Overflow) {
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);                       // largest finite
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7BFF);                     // below the halfway point
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);                       // halfway: to even = inf
  EXPECT_EQ(f32_to_f16(1e10f), 0x7C00);
  EXPECT_EQ(f32_to_f16(-1e10f), 0xFC00);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::max()), 0x7C00);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xFC00);
}

TEST(Half, F32ToF16KeepsNaNsNaN) {
  // Payloads only in the low 13 bits would truncate to an infinity; they must stay NaN.
  for (uint32_t bits : {0x7FC00000u, 0x7F800001u, 0xFF800001u, 0x7F801FFFu, 0x7FFFFFFFu}) {
    const uint16_t h = f32_to_f16(bits_to_f32(bits));
    EXPECT_TRUE(f16_is_nan(h)) << std::hex << bits << " -> " << h;
    EXPECT_EQ(h & 0x8000, (bits >> 16) & 0x8000) << std::hex << bits;
  }
}

TEST(Half, F32ToF16MatchesNearestValueSearch) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> exp_dist(127 - 27, 127 + 17);  // tiny .. overflow
  for (int i = 0; i < 200000; ++i) {
    const uint32_t r = rng();
    uint32_t bits = (r & 0x807FFFFFu) | (exp_dist(rng) << 23);
    if (i % 4 == 0) bits = (bits & ~0x1FFFu) | 0x1000u;  // sit exactly on a normal-range tie
    const float f = bits_to_f32(bits);
    ASSERT_EQ(f32_to_f16(f), f16_reference(f)) << std::hex << bits;
  }
}

TEST(Half, Bf16RoundTripsEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    const float f = bf16_to_f32(bits);
    EXPECT_EQ(f32_to_bits(f), h << 16);  // bf16 is the top half of an f32
    const uint16_t back = f32_to_bf16(f);
    if (bf16_is_nan(bits)) {
      ASSERT_TRUE(bf16_is_nan(back)) << std::hex << h;
    } else {
      ASSERT_EQ(back, bits) << std::hex << h;
    }
  }
}

TEST(Half, F32ToBf16RoundsTiesToEven) {
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F808000u)), 0x3F80);  // tie, 0x3F80 even
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F818000u)), 0x3F82);  // tie, 0x3F82 even
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F808001u)), 0x3F81);  // above the tie
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F807FFFu)), 0x3F80);  // below the tie
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x007F8000u)), 0x0080);  // subnormal tie rounds to normal
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x7F7F8000u)), 0x7F80);  // halfway past max: inf
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x7F7F7FFFu)), 0x7F7F);  // stays the largest finite
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  for (uint32_t bits : {0x7FC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu}) {
    EXPECT_TRUE(bf16_is_nan(f32_to_bf16(bits_to_f32(bits)))) << std::hex << bits;
  }
}

TEST(Half, F32ToBf16MatchesNearestValueSearch) {
  std::mt19937 rng(99);
  for (int i = 0; i < 200000; ++i) {
    uint32_t bits = rng();
    if ((bits & 0x7F800000u) == 0x7F800000u) bits &= ~0x00800000u;  // no NaN/inf inputs
    if (i % 4 == 0) bits = (bits & ~0xFFFFu) | 0x8000u;               // exactly on a tie
    const float f = bits_to_f32(bits);
    ASSERT_EQ(f32_to_bf16(f), bf16_reference(f)) << std::hex << bits;
  }
}

}  // namespace
}  // namespace llmos
