// llmos quantize, the library side: the per-tensor type rules of the llama.cpp file types
// (plan_quantization on synthetic tensor lists), then whole files written by quantize_model and
// read back: types, metadata, order, per-type error bounds against the source, byte-exactness
// of the streamed chunks, errors, and that a quantized model still loads and generates.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "engine/generator.h"
#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "model/llama_model.h"
#include "model/random_model.h"
#include "quant/quant.h"
#include "quant/quant_mix.h"
#include "quant/quantize_model.h"
#include "support/mini_json.h"
#include "support/test_paths.h"

namespace llmos {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Synthetic tensor lists for the rules.

// A llama-style model in file order: token_embd, per layer (norm, q, k, v, o, norm, gate, up,
// down), output_norm, output (unless tied).
std::vector<QuantTensorIn> llama_tensors(int layers, int64_t dim, int64_t ffn, bool tied = false,
                                         int64_t vocab = 512) {
  std::vector<QuantTensorIn> t;
  t.push_back({"token_embd.weight", {vocab, dim}, DType::kF32});
  for (int l = 0; l < layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    t.push_back({p + "attn_norm.weight", {dim}, DType::kF32});
    t.push_back({p + "attn_q.weight", {dim, dim}, DType::kF32});
    t.push_back({p + "attn_k.weight", {dim / 2, dim}, DType::kF32});
    t.push_back({p + "attn_v.weight", {dim / 2, dim}, DType::kF32});
    t.push_back({p + "attn_output.weight", {dim, dim}, DType::kF32});
    t.push_back({p + "ffn_norm.weight", {dim}, DType::kF32});
    t.push_back({p + "ffn_gate.weight", {ffn, dim}, DType::kF32});
    t.push_back({p + "ffn_up.weight", {ffn, dim}, DType::kF32});
    t.push_back({p + "ffn_down.weight", {dim, ffn}, DType::kF32});
  }
  t.push_back({"output_norm.weight", {dim}, DType::kF32});
  if (!tied) t.push_back({"output.weight", {vocab, dim}, DType::kF32});
  return t;
}

QuantModelInfo llama_info(int layers) {
  QuantModelInfo m;
  m.architecture = "llama";
  m.num_layers = layers;
  m.num_heads = 8;
  m.num_kv_heads = 4;
  return m;
}

const QuantFileType& ftype(const char* name) {
  const QuantFileType* f = find_quant_file_type(name);
  EXPECT_NE(f, nullptr) << name;
  if (f == nullptr) throw std::runtime_error(std::string("no file type ") + name);
  return *f;
}

std::map<std::string, DType> plan_by_name(const std::vector<QuantTensorIn>& tensors,
                                          const QuantModelInfo& info, const char* type,
                                          bool pure = false) {
  const auto plans = plan_quantization(tensors, info, ftype(type), pure);
  std::map<std::string, DType> out;
  for (size_t i = 0; i < tensors.size(); ++i) out[tensors[i].name] = plans[i].type;
  return out;
}

std::string layer_name(int l, const char* what) {
  return "blk." + std::to_string(l) + "." + what + ".weight";
}

// The expected type of every tensor of llama_tensors() for a _M mix: `more` lists the layers
// whose attn_v and ffn_down get q6_K.
void expect_m_mix(const std::map<std::string, DType>& got, int layers, DType base,
                  const std::set<int>& more) {
  EXPECT_EQ(got.at("token_embd.weight"), base);
  EXPECT_EQ(got.at("output.weight"), DType::kQ6_K);
  EXPECT_EQ(got.at("output_norm.weight"), DType::kF32);
  for (int l = 0; l < layers; ++l) {
    const DType special = more.count(l) ? DType::kQ6_K : base;
    EXPECT_EQ(got.at(layer_name(l, "attn_v")), special) << "layer " << l;
    EXPECT_EQ(got.at(layer_name(l, "ffn_down")), special) << "layer " << l;
    for (const char* plain : {"attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"}) {
      EXPECT_EQ(got.at(layer_name(l, plain)), base) << plain << " layer " << l;
    }
    EXPECT_EQ(got.at(layer_name(l, "attn_norm")), DType::kF32);
    EXPECT_EQ(got.at(layer_name(l, "ffn_norm")), DType::kF32);
  }
}

TEST(QuantFileTypes, NamesAliasesAndLlamaCppFtypeNumbers) {
  // LLAMA_FTYPE values from llama.cpp's llama.h; general.file_type carries them.
  const std::map<std::string, uint32_t> expected = {
      {"F32", 0},     {"F16", 1},     {"Q4_0", 2},    {"Q4_1", 3},    {"Q8_0", 7},
      {"Q5_0", 8},    {"Q5_1", 9},    {"Q4_K_S", 14}, {"Q4_K_M", 15}, {"Q5_K_S", 16},
      {"Q5_K_M", 17}, {"Q6_K", 18},   {"BF16", 32}};
  for (const auto& [name, number] : expected) {
    const QuantFileType* f = find_quant_file_type(name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_EQ(f->ftype, number) << name;
    EXPECT_EQ(find_quant_file_type(std::to_string(number)), f) << name;
  }
  EXPECT_EQ(quant_file_types().size(), expected.size());
  EXPECT_EQ(find_quant_file_type("q4_k_m"), find_quant_file_type("Q4_K_M"));
  EXPECT_EQ(find_quant_file_type("Q4_K")->ftype, 15u);  // llama-quantize alias
  EXPECT_EQ(find_quant_file_type("q5_k")->ftype, 17u);
  EXPECT_EQ(find_quant_file_type("Q4_K_M")->base, DType::kQ4_K);
  EXPECT_EQ(find_quant_file_type("Q5_K_M")->base, DType::kQ5_K);
  EXPECT_EQ(find_quant_file_type("BF16")->base, DType::kBF16);
  for (const char* bad : {"", "Q3_K_M", "IQ2_XXS", "Q4_K_X", "15x", "99", "-1", "q4"}) {
    EXPECT_EQ(find_quant_file_type(bad), nullptr) << bad;
  }
  EXPECT_NE(quant_file_type_list().find("Q4_K_M"), std::string::npos);
}

TEST(QuantMix, UseMoreBitsLayers) {
  auto layers = [](int n) {
    std::set<int> s;
    for (int i = 0; i < n; ++i) {
      if (quant_use_more_bits(i, n)) s.insert(i);
    }
    return s;
  };
  EXPECT_EQ(layers(8), (std::set<int>{0, 3, 6, 7}));
  EXPECT_EQ(layers(12), (std::set<int>{0, 3, 6, 9, 10, 11}));
  EXPECT_EQ(layers(32), (std::set<int>{0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31}));
  EXPECT_EQ(layers(2), (std::set<int>{1}));  // 2/8 = 0: only the last-eighth rule fires
}

TEST(QuantMix, Q4KMFollowsTheLlamaCppRules) {
  const auto got = plan_by_name(llama_tensors(8, 256, 512), llama_info(8), "Q4_K_M");
  expect_m_mix(got, 8, DType::kQ4_K, {0, 3, 6, 7});
}

TEST(QuantMix, Q5KMFollowsTheLlamaCppRules) {
  const auto got = plan_by_name(llama_tensors(12, 256, 512), llama_info(12), "Q5_K_M");
  expect_m_mix(got, 12, DType::kQ5_K, {0, 3, 6, 9, 10, 11});
}

TEST(QuantMix, Q4KSGivesTheFirstLayersQ5K) {
  const auto got = plan_by_name(llama_tensors(16, 256, 512), llama_info(16), "Q4_K_S");
  EXPECT_EQ(got.at("output.weight"), DType::kQ6_K);
  for (int l = 0; l < 16; ++l) {
    EXPECT_EQ(got.at(layer_name(l, "attn_v")), l < 4 ? DType::kQ5_K : DType::kQ4_K) << l;
    EXPECT_EQ(got.at(layer_name(l, "ffn_down")), l < 2 ? DType::kQ5_K : DType::kQ4_K) << l;
    EXPECT_EQ(got.at(layer_name(l, "attn_q")), DType::kQ4_K);
  }
}

TEST(QuantMix, TiedEmbeddingsTakeTheOutputRule) {
  const auto tied = llama_tensors(4, 256, 512, /*tied=*/true);
  EXPECT_EQ(plan_by_name(tied, llama_info(4), "Q4_K_M").at("token_embd.weight"), DType::kQ6_K);
  EXPECT_EQ(plan_by_name(tied, llama_info(4), "Q4_0").at("token_embd.weight"), DType::kQ6_K);
  EXPECT_EQ(plan_by_name(tied, llama_info(4), "Q8_0").at("token_embd.weight"), DType::kQ8_0);
  // With a separate output matrix the embeddings follow the base type.
  EXPECT_EQ(plan_by_name(llama_tensors(4, 256, 512), llama_info(4), "Q4_0").at("token_embd.weight"),
            DType::kQ4_0);
}

TEST(QuantMix, LegacyAndFloatFileTypes) {
  const auto tensors = llama_tensors(4, 256, 512);
  const auto q4_0 = plan_by_name(tensors, llama_info(4), "Q4_0");
  EXPECT_EQ(q4_0.at("output.weight"), DType::kQ6_K);
  EXPECT_EQ(q4_0.at(layer_name(0, "attn_v")), DType::kQ4_0);
  EXPECT_EQ(q4_0.at(layer_name(0, "ffn_down")), DType::kQ4_0);
  const auto q8_0 = plan_by_name(tensors, llama_info(4), "Q8_0");
  EXPECT_EQ(q8_0.at("output.weight"), DType::kQ8_0);
  const auto q6_k = plan_by_name(tensors, llama_info(4), "Q6_K");
  for (const auto& [name, type] : q6_k) {
    EXPECT_EQ(type, name.find("norm") != std::string::npos ? DType::kF32 : DType::kQ6_K) << name;
  }
  for (const char* f : {"F16", "BF16", "F32"}) {
    const DType base = ftype(f).base;
    for (const auto& [name, type] : plan_by_name(tensors, llama_info(4), f)) {
      EXPECT_EQ(type, name.find("norm") != std::string::npos ? DType::kF32 : base) << f << " " << name;
    }
  }
}

TEST(QuantMix, RowLengthFallbacks) {
  // ffn 352 = 11 x 32: the K types do not fit ffn_down's rows, the 32-element types do.
  auto got = plan_by_name(llama_tensors(8, 256, 352), llama_info(8), "Q4_K_M");
  for (int l = 0; l < 8; ++l) {
    const bool more = l == 0 || l == 3 || l == 6 || l == 7;
    EXPECT_EQ(got.at(layer_name(l, "ffn_down")), more ? DType::kQ8_0 : DType::kQ5_0) << l;
    EXPECT_EQ(got.at(layer_name(l, "ffn_up")), DType::kQ4_K) << l;  // rows of 256
  }
  got = plan_by_name(llama_tensors(8, 256, 352), llama_info(8), "Q5_K_S");
  EXPECT_EQ(got.at(layer_name(1, "ffn_down")), DType::kQ5_1);
  // ffn 336 is not even a multiple of 32: f16.
  got = plan_by_name(llama_tensors(8, 256, 336), llama_info(8), "Q4_K_M");
  EXPECT_EQ(got.at(layer_name(0, "ffn_down")), DType::kF16);
  EXPECT_EQ(got.at(layer_name(1, "ffn_down")), DType::kF16);
  // An output matrix whose rows do not fit the base type goes to q8_0.
  got = plan_by_name(llama_tensors(2, 96, 256), llama_info(2), "Q4_K_M");
  EXPECT_EQ(got.at("output.weight"), DType::kQ8_0);
  EXPECT_EQ(got.at(layer_name(0, "attn_q")), DType::kQ5_0);
  // The 32-element types have no fallback: llama.cpp refuses, and so does llmos.
  try {
    plan_quantization(llama_tensors(2, 256, 336), llama_info(2), ftype("Q8_0"), false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnsupported);
    EXPECT_NE(e.message().find("blk.0.ffn_down.weight"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("336"), std::string::npos) << e.message();
  }
  // The plan says which tensors fell back.
  const auto tensors = llama_tensors(2, 256, 352);
  const auto plans = plan_quantization(tensors, llama_info(2), ftype("Q4_K_M"), false);
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(plans[i].fell_back, tensors[i].name.find("ffn_down") != std::string::npos) << tensors[i].name;
  }
}

TEST(QuantMix, PureSkipsTheMixtureButNotTheFallback) {
  auto got = plan_by_name(llama_tensors(8, 256, 352), llama_info(8), "Q4_K_M", /*pure=*/true);
  EXPECT_EQ(got.at("output.weight"), DType::kQ4_K);
  EXPECT_EQ(got.at(layer_name(0, "attn_v")), DType::kQ4_K);
  EXPECT_EQ(got.at(layer_name(0, "ffn_down")), DType::kQ5_0);
  EXPECT_EQ(got.at(layer_name(0, "attn_norm")), DType::kF32);
}

TEST(QuantMix, ExpertAndLlama70BSpecialCases) {
  QuantModelInfo moe = llama_info(4);
  moe.num_experts = 8;
  auto got = plan_by_name(llama_tensors(4, 256, 512), moe, "Q4_K_M");
  EXPECT_EQ(got.at(layer_name(1, "attn_v")), DType::kQ8_0);
  EXPECT_EQ(got.at(layer_name(1, "attn_k")), DType::kQ8_0);
  EXPECT_EQ(got.at(layer_name(1, "attn_output")), DType::kQ5_K);
  EXPECT_EQ(got.at(layer_name(1, "attn_q")), DType::kQ4_K);
  // Llama 2 70B (80 layers, grouped-query attention): attn_v q4_K -> q5_K.
  std::vector<QuantTensorIn> v;
  for (int l = 0; l < 80; ++l) v.push_back({layer_name(l, "attn_v"), {256, 256}, DType::kF16});
  got = plan_by_name(v, llama_info(80), "Q4_K_M");
  EXPECT_EQ(got.at(layer_name(10, "attn_v")), DType::kQ5_K);  // not a more-bits layer
  EXPECT_EQ(got.at(layer_name(0, "attn_v")), DType::kQ6_K);
  QuantModelInfo mha = llama_info(80);
  mha.num_kv_heads = mha.num_heads;  // 65B-style: no GQA, no bump
  EXPECT_EQ(plan_by_name(v, mha, "Q4_K_M").at(layer_name(10, "attn_v")), DType::kQ4_K);
}

TEST(QuantMix, FileOrderDoesNotChangeThePlan) {
  const auto tensors = llama_tensors(8, 256, 512);
  std::vector<QuantTensorIn> reversed(tensors.rbegin(), tensors.rend());
  EXPECT_EQ(plan_by_name(tensors, llama_info(8), "Q5_K_M"), plan_by_name(reversed, llama_info(8), "Q5_K_M"));
}

TEST(QuantMix, OnlyWeightMatricesAreQuantized) {
  const std::vector<QuantTensorIn> t = {
      {"a.weight", {1, 256}, DType::kF32},             // one dimension above 1: a vector
      {"b.weight", {4, 1, 256}, DType::kF32},          // a matrix with a unit dimension
      {"blk.0.attn_q.bias", {2, 256}, DType::kF32},    // not a weight
      {"blk.0.attn_norm.weight", {2, 256}, DType::kF16},
      {"blk.0.ffn_gate_inp.weight", {8, 256}, DType::kF32},  // MoE router
      {"rope_freqs.weight", {16}, DType::kF32},
  };
  const auto plans = plan_quantization(t, llama_info(1), ftype("Q8_0"), false);
  const std::vector<DType> want = {DType::kF32, DType::kQ8_0, DType::kF32, DType::kF16, DType::kF32, DType::kF32};
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(plans[i].type, want[i]) << t[i].name;
    EXPECT_EQ(plans[i].quantizable, want[i] == DType::kQ8_0) << t[i].name;
  }
  // Integer data cannot be converted.
  const std::vector<QuantTensorIn> ints = {{"x.weight", {4, 64}, DType::kI32}};
  try {
    plan_quantization(ints, llama_info(1), ftype("Q8_0"), false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnsupported);
    EXPECT_NE(e.message().find("x.weight"), std::string::npos) << e.message();
  }
}

// ---------------------------------------------------------------------------------------------
// Whole files.

std::string temp_path(const std::string& name) { return test::temp_dir() + "/" + name; }

RandomModelSpec spec_256(int layers, int64_t ffn, uint64_t seed = 11) {
  RandomModelSpec s;
  s.dim = 256;
  s.num_layers = layers;
  s.num_heads = 8;
  s.num_kv_heads = 4;
  s.ffn_dim = ffn;
  s.seed = seed;
  return s;
}

std::vector<float> dequantized(const gguf::File& f, const gguf::TensorInfo& t) {
  const int64_t cols = t.shape.back();
  const int64_t rows = static_cast<int64_t>(t.nbytes) / dtype_row_bytes(t.dtype, cols);
  std::vector<float> out(static_cast<size_t>(rows * cols));
  const uint8_t* p = f.tensor_data(t);
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(t.dtype, p + r * dtype_row_bytes(t.dtype, cols), out.data() + r * cols, cols);
  }
  return out;
}

double relative_rms(const std::vector<float>& x, const std::vector<float>& y) {
  double err = 0.0;
  double ref = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(y[i]) - x[i];
    err += d * d;
    ref += static_cast<double>(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

// Relative RMS error bounds per type, from tests/quant/quant_round_trip_test.cc (measured on
// N(0, 1) data; the random models' matrices are Gaussian too).
double error_bound(DType t) {
  switch (t) {
    case DType::kQ8_0: return 0.0059;
    case DType::kQ6_K: return 0.0195;
    case DType::kQ5_0: return 0.047;
    case DType::kQ5_1: return 0.042;
    case DType::kQ5_K: return 0.040;
    case DType::kQ4_0: return 0.095;
    case DType::kQ4_1: return 0.086;
    case DType::kQ4_K: return 0.079;
    case DType::kF16: return 0.00023;
    case DType::kBF16: return 0.0019;
    default: return 0.0;  // f32: exact
  }
}

// Checks the output against the source: same metadata (plus the two keys quantize sets), same
// tensor names, order and shapes, and every tensor within its type's error bound (or
// `extra_error` above it, for requantized sources). Returns name -> output type.
std::map<std::string, DType> check_output(const std::string& in, const std::string& out,
                                          uint32_t want_ftype, double extra_error = 0.0) {
  const gguf::File src = gguf::File::open(in);
  const gguf::File dst = gguf::File::open(out);
  EXPECT_EQ(dst.get_int("general.file_type"), want_ftype);
  EXPECT_EQ(dst.get_int("general.quantization_version"), 2);
  size_t carried = 0;
  for (const auto& [key, value] : src.metadata()) {
    if (key == "general.file_type" || key == "general.quantization_version") continue;
    const gguf::Value* v = dst.find(key);
    EXPECT_TRUE(v != nullptr && *v == value) << key;
    ++carried;
  }
  EXPECT_GT(carried, 10u);
  EXPECT_EQ(dst.metadata().size(), carried + 2);
  std::map<std::string, DType> types;
  EXPECT_EQ(src.tensors().size(), dst.tensors().size());
  for (size_t i = 0; i < std::min(src.tensors().size(), dst.tensors().size()); ++i) {
    const auto& a = src.tensors()[i];
    const auto& b = dst.tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.shape, b.shape) << a.name;
    types[b.name] = b.dtype;
    const std::vector<float> x = dequantized(src, a);
    const std::vector<float> y = dequantized(dst, b);
    if (b.dtype == a.dtype) {
      EXPECT_EQ(0, std::memcmp(src.tensor_data(a), dst.tensor_data(b), a.nbytes)) << a.name;
      continue;
    }
    const double err = relative_rms(x, y);
    EXPECT_LT(err, error_bound(b.dtype) + extra_error) << a.name << " as " << dtype_name(b.dtype);
    if (dtype_is_quantized(b.dtype)) {
      EXPECT_GT(err, 0.0) << a.name;
    }
  }
  return types;
}

TEST(QuantizeModel, Q4KMFileFollowsTheRulesKeepsMetadataAndStaysClose) {
  const std::string in = temp_path("q4km-src.gguf");
  const std::string out = temp_path("q4km.gguf");
  write_random_model(spec_256(8, 512), in);
  QuantizeOptions options;
  options.file_type = "Q4_K_M";
  options.num_threads = 2;
  std::vector<std::string> warnings;
  options.on_warning = [&](const std::string& w) { warnings.push_back(w); };
  const QuantizeResult r = quantize_model(in, out, options);
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(r.file_type->ftype, 15u);
  EXPECT_EQ(r.output_bytes, fs::file_size(out));
  EXPECT_EQ(r.input_bytes, fs::file_size(in));
  EXPECT_LT(r.output_bytes * 4, r.input_bytes);
  EXPECT_EQ(r.requantized, 0u);
  EXPECT_EQ(r.fallbacks, 0u);
  EXPECT_EQ(r.converted, 2u + 8u * 7u);
  const auto types = check_output(in, out, 15);
  expect_m_mix(types, 8, DType::kQ4_K, {0, 3, 6, 7});
}

TEST(QuantizeModel, Q5KMWithRowsThatNeedTheFallback) {
  const std::string in = temp_path("q5km-src.gguf");
  const std::string out = temp_path("q5km.gguf");
  write_random_model(spec_256(8, 352), in);
  QuantizeOptions options;
  options.file_type = "q5_k_m";
  std::vector<std::string> warnings;
  options.on_warning = [&](const std::string& w) { warnings.push_back(w); };
  const QuantizeResult r = quantize_model(in, out, options);
  EXPECT_EQ(r.fallbacks, 8u);
  ASSERT_EQ(warnings.size(), 8u);
  EXPECT_NE(warnings[0].find("blk.0.ffn_down.weight"), std::string::npos) << warnings[0];
  const auto types = check_output(in, out, 17);
  for (int l = 0; l < 8; ++l) {
    const bool more = l == 0 || l == 3 || l == 6 || l == 7;
    EXPECT_EQ(types.at(layer_name(l, "ffn_down")), more ? DType::kQ8_0 : DType::kQ5_1) << l;
    EXPECT_EQ(types.at(layer_name(l, "attn_v")), more ? DType::kQ6_K : DType::kQ5_K) << l;
    EXPECT_EQ(types.at(layer_name(l, "ffn_gate")), DType::kQ5_K) << l;
  }
}

TEST(QuantizeModel, EveryFileTypeReadsBackWithinBounds) {
  const std::string in = temp_path("all-src.gguf");
  write_random_model(spec_256(2, 512, 5), in);
  for (const auto& ft : quant_file_types()) {
    const std::string out = temp_path("all-" + std::string(ft.name) + ".gguf");
    QuantizeOptions options;
    options.file_type = std::string(ft.name);
    quantize_model(in, out, options);
    const auto types = check_output(in, out, ft.ftype);
    EXPECT_EQ(types.at("blk.0.attn_q.weight"), ft.base) << ft.name;
    fs::remove(out);
  }
}

std::vector<float> prompt_logits(const std::string& path, const std::vector<int32_t>& tokens) {
  std::shared_ptr<Backend> backend = create_backend({Device::cpu(), 2});
  auto model = LlamaModel::load(path, backend);
  KvCache cache(model->kv_cache_spec(1, 16, DType::kF32), *backend);
  Batch batch;
  batch.add_sequence(tokens, 0, std::vector<int32_t>{0}, 16, Batch::Logits::kAll);
  Tensor logits = Tensor::empty({static_cast<int64_t>(tokens.size()), model->config().vocab_size}, DType::kF32);
  model->forward(batch, cache, logits);
  return std::vector<float>(logits.data_as<float>(), logits.data_as<float>() + logits.numel());
}

TEST(QuantizeModel, QuantizedModelsLoadAndLogitsStayClose) {
  const std::string in = temp_path("logits-src.gguf");
  write_random_model(spec_256(4, 512, 21), in);
  const std::vector<int32_t> tokens{1, 300, 301, 302, 303, 304, 305};
  const std::vector<float> ref = prompt_logits(in, tokens);
  // Relative RMS of the logits: f16 within 1e-2 (the brief), and every type well below 1.
  // Random weights amplify errors; measured: f16 6e-4, bf16 5e-3, q8_0 0.015, q5_K_M 0.096,
  // q4_K_M 0.18, q4_0 0.22.
  const std::map<std::string, double> bounds = {{"F16", 1e-2}, {"BF16", 1e-2}, {"Q8_0", 3e-2},
                                                {"Q5_K_M", 0.15}, {"Q4_K_M", 0.3}, {"Q4_0", 0.35}};
  std::map<std::string, double> errors;
  for (const auto& [type, bound] : bounds) {
    const std::string out = temp_path("logits-" + type + ".gguf");
    QuantizeOptions options;
    options.file_type = type;
    quantize_model(in, out, options);
    const std::vector<float> got = prompt_logits(out, tokens);
    ASSERT_EQ(got.size(), ref.size());
    const double err = relative_rms(ref, got);
    EXPECT_LT(err, bound) << type;
    EXPECT_GT(err, 0.0) << type;
    std::printf("logits relative RMS error, %s: %.3g\n", type.c_str(), err);
    errors[type] = err;
  }
  // More bits, closer logits.
  EXPECT_LT(errors["F16"], errors["Q8_0"]);
  EXPECT_LT(errors["Q8_0"], errors["Q5_K_M"]);
  EXPECT_LT(errors["Q5_K_M"], errors["Q4_K_M"]);
}

TEST(QuantizeModel, GreedyGenerationRunsOnTheQuantizedModel) {
  const std::string in = temp_path("gen-src.gguf");
  const std::string out = temp_path("gen-q4km.gguf");
  write_random_model(spec_256(8, 512, 3), in);
  QuantizeOptions options;
  options.file_type = "Q4_K_M";
  quantize_model(in, out, options);
  std::shared_ptr<Backend> backend = create_backend({Device::cpu(), 2});
  auto model = LlamaModel::load(out, backend);
  GenerateOptions gen;
  gen.max_tokens = 12;
  gen.sampling.temperature = 0.0f;
  gen.stop_at_eos = false;
  Generator generator(*model, gen);
  const GenerateResult r = generator.generate("the big dog");
  ASSERT_EQ(r.tokens.size(), 12u);
  for (int32_t t : r.tokens) {
    EXPECT_GE(t, 0);
    EXPECT_LT(t, model->config().vocab_size);
  }
  // Greedy decoding is deterministic: a second run gives the same tokens.
  Generator again(*model, gen);
  EXPECT_EQ(again.generate("the big dog").tokens, r.tokens);
}

TEST(QuantizeModel, RequantizingWarnsAndSameTypeCopiesBytes) {
  RandomModelSpec spec = spec_256(2, 512, 8);
  spec.matrix_dtype = DType::kQ8_0;
  spec.output_dtype = DType::kQ8_0;
  const std::string in = temp_path("requant-src.gguf");
  write_random_model(spec, in);
  // Q8_0 -> Q8_0: the q8_0 matrices are copied byte for byte, only token_embd (f32) converts.
  {
    const std::string out = temp_path("requant-q8.gguf");
    QuantizeOptions options;
    options.file_type = "Q8_0";
    std::vector<std::string> warnings;
    options.on_warning = [&](const std::string& w) { warnings.push_back(w); };
    const QuantizeResult r = quantize_model(in, out, options);
    EXPECT_TRUE(warnings.empty());
    EXPECT_EQ(r.converted, 1u);
    check_output(in, out, 7);
  }
  // Q8_0 -> F16 only dequantizes: no warnings, and f16 holds q8_0 values almost exactly.
  {
    const std::string out = temp_path("requant-f16.gguf");
    QuantizeOptions options;
    options.file_type = "F16";
    std::vector<std::string> warnings;
    options.on_warning = [&](const std::string& w) { warnings.push_back(w); };
    const QuantizeResult r = quantize_model(in, out, options);
    EXPECT_TRUE(warnings.empty()) << warnings.front();
    EXPECT_EQ(r.requantized, 0u);
    EXPECT_EQ(r.converted, 2u * 7u + 2u);
    check_output(in, out, 1);
  }
  // Q8_0 -> Q4_K_M: one warning per requantized tensor; errors measured against the q8_0 values.
  const std::string out = temp_path("requant-q4km.gguf");
  QuantizeOptions options;
  options.file_type = "Q4_K_M";
  std::vector<std::string> warnings;
  options.on_warning = [&](const std::string& w) { warnings.push_back(w); };
  const QuantizeResult r = quantize_model(in, out, options);
  EXPECT_EQ(r.requantized, 2u * 7u + 1u);  // the matrices and output.weight
  EXPECT_EQ(warnings.size(), r.requantized);
  ASSERT_FALSE(warnings.empty());
  EXPECT_NE(warnings[0].find("requantizing q8_0 -> "), std::string::npos) << warnings[0];
  check_output(in, out, 15);
}

TEST(QuantizeModel, HalfPrecisionSourcesConvert) {
  RandomModelSpec spec = spec_256(2, 512, 9);
  spec.matrix_dtype = DType::kBF16;
  spec.embedding_dtype = DType::kF16;
  const std::string in = temp_path("half-src.gguf");
  write_random_model(spec, in);
  for (const char* type : {"F16", "Q6_K"}) {
    const std::string out = temp_path(std::string("half-") + type + ".gguf");
    QuantizeOptions options;
    options.file_type = type;
    quantize_model(in, out, options);
    check_output(in, out, find_quant_file_type(type)->ftype);
  }
}

TEST(QuantizeModel, OutputDoesNotDependOnTheThreadCount) {
  const std::string in = temp_path("threads-src.gguf");
  write_random_model(spec_256(2, 512, 13), in);
  std::vector<std::string> bytes;
  for (int threads : {1, 3}) {
    const std::string out = temp_path("threads-" + std::to_string(threads) + ".gguf");
    QuantizeOptions options;
    options.file_type = "Q4_K_M";
    options.num_threads = threads;
    quantize_model(in, out, options);
    bytes.push_back(test::read_file(out));
  }
  EXPECT_FALSE(bytes[0].empty());
  EXPECT_TRUE(bytes[0] == bytes[1]);
}

// A tensor of more than one chunk (the converter works in chunks of 2^20 elements): each row
// must be exactly what quantize_row gives for it.
TEST(QuantizeModel, LargeTensorsAreConvertedChunkByChunkExactly) {
  const int64_t rows = 4100;
  const int64_t cols = 256;
  Tensor big = Tensor::empty({rows, cols}, DType::kF32);
  float* p = big.data_as<float>();
  for (int64_t i = 0; i < rows * cols; ++i) p[i] = static_cast<float>(std::sin(0.001 * static_cast<double>(i)) * (1 + i % 7));
  gguf::Writer w;
  w.set("general.architecture", gguf::Value(std::string("llama")));
  w.add_tensor("blk.0.ffn_up.weight", big);
  const std::string in = temp_path("big-src.gguf");
  const std::string out = temp_path("big-q8.gguf");
  w.write_file(in);
  QuantizeOptions options;
  options.file_type = "Q8_0";
  options.num_threads = 2;
  std::vector<uint64_t> row_events;
  options.on_progress = [&](const QuantizeProgress& pr) {
    if (pr.stage == QuantizeProgress::Stage::kRows) row_events.push_back(pr.tensor_done);
  };
  quantize_model(in, out, options);
  EXPECT_EQ(row_events.size(), 2u);  // 4096 rows, then 4
  const gguf::File f = gguf::File::open(out);
  const auto& t = f.tensors().at(0);
  ASSERT_EQ(t.dtype, DType::kQ8_0);
  const int64_t row_bytes = dtype_row_bytes(DType::kQ8_0, cols);
  std::vector<uint8_t> expect(static_cast<size_t>(row_bytes));
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(DType::kQ8_0, p + r * cols, expect.data(), cols);
    ASSERT_EQ(0, std::memcmp(expect.data(), f.tensor_data(t) + r * row_bytes, static_cast<size_t>(row_bytes))) << "row " << r;
  }
}

TEST(QuantizeModel, ProgressCoversEveryTensorInOrder) {
  const std::string in = temp_path("progress-src.gguf");
  write_random_model(spec_256(2, 512), in);
  const gguf::File src = gguf::File::open(in);
  QuantizeOptions options;
  options.file_type = "Q8_0";
  std::vector<std::pair<size_t, QuantizeProgress::Stage>> events;
  uint64_t last_done = 0;
  uint64_t total = 0;
  bool monotonic = true;
  options.on_progress = [&](const QuantizeProgress& p) {
    events.emplace_back(p.index, p.stage);
    monotonic &= p.done >= last_done && p.tensor_done <= p.tensor_total;
    last_done = p.done;
    total = p.total;
    EXPECT_EQ(p.name, src.tensors()[p.index].name);
  };
  quantize_model(in, temp_path("progress.gguf"), options);
  EXPECT_TRUE(monotonic);
  EXPECT_EQ(last_done, total);
  uint64_t elements = 0;
  for (const auto& t : src.tensors()) {
    uint64_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    elements += n;
  }
  EXPECT_EQ(total, elements);
  size_t begins = 0;
  size_t ends = 0;
  for (const auto& [index, stage] : events) {
    if (stage == QuantizeProgress::Stage::kTensorBegin) {
      EXPECT_EQ(index, begins++);
    }
    if (stage == QuantizeProgress::Stage::kTensorEnd) {
      EXPECT_EQ(index, ends++);
    }
  }
  EXPECT_EQ(begins, src.tensors().size());
  EXPECT_EQ(ends, src.tensors().size());
}

StatusCode error_code(const std::function<void()>& fn, std::string* message = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (message != nullptr) *message = e.message();
    return e.code();
  }
  return StatusCode::kOk;
}

// Names in `dir` that look like leftovers of a write (the writer's temporaries).
std::vector<std::string> leftovers(const std::string& dir, const std::string& stem) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(stem, 0) == 0) out.push_back(name);
  }
  return out;
}

TEST(QuantizeModel, BadInputsAreClearErrorsAndLeaveNoFile) {
  const std::string dir = test::temp_dir() + "/errors";
  fs::create_directories(dir);
  const std::string in = dir + "/src.gguf";
  write_random_model(spec_256(2, 512), in);
  const std::string before = test::read_file(in);
  QuantizeOptions options;
  std::string message;

  options.file_type = "Q3_K_M";
  EXPECT_EQ(error_code([&] { quantize_model(in, dir + "/out.gguf", options); }, &message),
            StatusCode::kInvalidArgument);
  EXPECT_NE(message.find("Q3_K_M"), std::string::npos) << message;
  EXPECT_NE(message.find("Q4_K_M"), std::string::npos) << message;  // lists the valid types

  options.file_type = "Q8_0";
  EXPECT_EQ(error_code([&] { quantize_model(dir + "/missing.gguf", dir + "/out.gguf", options); }, &message),
            StatusCode::kIo);
  EXPECT_NE(message.find("missing.gguf"), std::string::npos) << message;

  // The input itself, by the same name, another spelling, or a hard link.
  fs::create_hard_link(in, dir + "/link.gguf");
  for (const std::string& same : {in, dir + "/./src.gguf", dir + "/link.gguf"}) {
    EXPECT_EQ(error_code([&] { quantize_model(in, same, options); }, &message), StatusCode::kInvalidArgument)
        << same;
    EXPECT_NE(message.find("is the input file"), std::string::npos) << message;
  }
  EXPECT_TRUE(test::read_file(in) == before);
  fs::remove(dir + "/link.gguf");

  // An output that cannot be created: a missing directory, a path through a regular file.
  for (const std::string& bad : {dir + "/no/such/dir/out.gguf", in + "/out.gguf"}) {
    EXPECT_EQ(error_code([&] { quantize_model(in, bad, options); }, &message), StatusCode::kIo) << bad;
    EXPECT_NE(message.find(bad), std::string::npos) << message;
  }

  // A row length no Q8_0 block fits: refused before anything is written.
  const std::string odd = dir + "/odd.gguf";
  write_random_model(spec_256(2, 336), odd);
  EXPECT_EQ(error_code([&] { quantize_model(odd, dir + "/out.gguf", options); }, &message),
            StatusCode::kUnsupported);
  EXPECT_NE(message.find("ffn_down"), std::string::npos) << message;

  // Non-finite weights fail mid-write: the error names the tensor and row, the partial output
  // is removed.
  Tensor bad = Tensor::zeros({4, 64}, DType::kF32);
  bad.data_as<float>()[2 * 64 + 5] = std::numeric_limits<float>::quiet_NaN();
  gguf::Writer w;
  w.add_tensor("good.weight", Tensor::zeros({4, 64}, DType::kF32));
  w.add_tensor("bad.weight", bad);
  w.write_file(dir + "/nan.gguf");
  EXPECT_EQ(error_code([&] { quantize_model(dir + "/nan.gguf", dir + "/out.gguf", options); }, &message),
            StatusCode::kInvalidArgument);
  EXPECT_NE(message.find("bad.weight' row 2"), std::string::npos) << message;

  EXPECT_TRUE(leftovers(dir, "out.gguf").empty());
}

}  // namespace
}  // namespace llmos
