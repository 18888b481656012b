// Vocab::from_gguf and Tokenizer::from_gguf on GGUF images built with gguf::Writer: defaults,
// and a kFormat / kUnsupported error naming the key for every inconsistency.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"

namespace llmos {
namespace {

using gguf::Array;
using gguf::Value;
using gguf::ValueType;

Array string_array(const std::vector<std::string>& items) {
  Array a{ValueType::kString, {}};
  for (const std::string& s : items) a.items.emplace_back(s);
  return a;
}

template <typename T>
Array scalar_array(ValueType type, const std::vector<T>& items) {
  Array a{type, {}};
  for (const T& v : items) a.items.emplace_back(v);
  return a;
}

// A valid 5-token "llama" tokenizer; tests then replace or remove keys.
struct Image {
  gguf::Writer writer;
  Image() {
    writer.set("tokenizer.ggml.model", Value("llama"));
    writer.set("tokenizer.ggml.tokens",
               Value(string_array({"<unk>", "<s>", "</s>", "\xE2\x96\x81" "a", "a"})));
    writer.set("tokenizer.ggml.scores",
               Value(scalar_array<float>(ValueType::kFloat32, {0, 0, 0, -1.5f, -2})));
    writer.set("tokenizer.ggml.token_type",
               Value(scalar_array<int32_t>(ValueType::kInt32, {2, 3, 3, 1, 1})));
    writer.set("tokenizer.ggml.bos_token_id", Value(uint32_t{1}));
    writer.set("tokenizer.ggml.eos_token_id", Value(uint32_t{2}));
    writer.set("tokenizer.ggml.unknown_token_id", Value(uint32_t{0}));
  }
  gguf::File file() const {
    auto bytes = std::make_shared<std::vector<uint8_t>>(writer.to_bytes());
    return gguf::File::parse(bytes, bytes->data(), bytes->size(), "vocab.gguf");
  }
};

// Runs f, expecting an Error with `code` whose message names `needle`.
template <typename F>
void expect_error(F&& f, StatusCode code, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

void expect_format_error(const Image& image, const std::string& key) {
  const gguf::File file = image.file();
  expect_error([&] { Vocab::from_gguf(file); }, StatusCode::kFormat, key);
}

TEST(VocabGguf, ReadsAllFields) {
  Image image;
  image.writer.set("tokenizer.ggml.padding_token_id", Value(uint32_t{0xFFFFFFFF}));
  const Vocab v = Vocab::from_gguf(image.file());
  EXPECT_EQ(v.model, "llama");
  ASSERT_EQ(v.size(), 5u);
  EXPECT_EQ(v.tokens[3], "\xE2\x96\x81" "a");
  EXPECT_FLOAT_EQ(v.scores[3], -1.5f);
  EXPECT_EQ(v.types[0], TokenType::kUnknown);
  EXPECT_EQ(v.types[1], TokenType::kControl);
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.eos, 2);
  EXPECT_EQ(v.unk, 0);
  EXPECT_EQ(v.pad, kNoToken);
  EXPECT_TRUE(v.add_bos);  // defaults for "llama"
  EXPECT_FALSE(v.add_eos);
  EXPECT_TRUE(v.add_space_prefix);

  const auto tok = Tokenizer::from_gguf(image.file());
  EXPECT_EQ(tok->encode("a", true), (std::vector<TokenId>{1, 3}));
  EXPECT_EQ(tok->decode({1, 3}), "a");
}

TEST(VocabGguf, DefaultsWhenOptionalKeysAreAbsent) {
  gguf::Writer w;
  w.set("tokenizer.ggml.model", Value("llama"));
  w.set("tokenizer.ggml.tokens", Value(string_array({"a", "", "b"})));
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  const Vocab v = Vocab::from_gguf(gguf::File::parse(bytes, bytes->data(), bytes->size(), "x"));
  EXPECT_EQ(v.scores, (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(v.types, std::vector<TokenType>(3, TokenType::kNormal));
  EXPECT_EQ(v.bos, kNoToken);
  EXPECT_EQ(v.eos, kNoToken);
  EXPECT_EQ(v.unk, kNoToken);
  EXPECT_EQ(v.tokens[1], "[EMPTY_1]");  // as llama.cpp names empty tokens
}

TEST(VocabGguf, FlagsOverrideDefaults) {
  Image image;
  image.writer.set("tokenizer.ggml.add_bos_token", Value(false));
  image.writer.set("tokenizer.ggml.add_eos_token", Value(true));
  image.writer.set("tokenizer.ggml.add_space_prefix", Value(false));
  const Vocab v = Vocab::from_gguf(image.file());
  EXPECT_FALSE(v.add_bos);
  EXPECT_TRUE(v.add_eos);
  EXPECT_FALSE(v.add_space_prefix);
  const auto tok = Tokenizer::from_gguf(image.file());
  EXPECT_EQ(tok->encode("a", true), (std::vector<TokenId>{4, 2}));
}

TEST(VocabGguf, UnknownTokenTypeNumbersBecomeUndefined) {
  Image image;
  image.writer.set("tokenizer.ggml.token_type",
                   Value(scalar_array<int32_t>(ValueType::kInt32, {2, 3, 3, 9, -1})));
  const Vocab v = Vocab::from_gguf(image.file());
  EXPECT_EQ(v.types[3], TokenType::kUndefined);
  EXPECT_EQ(v.types[4], TokenType::kUndefined);
}

TEST(VocabGguf, NonLlamaModelsDefaultFlagsOff) {
  Image image;
  image.writer.set("tokenizer.ggml.model", Value("gpt2"));
  const Vocab v = Vocab::from_gguf(image.file());
  EXPECT_FALSE(v.add_bos);
  EXPECT_FALSE(v.add_space_prefix);
}

TEST(VocabGguf, MissingOrBadModel) {
  gguf::Writer w;
  w.set("tokenizer.ggml.tokens", Value(string_array({"a"})));
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  const gguf::File file = gguf::File::parse(bytes, bytes->data(), bytes->size(), "x.gguf");
  expect_error([&] { Vocab::from_gguf(file); }, StatusCode::kFormat, "tokenizer.ggml.model");
  expect_error([&] { Tokenizer::from_gguf(file); }, StatusCode::kFormat,
               "tokenizer.ggml.model");

  Image image;
  image.writer.set("tokenizer.ggml.model", Value(uint32_t{1}));
  expect_format_error(image, "tokenizer.ggml.model");
  const gguf::File bad = image.file();
  expect_error([&] { Tokenizer::from_gguf(bad); }, StatusCode::kFormat, "tokenizer.ggml.model");
}

TEST(VocabGguf, UnsupportedModelIsNamed) {
  Image image;
  image.writer.set("tokenizer.ggml.model", Value("rwkv"));
  const gguf::File file = image.file();
  expect_error([&] { Tokenizer::from_gguf(file); }, StatusCode::kUnsupported,
               "vocab.gguf: tokenizer model 'rwkv' is not supported yet");
}

// A valid byte-level BPE ("gpt2") image: the llama Image with BPE tokens and merges.
Image gpt2_image(const char* pre, bool with_merges = true) {
  Image image;
  image.writer.set("tokenizer.ggml.model", Value("gpt2"));
  image.writer.set("tokenizer.ggml.tokens",
                   Value(string_array({"a", "b", "ab", "\xC4\xA0", "<|end|>"})));
  image.writer.set("tokenizer.ggml.token_type",
                   Value(scalar_array<int32_t>(ValueType::kInt32, {1, 1, 1, 1, 3})));
  if (with_merges) image.writer.set("tokenizer.ggml.merges", Value(string_array({"a b"})));
  image.writer.set("tokenizer.ggml.bos_token_id", Value(uint32_t{4}));
  image.writer.set("tokenizer.ggml.eos_token_id", Value(uint32_t{4}));
  image.writer.set("tokenizer.ggml.unknown_token_id", Value(uint32_t{0xFFFFFFFF}));
  if (pre != nullptr) image.writer.set("tokenizer.ggml.pre", Value(pre));
  return image;
}

TEST(VocabGguf, Gpt2ModelIsByteLevelBpe) {
  const Image image = gpt2_image("gpt-2");
  const Vocab v = Vocab::from_gguf(image.file());
  EXPECT_EQ(v.pre, "gpt-2");
  EXPECT_EQ(v.merges, (std::vector<std::string>{"a b"}));
  EXPECT_FALSE(v.add_bos);
  const auto tok = Tokenizer::from_gguf(image.file());
  EXPECT_EQ(tok->encode("ab a", true), (std::vector<TokenId>{2, 3, 0}));
  EXPECT_EQ(tok->decode({2, 3, 0}), "ab a");
}

TEST(VocabGguf, Gpt2PreDefaults) {
  // No tokenizer.ggml.pre: llama.cpp's "default" pre-tokenizer.
  EXPECT_EQ(Vocab::from_gguf(gpt2_image(nullptr).file()).pre, "");
  EXPECT_NO_THROW(Tokenizer::from_gguf(gpt2_image(nullptr).file()));
  // Llama-3 style pre-tokenizers add BOS unless the file says otherwise.
  EXPECT_TRUE(Vocab::from_gguf(gpt2_image("llama-bpe").file()).add_bos);
  Image no_bos = gpt2_image("llama-bpe");
  no_bos.writer.set("tokenizer.ggml.add_bos_token", Value(false));
  EXPECT_FALSE(Vocab::from_gguf(no_bos.file()).add_bos);
  const auto tok = Tokenizer::from_gguf(gpt2_image("llama-bpe").file());
  EXPECT_EQ(tok->encode("ab", true), (std::vector<TokenId>{4, 2}));
}

TEST(VocabGguf, Gpt2NeedsMergesAndAKnownPre) {
  const gguf::File f1 = gpt2_image("gpt-2", /*with_merges=*/false).file();
  expect_error([&] { Tokenizer::from_gguf(f1); }, StatusCode::kFormat,
               "vocab.gguf: missing required key 'tokenizer.ggml.merges'");

  const gguf::File f2 = gpt2_image("rwkv-world").file();
  expect_error([&] { Tokenizer::from_gguf(f2); }, StatusCode::kUnsupported,
               "vocab.gguf: pre-tokenizer 'rwkv-world' (tokenizer.ggml.pre) is not supported");

  Image bad_merges = gpt2_image("gpt-2");
  bad_merges.writer.set("tokenizer.ggml.merges",
                        Value(scalar_array<int32_t>(ValueType::kInt32, {1, 2})));
  expect_format_error(bad_merges, "tokenizer.ggml.merges");
  Image bad_pre = gpt2_image("gpt-2");
  bad_pre.writer.set("tokenizer.ggml.pre", Value(uint32_t{2}));
  expect_format_error(bad_pre, "tokenizer.ggml.pre");
}

TEST(VocabGguf, RealGpt2VocabLoads) {
  LLMOS_REQUIRE_SHARED("vocab/ggml-vocab-gpt-2.gguf");
  const gguf::File file = gguf::File::open(test::shared_path("vocab/ggml-vocab-gpt-2.gguf"));
  const auto tok = Tokenizer::from_gguf(file);
  EXPECT_EQ(tok->vocab().model, "gpt2");
  EXPECT_EQ(tok->encode("Hello world", false), (std::vector<TokenId>{15496, 995}));
}

TEST(VocabGguf, TokensMustBeANonEmptyStringArray) {
  const std::string key = "tokenizer.ggml.tokens";
  Image missing;
  gguf::Writer w;
  w.set("tokenizer.ggml.model", Value("llama"));
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  const gguf::File file = gguf::File::parse(bytes, bytes->data(), bytes->size(), "x.gguf");
  expect_error([&] { Vocab::from_gguf(file); }, StatusCode::kFormat, key);

  Image ints;
  ints.writer.set(key, Value(scalar_array<int32_t>(ValueType::kInt32, {1, 2, 3, 4, 5})));
  expect_format_error(ints, key);
  Image scalar;
  scalar.writer.set(key, Value("abc"));
  expect_format_error(scalar, key);
  Image empty;
  empty.writer.set(key, Value(string_array({})));
  expect_format_error(empty, key);
}

TEST(VocabGguf, ScoresMustMatchTokens) {
  const std::string key = "tokenizer.ggml.scores";
  Image short_scores;
  short_scores.writer.set(key, Value(scalar_array<float>(ValueType::kFloat32, {0, 0, 0, 0})));
  expect_format_error(short_scores, key);
  Image doubles;
  doubles.writer.set(key, Value(scalar_array<double>(ValueType::kFloat64, {0, 0, 0, 0, 0})));
  expect_format_error(doubles, key);
  Image scalar;
  scalar.writer.set(key, Value(1.0f));
  expect_format_error(scalar, key);
}

TEST(VocabGguf, TokenTypesMustMatchTokens) {
  const std::string key = "tokenizer.ggml.token_type";
  Image long_types;
  long_types.writer.set(key, Value(scalar_array<int32_t>(ValueType::kInt32, {1, 1, 1, 1, 1, 1})));
  expect_format_error(long_types, key);
  Image bytes;
  bytes.writer.set(key, Value(scalar_array<uint8_t>(ValueType::kUint8, {1, 1, 1, 1, 1})));
  expect_format_error(bytes, key);
}

TEST(VocabGguf, SpecialIdsMustBeInRange) {
  for (const std::string key :
       {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"}) {
    Image out_of_range;
    out_of_range.writer.set(key, Value(uint32_t{5}));
    expect_format_error(out_of_range, key);
    Image negative;
    negative.writer.set(key, Value(int32_t{-7}));
    expect_format_error(negative, key);
    Image huge;
    huge.writer.set(key, Value(uint64_t{1} << 63));
    expect_format_error(huge, key);
    Image text;
    text.writer.set(key, Value("1"));
    expect_format_error(text, key);
  }
  Image none;
  none.writer.set("tokenizer.ggml.bos_token_id", Value(uint32_t{0xFFFFFFFF}));
  EXPECT_EQ(Vocab::from_gguf(none.file()).bos, kNoToken);
  Image last;
  last.writer.set("tokenizer.ggml.eos_token_id", Value(uint64_t{4}));
  EXPECT_EQ(Vocab::from_gguf(last.file()).eos, 4);
}

TEST(VocabGguf, FlagsMustBeBooleans) {
  Image image;
  image.writer.set("tokenizer.ggml.add_bos_token", Value("yes"));
  expect_format_error(image, "tokenizer.ggml.add_bos_token");
}

}  // namespace
}  // namespace llmos
