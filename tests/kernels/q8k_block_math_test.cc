// The per-block math of the CUDA K-quant GEMV (kernels/cuda/q8k_block_math.cuh) run on the CPU,
// against the q8_K references of kernels/matmul_q8k.h:
//  - q8_K activation blocks bit for bit as quantize_row_q8k_ref writes them (d, codes, bsums),
//    including all-zero blocks, ties of magnitude (the first element wins) and a block whose
//    largest magnitude is negative;
//  - the four parts of a Q4_K / Q5_K / Q6_K block: their integer S and M shares sum to the S and
//    M of a naive decode of the block structs (6-bit scale unpacking, nibble / high-bit order,
//    Q6_K's signed scales and -32), for blocks at both 2-byte word phases;
//  - whole rows: every output's blocks combined in block order with these functions give
//    matmul_q8k_ref's bits exactly (k = 256 .. 4096, ragged n, m = 1..8, bias), so the kernel
//    differs from the reference only in the order in which it adds block terms.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/cuda/q8k_block_math.cuh"
#include "kernels/matmul_q8k.h"
#include "quant/block_formats.h"
#include "support/blockwise_activations.h"
#include "quant/k_quant_search.h"

namespace llmos::kernels::cuda {
namespace {

int8_t code_of(const Q8KActBlockCuda& a, int t) {
  return static_cast<int8_t>(static_cast<uint32_t>(a.qs[t / 4]) >> (8 * (t % 4)));
}

// Rows of activations whose blocks range over magnitudes 1e-8 .. 1e8.
std::vector<float> random_activations(int64_t rows, int64_t k, std::mt19937& rng) {
  return test::blockwise_activations(rows, k, k, kQ8KBlock, -24, 24, 3.0f, rng);
}

void expect_same_block(const Q8KActBlockCuda& got, const Q8KBlock& want, const std::string& what) {
  ASSERT_EQ(f32_to_bits(got.d), f32_to_bits(want.d)) << what << ": d " << got.d << " vs " << want.d;
  for (int t = 0; t < kQ8KBlock; ++t) ASSERT_EQ(code_of(got, t), want.qs[t]) << what << " code " << t;
  for (int g = 0; g < kQ8KBlock / 16; ++g) ASSERT_EQ(got.bsums[g], want.bsums[g]) << what << " bsum " << g;
}

void check_quantizer(const std::vector<float>& x, const std::string& what) {
  const int64_t nb = static_cast<int64_t>(x.size()) / kQ8KBlock;
  std::vector<Q8KBlock> want(static_cast<size_t>(nb));
  quantize_row_q8k_ref(x.data(), static_cast<int64_t>(x.size()), want.data());
  for (int64_t b = 0; b < nb; ++b) {
    Q8KActBlockCuda got;
    quantize_q8k_block(x.data() + b * kQ8KBlock, &got);
    expect_same_block(got, want[static_cast<size_t>(b)], what + " block " + std::to_string(b));
  }
}

TEST(Q8KBlockMath, ActivationBlocksMatchTheCpuQuantizerBitForBit) {
  std::mt19937 rng(7);
  for (int64_t k : {256, 1024, 4096}) check_quantizer(random_activations(1, k, rng), "k " + std::to_string(k));

  std::vector<float> x(kQ8KBlock, 0.0f);
  check_quantizer(x, "all zero");
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : x) v = u(rng);
  x[3] = -5.0f;
  x[200] = 5.0f;  // same magnitude, later: max stays -5 (iscale positive)
  check_quantizer(x, "tie, negative first");
  x[3] = 5.0f;
  x[200] = -5.0f;
  check_quantizer(x, "tie, positive first");
  for (float& v : x) v = std::round(u(rng) * 8.0f) / 8.0f;  // many exact halves after scaling
  x[17] = -1.0f;
  check_quantizer(x, "coarse values");
}

// ---- weight blocks -----------------------------------------------------------------------------

uint16_t random_scale(std::mt19937& rng) {
  std::uniform_real_distribution<float> mag(-3.0f, 0.0f);
  return f32_to_f16(std::pow(10.0f, mag(rng)));
}

// A row of nb random blocks of `dt` (every byte pattern is a valid block; the f16 scales are
// kept finite).
std::vector<uint8_t> random_row(DType dt, int64_t nb, std::mt19937& rng) {
  const int bytes = kquant_block_bytes(dt);
  std::vector<uint8_t> row(static_cast<size_t>(nb * bytes));
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& v : row) v = static_cast<uint8_t>(byte(rng));
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* blk = row.data() + b * bytes;
    const uint16_t d = random_scale(rng), dmin = random_scale(rng);
    if (dt == DType::kQ6_K) {
      std::memcpy(blk + 208, &d, 2);
    } else {
      std::memcpy(blk, &d, 2);
      std::memcpy(blk + 2, &dmin, 2);
    }
  }
  return row;
}

// The block's S and M decoded naively from the block structs (kernels/matmul_q8k.h).
void naive_sums(DType dt, const uint8_t* row, int64_t b, const Q8KBlock& a, int32_t* s_out,
                int32_t* m_out) {
  int32_t s_sum = 0, m_sum = 0;
  if (dt == DType::kQ6_K) {
    const auto blk = quant::load_block<quant::BlockQ6_K>(row, b);
    for (int e = 0; e < 256; ++e) {
      const int h = e / 128, k = (e / 32) % 4, l = e % 32;
      const int low = (blk.ql[64 * h + 32 * (k % 2) + l] >> (k >= 2 ? 4 : 0)) & 15;
      const int high = (blk.qh[32 * h + l] >> (2 * k)) & 3;
      s_sum += blk.scales[e / 16] * ((low | (high << 4)) - 32) * a.qs[e];
    }
  } else {
    const uint8_t* scales = nullptr;
    const uint8_t* qs = nullptr;
    const uint8_t* qh = nullptr;
    quant::BlockQ4_K b4;
    quant::BlockQ5_K b5;
    if (dt == DType::kQ4_K) {
      b4 = quant::load_block<quant::BlockQ4_K>(row, b);
      scales = b4.scales, qs = b4.qs;
    } else {
      b5 = quant::load_block<quant::BlockQ5_K>(row, b);
      scales = b5.scales, qs = b5.qs, qh = b5.qh;
    }
    for (int e = 0; e < 256; ++e) {
      const int s = e / 32;
      uint8_t sc = 0, mn = 0;
      quant::k4_get_scale_min(s, scales, &sc, &mn);
      int q = (qs[32 * (s / 2) + e % 32] >> (4 * (s % 2))) & 15;
      if (qh != nullptr) q |= ((qh[e % 32] >> s) & 1) << 4;
      s_sum += sc * q * a.qs[e];
      m_sum += mn * a.qs[e];
    }
  }
  *s_out = s_sum;
  *m_out = m_sum;
}

Q8KActBlockCuda device_block(const Q8KBlock& a) {
  Q8KActBlockCuda out{};
  for (int w = 0; w < kQ8KWords; ++w) {
    uint32_t word = 0;
    for (int i = 0; i < 4; ++i) word |= (static_cast<uint32_t>(a.qs[4 * w + i]) & 0xFFu) << (8 * i);
    out.qs[w] = static_cast<int32_t>(word);
  }
  for (int g = 0; g < 16; ++g) out.bsums[g] = a.bsums[g];
  out.d = a.d;
  return out;
}

// The block's S and M as the kernel's quad computes them: four parts, shares summed.
template <DType DT>
KPartSums quad_sums(const uint8_t* blk, const Q8KActBlockCuda& a, KWeightPart* part0) {
  KPartSums total{0, 0};
  for (int p = 0; p < kKParts; ++p) {
    KWeightPart w;
    Q8KActPart x;
    load_weight_part<DT>(blk, p, &w);
    load_act_part<DT>(&a, p, &x);
    const KPartSums s = kquant_part_sums<DT>(w, x);
    total.s += s.s;
    total.m += s.m;
    if (p == 0) *part0 = w;
  }
  return total;
}

template <DType DT>
float row_dot(const uint8_t* row, const Q8KActBlockCuda* act, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    KWeightPart w;
    const KPartSums s = quad_sums<DT>(row + b * kquant_block_bytes(DT), act[b], &w);
    acc = accumulate_kblock<DT>(acc, w.d, w.dmin, act[b].d, s.s, s.m);
  }
  return acc;
}

template <DType DT>
void check_block_sums() {
  std::mt19937 rng(11);
  const int64_t nb = 24;
  const int bytes = kquant_block_bytes(DT);
  const std::vector<float> x = random_activations(1, nb * kQ8KBlock, rng);
  std::vector<Q8KBlock> act(static_cast<size_t>(nb));
  quantize_row_q8k_ref(x.data(), nb * kQ8KBlock, act.data());
  const std::vector<uint8_t> row = random_row(DT, nb, rng);
  // The row at a 4-byte-aligned address and 2 bytes off: both word phases of load_code_words.
  for (size_t phase : {size_t{0}, size_t{2}}) {
    std::vector<uint32_t> storage(row.size() / 4 + 2);
    auto* base = reinterpret_cast<uint8_t*>(storage.data()) + phase;
    std::memcpy(base, row.data(), row.size());
    for (int64_t b = 0; b < nb; ++b) {
      int32_t want_s = 0, want_m = 0;
      naive_sums(DT, row.data(), b, act[static_cast<size_t>(b)], &want_s, &want_m);
      KWeightPart w;
      const KPartSums got = quad_sums<DT>(base + b * bytes, device_block(act[static_cast<size_t>(b)]), &w);
      ASSERT_EQ(got.s, want_s) << dtype_name(DT) << " block " << b << " phase " << phase;
      if (DT != DType::kQ6_K) {
        ASSERT_EQ(got.m, want_m) << dtype_name(DT) << " block " << b << " phase " << phase;
      }
    }
  }
}

TEST(Q8KBlockMath, PartSumsEqualTheNaiveBlockDecodeQ4K) { check_block_sums<DType::kQ4_K>(); }
TEST(Q8KBlockMath, PartSumsEqualTheNaiveBlockDecodeQ5K) { check_block_sums<DType::kQ5_K>(); }
TEST(Q8KBlockMath, PartSumsEqualTheNaiveBlockDecodeQ6K) { check_block_sums<DType::kQ6_K>(); }

TEST(Q8KBlockMath, ScaleUnpackingMatchesTheCpuHelper) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int trial = 0; trial < 200; ++trial) {
    uint8_t packed[12];
    for (uint8_t& v : packed) v = static_cast<uint8_t>(byte(rng));
    uint32_t sw[3];
    std::memcpy(sw, packed, 12);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc = 0, mn = 0;
      quant::k4_get_scale_min(j, packed, &sc, &mn);
      int32_t got_sc = -1, got_mn = -1;
      k4_scale_min(sw, j, &got_sc, &got_mn);
      ASSERT_EQ(got_sc, sc) << "sub-block " << j;
      ASSERT_EQ(got_mn, mn) << "sub-block " << j;
    }
  }
}

// Whole matmuls, blocks combined in order: matmul_q8k_ref's bits exactly.
template <DType DT>
void check_rows() {
  std::mt19937 rng(5);
  for (int64_t k : {256, 512, 1280, 4096}) {
    const int64_t nb = k / kQ8KBlock;
    for (int64_t m = 1; m <= 8; ++m) {
      const int64_t n = 3 + (m * 7 + k / 256) % 11;  // ragged column counts
      const int64_t row_bytes = nb * kquant_block_bytes(DT);
      std::vector<uint8_t> w;
      for (int64_t j = 0; j < n; ++j) {
        const std::vector<uint8_t> r = random_row(DT, nb, rng);
        w.insert(w.end(), r.begin(), r.end());
      }
      const std::vector<float> x = random_activations(m, k, rng);
      std::vector<float> bias(static_cast<size_t>(n));
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (float& v : bias) v = normal(rng);
      std::vector<Q8KBlock> act(static_cast<size_t>(m * nb));
      for (int64_t i = 0; i < m; ++i) quantize_row_q8k_ref(x.data() + i * k, k, act.data() + i * nb);
      std::vector<float> want(static_cast<size_t>(m * n));
      ASSERT_EQ(matmul_q8k_ref(DT, w.data(), row_bytes, k, bias.data(), act.data(), m, want.data(), n, 0, n),
                StatusCode::kOk);
      std::vector<Q8KActBlockCuda> dact(static_cast<size_t>(m * nb));
      for (int64_t i = 0; i < m * nb; ++i) quantize_q8k_block(x.data() + i * kQ8KBlock, &dact[static_cast<size_t>(i)]);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          const float got = row_dot<DT>(w.data() + j * row_bytes, dact.data() + i * nb, nb) + bias[static_cast<size_t>(j)];
          ASSERT_EQ(f32_to_bits(got), f32_to_bits(want[static_cast<size_t>(i * n + j)]))
              << dtype_name(DT) << " k " << k << " m " << m << " row " << i << " col " << j << ": " << got
              << " vs " << want[static_cast<size_t>(i * n + j)];
        }
      }
    }
  }
}

TEST(Q8KBlockMath, RowsMatchTheQ8KReferenceBitForBitQ4K) { check_rows<DType::kQ4_K>(); }
TEST(Q8KBlockMath, RowsMatchTheQ8KReferenceBitForBitQ5K) { check_rows<DType::kQ5_K>(); }
TEST(Q8KBlockMath, RowsMatchTheQ8KReferenceBitForBitQ6K) { check_rows<DType::kQ6_K>(); }

}  // namespace
}  // namespace llmos::kernels::cuda
