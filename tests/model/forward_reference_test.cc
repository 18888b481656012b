// The forward pass (paged KV cache, flattened batches, chunked prefill) against a naive
// double-precision whole-sequence reference, on seeded random models that cover the
// architecture variants: GQA, qwen2 biases, tied output, mixed quantized weight dtypes, partial
// rotary dimensions, linear and llama3 rope scaling.
#include <gtest/gtest.h>

#include <cstdio>

#include <algorithm>
#include <numeric>
#include <random>

#include "backend/backend.h"
#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/llama_model.h"
#include "model/random_model.h"
#include "support/naive_llama.h"
#include "support/test_paths.h"

namespace llmos {
namespace {

struct Case {
  std::string label;
  RandomModelSpec spec;
};

// gtest prints a parameter in each test's CTest name; the label is enough.
void PrintTo(const Case& c, std::ostream* os) { *os << c.label; }

std::vector<Case> cases() {
  std::vector<Case> out;
  {
    RandomModelSpec s;
    s.seed = 11;
    out.push_back({"llama_f32_gqa", s});
  }
  {
    RandomModelSpec s;
    s.dim = 256;
    s.num_heads = 4;
    s.num_kv_heads = 1;
    s.ffn_dim = 512;
    s.matrix_dtype = DType::kQ4_K;
    s.embedding_dtype = DType::kQ8_0;
    s.output_dtype = DType::kQ6_K;
    s.seed = 12;
    out.push_back({"llama_mixed_quant", s});
  }
  {
    RandomModelSpec s;
    s.architecture = "qwen2";
    s.matrix_dtype = DType::kF16;
    s.embedding_dtype = DType::kBF16;
    s.tied_output = true;
    s.rope_freq_base = 1000000.0f;
    s.seed = 13;
    out.push_back({"qwen2_bias_tied_f16", s});
  }
  {
    RandomModelSpec s;
    s.dim = 64;
    s.num_heads = 4;
    s.num_kv_heads = 4;
    s.rope_dim = 8;  // rotate half of each 16-wide head
    s.rope_scaling = "llama3";
    s.rope_scaling_factor = 8.0f;
    s.rope_freq_base = 500000.0f;
    s.seed = 14;
    out.push_back({"llama3_scaling_partial_rope", s});
  }
  {
    RandomModelSpec s;
    s.rope_scaling = "linear";
    s.rope_scaling_factor = 4.0f;
    s.matrix_dtype = DType::kQ8_0;
    s.seed = 15;
    out.push_back({"llama_linear_scaling_q8", s});
  }
  {
    RandomModelSpec s;  // head_dim 16: 8 rotary pairs, each with its own factor
    s.rope_freq_factors = {1.0f, 1.5f, 2.0f, 3.0f, 5.0f, 8.0f, 8.0f, 8.0f};
    s.rope_scaling = "linear";
    s.rope_scaling_factor = 2.0f;
    s.seed = 16;
    out.push_back({"llama_rope_freqs_and_linear", s});
  }
  return out;
}

class ForwardReference : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    path_ = test::temp_dir() + "/" + GetParam().label + ".gguf";
    write_random_model(GetParam().spec, path_);
    // The scalar reference kernels (double accumulation): the tight oracle comparisons below.
    // The fast ISA kernels are compared with tolerances for their precision further down.
    backend_ = create_backend({Device::cpu(), 2, /*reference_kernels=*/true});
    model_ = LlamaModel::load(path_, backend_);
    naive_ = std::make_unique<test::NaiveLlama>(model_->file());
    std::mt19937 rng(GetParam().spec.seed);
    for (int i = 0; i < 23; ++i) {
      tokens_.push_back(static_cast<int32_t>(rng() % model_->config().vocab_size));
    }
    expected_ = naive_->logits(tokens_);
  }

  // max |a - b| over a row, relative to the row's largest expected magnitude.
  static double relative_error(const float* got, const Eigen::MatrixXd& expected, int64_t row) {
    double max_err = 0.0, max_ref = 1e-30;
    for (int64_t j = 0; j < expected.cols(); ++j) {
      max_err = std::max(max_err, std::abs(got[j] - expected(row, j)));
      max_ref = std::max(max_ref, std::abs(expected(row, j)));
    }
    return max_err / max_ref;
  }

  std::string path_;
  std::shared_ptr<Backend> backend_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<test::NaiveLlama> naive_;
  std::vector<int32_t> tokens_;
  Eigen::MatrixXd expected_;
};

TEST_P(ForwardReference, WholePrefillMatchesNaiveReference) {
  const int block_size = 4;
  KvCache cache(model_->kv_cache_spec(8, block_size, DType::kF32), *backend_);
  std::vector<int32_t> table(8);
  std::iota(table.begin(), table.end(), 0);
  Batch batch;
  batch.add_sequence(tokens_, 0, table, block_size, Batch::Logits::kAll);
  Tensor logits = Tensor::empty({static_cast<int64_t>(tokens_.size()), model_->config().vocab_size}, DType::kF32);
  model_->forward(batch, cache, logits);
  for (int64_t t = 0; t < static_cast<int64_t>(tokens_.size()); ++t) {
    EXPECT_LT(relative_error(static_cast<const float*>(logits.row(t)), expected_, t), 2e-5)
        << "position " << t;
  }
}

// Chunked prefill then single-token decodes, with blocks scattered over the cache.
TEST_P(ForwardReference, ChunkedPrefillAndDecodeMatch) {
  const int block_size = 3;
  KvCache cache(model_->kv_cache_spec(32, block_size, DType::kF32), *backend_);
  const std::vector<int32_t> table{17, 3, 29, 8, 0, 21, 12, 5, 30, 14};
  const int64_t vocab = model_->config().vocab_size;
  size_t done = 0;
  for (size_t chunk : {size_t{7}, size_t{1}, size_t{9}, size_t{1}, size_t{1}, size_t{1}, size_t{3}}) {
    Batch batch;
    batch.add_sequence(std::span<const int32_t>(tokens_.data() + done, chunk), static_cast<int32_t>(done),
                       table, block_size, Batch::Logits::kAll);
    Tensor logits = Tensor::empty({static_cast<int64_t>(chunk), vocab}, DType::kF32);
    model_->forward(batch, cache, logits);
    for (size_t j = 0; j < chunk; ++j) {
      EXPECT_LT(relative_error(static_cast<const float*>(logits.row(static_cast<int64_t>(j))), expected_,
                               static_cast<int64_t>(done + j)),
                2e-5)
          << "position " << done + j;
    }
    done += chunk;
  }
  ASSERT_EQ(done, tokens_.size());
}

// Two sequences in one flattened batch: a prefill chunk of one next to a decode of the other.
TEST_P(ForwardReference, MixedBatchOfTwoSequencesMatches) {
  const int block_size = 4;
  KvCache cache(model_->kv_cache_spec(16, block_size, DType::kF32), *backend_);
  const std::vector<int32_t> table_a{9, 2, 14, 6, 11, 0};
  const std::vector<int32_t> table_b{1, 15, 4, 13, 7, 3};
  std::vector<int32_t> b_tokens(tokens_.rbegin(), tokens_.rend());
  const Eigen::MatrixXd expected_b = naive_->logits(b_tokens);
  const int64_t vocab = model_->config().vocab_size;

  // Step 1: prefill 10 tokens of A and 4 of B.
  Batch step1;
  step1.add_sequence(std::span<const int32_t>(tokens_.data(), 10), 0, table_a, block_size, Batch::Logits::kLast);
  step1.add_sequence(std::span<const int32_t>(b_tokens.data(), 4), 0, table_b, block_size, Batch::Logits::kAll);
  Tensor l1 = Tensor::empty({5, vocab}, DType::kF32);
  model_->forward(step1, cache, l1);
  EXPECT_LT(relative_error(static_cast<const float*>(l1.row(0)), expected_, 9), 2e-5);
  for (int j = 0; j < 4; ++j) EXPECT_LT(relative_error(static_cast<const float*>(l1.row(1 + j)), expected_b, j), 2e-5);

  // Step 2: decode one token of A, prefill 9 more of B (order swapped in the batch).
  Batch step2;
  step2.add_sequence(std::span<const int32_t>(b_tokens.data() + 4, 9), 4, table_b, block_size, Batch::Logits::kAll);
  step2.add_sequence(std::span<const int32_t>(tokens_.data() + 10, 1), 10, table_a, block_size, Batch::Logits::kLast);
  Tensor l2 = Tensor::empty({10, vocab}, DType::kF32);
  model_->forward(step2, cache, l2);
  for (int j = 0; j < 9; ++j) EXPECT_LT(relative_error(static_cast<const float*>(l2.row(j)), expected_b, 4 + j), 2e-5);
  EXPECT_LT(relative_error(static_cast<const float*>(l2.row(9)), expected_, 10), 2e-5);
}

// A half-precision cache rounds K and V; logits stay close to the exact reference.
TEST_P(ForwardReference, HalfPrecisionKvCacheStaysClose) {
  for (DType kv : {DType::kF16, DType::kBF16}) {
    const int block_size = 16;
    KvCache cache(model_->kv_cache_spec(2, block_size, kv), *backend_);
    const std::vector<int32_t> table{1, 0};
    Batch batch;
    batch.add_sequence(tokens_, 0, table, block_size, Batch::Logits::kAll);
    Tensor logits = Tensor::empty({static_cast<int64_t>(tokens_.size()), model_->config().vocab_size}, DType::kF32);
    model_->forward(batch, cache, logits);
    const double tol = kv == DType::kF16 ? 5e-3 : 3e-2;
    for (int64_t t = 0; t < static_cast<int64_t>(tokens_.size()); ++t) {
      EXPECT_LT(relative_error(static_cast<const float*>(logits.row(t)), expected_, t), tol)
          << dtype_name(kv) << " position " << t;
    }
  }
}

// The fast kernels (the active ISA: AVX-512, AVX2 or their scalar twins) accumulate in float and
// quantize activations to int8 for integer dot products (q8_0 / q8_K blocks, as GGUF runtimes
// do), so they are held to a tolerance that fits that precision, per weight type.
TEST_P(ForwardReference, FastKernelsStayClose) {
  std::shared_ptr<Backend> fast = create_backend({Device::cpu(), 2});
  auto model = LlamaModel::load(path_, fast);
  const RandomModelSpec& spec = GetParam().spec;
  const bool int8_activations = dtype_is_quantized(spec.matrix_dtype) ||
                                dtype_is_quantized(spec.embedding_dtype) ||
                                dtype_is_quantized(spec.output_dtype);
  const bool bf16 = spec.matrix_dtype == DType::kBF16 || spec.embedding_dtype == DType::kBF16 ||
                    spec.output_dtype == DType::kBF16;
  const double tol = int8_activations ? 3e-2 : bf16 ? 5e-3 : 1e-5;
  const int block_size = 4;
  KvCache cache(model->kv_cache_spec(8, block_size, DType::kF32), *fast);
  std::vector<int32_t> table(8);
  std::iota(table.begin(), table.end(), 0);
  Batch batch;
  batch.add_sequence(tokens_, 0, table, block_size, Batch::Logits::kAll);
  Tensor logits = Tensor::empty({static_cast<int64_t>(tokens_.size()), model->config().vocab_size}, DType::kF32);
  model->forward(batch, cache, logits);
  double worst = 0.0;
  for (int64_t t = 0; t < static_cast<int64_t>(tokens_.size()); ++t) {
    const double err = relative_error(static_cast<const float*>(logits.row(t)), expected_, t);
    worst = std::max(worst, err);
    EXPECT_LT(err, tol) << "position " << t << " (" << fast->name() << ")";
  }
  RecordProperty("worst_relative_error", std::to_string(worst));
  std::printf("[ worst ] %s: %.3g (tolerance %.0e, %s)\n", GetParam().label.c_str(), worst, tol,
              fast->name().c_str());
}

INSTANTIATE_TEST_SUITE_P(Models, ForwardReference, ::testing::ValuesIn(cases()),
                         [](const auto& param_info) { return param_info.param.label; });

// GGUF allows general.alignment = 1: tensor bytes may then sit at odd addresses in the
// mapping. The model must give exactly the logits of the same weights laid out aligned (and
// never read a misaligned float, which UBSan would report).
TEST(ForwardLayout, UnalignedTensorDataGivesIdenticalLogits) {
  RandomModelSpec spec;
  spec.matrix_dtype = DType::kF16;
  const std::string aligned_path = test::temp_dir() + "/aligned.gguf";
  const std::string packed_path = test::temp_dir() + "/packed.gguf";
  write_random_model(spec, aligned_path);
  gguf::Writer packed = make_random_model(spec);
  packed.set_alignment(1);
  packed.write_file(packed_path);

  std::shared_ptr<Backend> backend = create_backend({Device::cpu(), 2});
  auto aligned = LlamaModel::load(aligned_path, backend);
  auto unaligned = LlamaModel::load(packed_path, backend);
  bool any_misaligned = false;
  for (const auto& info : unaligned->file().tensors()) {
    const auto address = reinterpret_cast<uintptr_t>(unaligned->file().tensor_data(info));
    any_misaligned |= address % static_cast<uintptr_t>(dtype_block_bytes(info.dtype)) != 0;
  }
  ASSERT_TRUE(any_misaligned) << "the packed file happens to be aligned; the test checks nothing";

  const std::vector<int32_t> tokens{1, 300, 301, 302, 303, 304};
  auto logits_of = [&](LlamaModel& model) {
    KvCache cache(model.kv_cache_spec(1, 16, DType::kF32), *backend);
    Batch batch;
    batch.add_sequence(tokens, 0, std::vector<int32_t>{0}, 16, Batch::Logits::kAll);
    Tensor logits = Tensor::empty({static_cast<int64_t>(tokens.size()), model.config().vocab_size}, DType::kF32);
    model.forward(batch, cache, logits);
    return std::vector<float>(logits.data_as<float>(), logits.data_as<float>() + logits.numel());
  };
  EXPECT_EQ(logits_of(*aligned), logits_of(*unaligned));
}

TEST(ForwardErrors, RejectsInconsistentBatchesAndLogits) {
  RandomModelSpec spec;
  const std::string path = test::temp_dir() + "/errors.gguf";
  write_random_model(spec, path);
  std::shared_ptr<Backend> backend = create_backend({Device::cpu(), 1});
  auto model = LlamaModel::load(path, backend);
  KvCache cache(model->kv_cache_spec(4, 4, DType::kF32), *backend);
  const std::vector<int32_t> table{0, 1};
  const int64_t vocab = model->config().vocab_size;

  Batch too_long;  // 9 tokens do not fit two blocks of 4
  EXPECT_THROW(too_long.add_sequence(std::vector<int32_t>(9, 5), 0, table, 4, Batch::Logits::kLast), Error);

  Batch bad_token;
  bad_token.add_sequence(std::vector<int32_t>{1, static_cast<int32_t>(vocab)}, 0, table, 4, Batch::Logits::kLast);
  Tensor logits = Tensor::empty({1, vocab}, DType::kF32);
  try {
    model->forward(bad_token, cache, logits);
    FAIL() << "out-of-vocabulary token accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.message().find("outside the vocabulary"), std::string::npos) << e.message();
  }

  Batch ok;
  ok.add_sequence(std::vector<int32_t>{1, 2, 3}, 0, table, 4, Batch::Logits::kAll);
  Tensor wrong_rows = Tensor::empty({1, vocab}, DType::kF32);
  EXPECT_THROW(model->forward(ok, cache, wrong_rows), Error);

  Batch bad_block;
  bad_block.add_sequence(std::vector<int32_t>{1}, 0, std::vector<int32_t>{7}, 4, Batch::Logits::kLast);
  EXPECT_THROW(model->forward(bad_block, cache, logits), Error);
}

}  // namespace
}  // namespace llmos
