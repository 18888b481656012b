// Writer -> reader round trips (every value type, nested and empty arrays, plain and quantized
// tensors, custom alignment), a hand-made v2 file, real files from /work/shared, and the
// writer's input validation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/gguf_bytes.h"
#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "support/test_paths.h"

namespace llmos::gguf {
namespace {

Tensor random_tensor(const std::vector<int64_t>& shape, DType dtype, uint32_t seed) {
  Tensor t = Tensor::empty(shape, dtype);
  std::mt19937 rng(seed);
  auto* p = t.data_as<uint8_t>();
  for (int64_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(rng());
  return t;
}

Array make_array(ValueType type, std::vector<Value> items) {
  Array a;
  a.element_type = type;
  a.items = std::move(items);
  return a;
}

// Every metadata value type, including edge values, empty and nested arrays.
std::vector<std::pair<std::string, Value>> sample_metadata() {
  std::vector<std::pair<std::string, Value>> kv;
  kv.emplace_back("t.u8", Value(uint8_t{255}));
  kv.emplace_back("t.i8", Value(int8_t{-128}));
  kv.emplace_back("t.u16", Value(uint16_t{65535}));
  kv.emplace_back("t.i16", Value(int16_t{-32768}));
  kv.emplace_back("t.u32", Value(uint32_t{4000000000u}));
  kv.emplace_back("t.i32", Value(int32_t{-2000000000}));
  kv.emplace_back("t.f32", Value(1.5e-5f));
  kv.emplace_back("t.bool_true", Value(true));
  kv.emplace_back("t.bool_false", Value(false));
  kv.emplace_back("t.string", Value(std::string("llama")));
  kv.emplace_back("t.empty_string", Value(std::string()));
  kv.emplace_back("t.utf8_and_nul", Value(std::string("h\xc3\xa9llo \xe4\xb8\xad\0tail", 15)));
  kv.emplace_back("t.u64", Value(std::numeric_limits<uint64_t>::max()));
  kv.emplace_back("t.i64", Value(std::numeric_limits<int64_t>::min()));
  kv.emplace_back("t.f64", Value(-2.25e300));
  kv.emplace_back("t.arr_i32",
                  Value(make_array(ValueType::kInt32, {int32_t{1}, int32_t{-2}, int32_t{3}})));
  kv.emplace_back("t.arr_empty", Value(make_array(ValueType::kFloat32, {})));
  kv.emplace_back("t.arr_strings",
                  Value(make_array(ValueType::kString, {std::string("<unk>"), std::string(""),
                                                        std::string("\xe2\x96\x81the")})));
  kv.emplace_back("t.arr_bool", Value(make_array(ValueType::kBool, {true, false, true})));
  kv.emplace_back("t.arr_u64", Value(make_array(ValueType::kUint64, {uint64_t{1} << 40})));
  kv.emplace_back("t.arr_f64", Value(make_array(ValueType::kFloat64, {0.5, -0.25})));
  // Array of arrays with an empty inner array and differing inner element types.
  kv.emplace_back("t.arr_nested",
                  Value(make_array(ValueType::kArray,
                                   {Value(make_array(ValueType::kUint8, {uint8_t{1}, uint8_t{2}})),
                                    Value(make_array(ValueType::kString, {})),
                                    Value(make_array(ValueType::kString, {std::string("x")}))})));
  // The deepest nesting accepted (kMaxArrayDepth levels).
  Value deep = Value(make_array(ValueType::kInt16, {int16_t{7}}));
  for (int d = 1; d < kMaxArrayDepth; ++d) deep = Value(make_array(ValueType::kArray, {deep}));
  kv.emplace_back("t.arr_deepest", deep);
  return kv;
}

struct SampleTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype;
};

std::vector<SampleTensor> sample_tensors() {
  return {
      {"a.f32", {3, 5}, DType::kF32},       {"b.f16", {2, 4}, DType::kF16},
      {"c.bf16", {7}, DType::kBF16},        {"d.i8", {3}, DType::kI8},
      {"e.i16", {5, 1}, DType::kI16},       {"f.i32", {2, 3}, DType::kI32},
      {"g.q4_0", {2, 64}, DType::kQ4_0},    {"h.q8_0", {3, 32}, DType::kQ8_0},
      {"i.q4_K", {2, 256}, DType::kQ4_K},   {"j.q6_K", {1, 512}, DType::kQ6_K},
      {"k.q5_1", {1, 1, 32}, DType::kQ5_1}, {"l.f32_4d", {2, 3, 4, 5}, DType::kF32},
  };
}

void check_file_matches(const File& f, const Writer& /*unused*/,
                        const std::vector<std::pair<std::string, Value>>& kv,
                        const std::vector<SampleTensor>& specs, const std::vector<Tensor>& tensors,
                        uint32_t alignment) {
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), alignment);
  EXPECT_EQ(f.data_section_offset() % alignment, 0u);
  // general.alignment comes first when not the default, then the keys in insertion order.
  size_t base = 0;
  if (alignment != kDefaultAlignment) {
    ASSERT_GE(f.metadata().size(), 1u);
    EXPECT_EQ(f.metadata()[0].first, "general.alignment");
    EXPECT_EQ(f.metadata()[0].second, Value(alignment));
    base = 1;
  } else {
    EXPECT_EQ(f.find("general.alignment"), nullptr);
  }
  ASSERT_EQ(f.metadata().size(), kv.size() + base);
  for (size_t i = 0; i < kv.size(); ++i) {
    EXPECT_EQ(f.metadata()[base + i].first, kv[i].first);
    EXPECT_TRUE(f.metadata()[base + i].second == kv[i].second)
        << kv[i].first << ": got " << f.metadata()[base + i].second.to_display_string()
        << " expected " << kv[i].second.to_display_string();
  }
  ASSERT_EQ(f.tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorInfo& info = f.tensors()[i];
    EXPECT_EQ(info.name, specs[i].name);
    EXPECT_EQ(info.shape, specs[i].shape) << info.name;
    EXPECT_EQ(info.dtype, specs[i].dtype) << info.name;
    EXPECT_EQ(info.nbytes, static_cast<uint64_t>(tensors[i].nbytes())) << info.name;
    EXPECT_EQ(info.data_offset % alignment, 0u) << info.name;
    ASSERT_EQ(f.find_tensor(specs[i].name), &info);
    Tensor t = f.tensor(specs[i].name);
    EXPECT_EQ(t.shape(), specs[i].shape);
    EXPECT_EQ(t.dtype(), specs[i].dtype);
    EXPECT_EQ(t.data(), f.tensor_data(info));
    EXPECT_EQ(std::memcmp(t.data(), tensors[i].data(), static_cast<size_t>(t.nbytes())), 0)
        << info.name;
  }
}

TEST(GgufRoundTrip, EveryValueTypeAndDtypeInMemory) {
  for (uint32_t alignment : {32u, 64u, 8u, 4096u}) {
    SCOPED_TRACE("alignment " + std::to_string(alignment));
    Writer w;
    w.set_alignment(alignment);
    const auto kv = sample_metadata();
    for (const auto& [k, v] : kv) w.set(k, v);
    const auto specs = sample_tensors();
    std::vector<Tensor> tensors;
    for (size_t i = 0; i < specs.size(); ++i) {
      tensors.push_back(random_tensor(specs[i].shape, specs[i].dtype, static_cast<uint32_t>(i)));
      w.add_tensor(specs[i].name, tensors.back());
    }
    auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
    // The writer pads the last tensor, so the file is a whole number of alignments.
    EXPECT_EQ(bytes->size() % alignment, 0u);
    File f = File::parse(bytes, bytes->data(), bytes->size(), "mem.gguf");
    EXPECT_EQ(f.path(), "mem.gguf");
    EXPECT_EQ(f.file_size(), bytes->size());
    check_file_matches(f, w, kv, specs, tensors, alignment);
  }
}

TEST(GgufRoundTrip, WriteFileThenOpenKeepsMappingAlive) {
  Writer w;
  w.set_alignment(128);
  const auto kv = sample_metadata();
  for (const auto& [k, v] : kv) w.set(k, v);
  const auto specs = sample_tensors();
  std::vector<Tensor> tensors;
  for (size_t i = 0; i < specs.size(); ++i) {
    tensors.push_back(
        random_tensor(specs[i].shape, specs[i].dtype, 100 + static_cast<uint32_t>(i)));
    w.add_tensor(specs[i].name, tensors.back());
  }
  const std::string dir = test::temp_dir() + "/write_file";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/model.gguf";
  w.write_file(path);
  // Only the final file remains: the temporary was renamed.
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "model.gguf");
  }
  EXPECT_EQ(entries, 1u);

  // write_file streams the same bytes to_bytes() builds.
  const std::vector<uint8_t> expected = w.to_bytes();
  ASSERT_EQ(std::filesystem::file_size(path), expected.size());

  Tensor borrowed;
  {
    File f = File::open(path);
    EXPECT_EQ(f.path(), path);
    check_file_matches(f, w, kv, specs, tensors, 128);
    borrowed = f.tensor("j.q6_K");
  }
  // The File is gone; the tensor's owner keeps the mapping alive (ASan would flag a use after
  // unmap as a SEGV).
  std::filesystem::remove(path);
  EXPECT_EQ(std::memcmp(borrowed.data(), tensors[9].data(), static_cast<size_t>(borrowed.nbytes())),
            0);
}

TEST(GgufRoundTrip, OverwritesExistingFile) {
  const std::string path = test::temp_dir() + "/overwrite.gguf";
  Writer a;
  a.set("k", Value(uint32_t{1}));
  a.write_file(path);
  Writer b;
  b.set("k", Value(std::string("two")));
  b.write_file(path);
  File f = File::open(path);
  EXPECT_EQ(f.get_string("k"), "two");
}

TEST(GgufRoundTrip, WriteFileIntoMissingDirectoryIsIoErrorAndLeavesNothing) {
  const std::string dir = test::temp_dir() + "/no/such/dir";
  const std::string path = dir + "/x.gguf";
  Writer w;
  w.set("k", Value(int32_t{1}));
  try {
    w.write_file(path);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kIo);
    EXPECT_CONTAINS(e.message(), path);
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(GgufRoundTrip, EmptyFileWithNoTensorsOrMetadata) {
  Writer w;
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  File f = File::parse(bytes, bytes->data(), bytes->size(), "empty.gguf");
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_TRUE(f.tensors().empty());
}

TEST(GgufRoundTrip, SetReplacesKeepingPosition) {
  Writer w;
  w.set("first", Value(uint32_t{1}));
  w.set("second", Value(uint32_t{2}));
  w.set("first", Value(std::string("replaced")));
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  File f = File::parse(bytes, bytes->data(), bytes->size(), "m.gguf");
  ASSERT_EQ(f.metadata().size(), 2u);
  EXPECT_EQ(f.metadata()[0].first, "first");
  EXPECT_EQ(f.get_string("first"), "replaced");
  EXPECT_EQ(f.metadata()[1].first, "second");
}

TEST(GgufRoundTrip, GeneralAlignmentKeyIsTheAlignment) {
  Writer w;
  w.set("general.alignment", Value(uint32_t{256}));
  w.add_tensor("t", random_tensor({3}, DType::kF32, 1));
  w.add_tensor("u", random_tensor({3}, DType::kF32, 2));
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  File f = File::parse(bytes, bytes->data(), bytes->size(), "m.gguf");
  EXPECT_EQ(f.alignment(), 256u);
  EXPECT_EQ(f.metadata().size(), 1u);
  EXPECT_EQ(f.find_tensor("u")->data_offset, 256u);
}

TEST(GgufRoundTrip, TypedGetters) {
  Writer w;
  w.set("i", Value(uint32_t{42}));
  w.set("neg", Value(int8_t{-3}));
  w.set("big", Value(std::numeric_limits<uint64_t>::max()));
  w.set("f", Value(0.5f));
  w.set("s", Value(std::string("str")));
  w.set("b", Value(true));
  w.set("a", Value(make_array(ValueType::kInt32, {int32_t{9}})));
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  File f = File::parse(bytes, bytes->data(), bytes->size(), "getters.gguf");
  EXPECT_EQ(f.get_int("i"), 42);
  EXPECT_EQ(f.get_int("neg"), -3);
  EXPECT_EQ(f.get_float("f"), 0.5);
  EXPECT_EQ(f.get_float("i"), 42.0);  // integers widen to float
  EXPECT_EQ(f.get_string("s"), "str");
  EXPECT_TRUE(f.get_bool("b"));
  EXPECT_EQ(f.get_array("a").items.size(), 1u);
  EXPECT_EQ(f.get_int_or("missing", 7), 7);
  EXPECT_EQ(f.get_int_or("i", 7), 42);
  EXPECT_EQ(f.get_float_or("missing", 2.5), 2.5);
  EXPECT_EQ(f.get_string_or("missing", "fb"), "fb");
  EXPECT_FALSE(f.get_bool_or("missing", false));

  auto expect_format = [](auto&& fn, const std::string& part1, const std::string& part2) {
    try {
      fn();
      ADD_FAILURE() << "expected an Error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), StatusCode::kFormat);
      EXPECT_CONTAINS(e.message(), "getters.gguf");
      EXPECT_CONTAINS(e.message(), part1);
      EXPECT_CONTAINS(e.message(), part2);
    }
  };
  expect_format([&] { f.get_int("nope"); }, "missing required key 'nope'", "");
  expect_format([&] { f.get_string("i"); }, "key 'i' has type uint32", "expected string");
  expect_format([&] { f.get_int("s"); }, "key 's' has type string", "expected an integer");
  expect_format([&] { f.get_int("big"); }, "key 'big'", "does not fit in int64");
  expect_format([&] { f.get_bool("i"); }, "key 'i' has type uint32", "expected bool");
  expect_format([&] { f.get_array("s"); }, "key 's' has type string", "expected array");
  expect_format([&] { f.get_float("s"); }, "key 's' has type string", "expected a number");
  expect_format([&] { f.get_int_or("s", 1); }, "key 's' has type string", "");

  try {
    f.tensor("absent");
    ADD_FAILURE() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kNotFound);
    EXPECT_CONTAINS(e.message(), "'absent'");
  }
}

// The writer only writes v3, so a v2 file is assembled by hand (v2 and v3 share a layout).
TEST(GgufRoundTrip, ReadsVersion2) {
  test::GgufBytes b;
  b.header(2, 2, 3);
  b.kv_str("general.architecture", "llama");
  b.kv_u32("llama.block_count", 5);
  b.str("v.arr").u32(9).u32(8).u64(2).str("ab").str("");  // array of 2 strings
  b.tensor("w", {4, 2}, 0, 0);                            // f32 [2, 4]
  b.tensor("q", {32}, 8, 32);                             // q8_0 [32]
  b.pad_to(32);
  const size_t data_start = b.size();
  for (int i = 0; i < 8; ++i) b.f32(static_cast<float>(i) + 0.5f);
  b.zeros(34);  // one q8_0 block
  auto bytes = std::make_shared<std::vector<uint8_t>>(b.bytes);
  File f = File::parse(bytes, bytes->data(), bytes->size(), "v2.gguf");
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.data_section_offset(), data_start);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 5);
  const Array& arr = f.get_array("v.arr");
  ASSERT_EQ(arr.items.size(), 2u);
  EXPECT_EQ(*arr.items[0].as_string(), "ab");
  EXPECT_EQ(*arr.items[1].as_string(), "");
  Tensor w = f.tensor("w");
  EXPECT_EQ(w.shape(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(w.data_as<float>()[5], 5.5f);
  EXPECT_EQ(f.find_tensor("q")->dtype, DType::kQ8_0);
  EXPECT_EQ(f.find_tensor("q")->nbytes, 34u);
}

// Expectations cross-checked with the python `gguf` package's GGUFReader.
TEST(GgufRoundTrip, ReadsStories260K) {
  LLMOS_REQUIRE_SHARED("models/stories260K.gguf");
  File f = File::open(test::shared_path("models/stories260K.gguf"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 5);
  EXPECT_EQ(f.get_int("llama.embedding_length"), 64);
  EXPECT_EQ(f.get_int("llama.feed_forward_length"), 172);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(f.get_int("llama.context_length"), 2048);
  EXPECT_EQ(f.get_int("llama.rope.dimension_count"), 8);
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("llama.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_EQ(f.find("llama.block_count")->type(), ValueType::kUint32);
  EXPECT_EQ(f.get_array("tokenizer.ggml.tokens").items.size(), 512u);
  EXPECT_EQ(*f.get_array("tokenizer.ggml.tokens").items[100].as_string(), "<0x61>");
  EXPECT_EQ(f.tensors().size(), 48u);
  EXPECT_EQ(f.data_section_offset(), 14176u);

  const TensorInfo* emb = f.find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(emb->dtype, DType::kF32);
  Tensor t = f.tensor(*emb);
  EXPECT_FLOAT_EQ(t.data_as<float>()[0], -0.29474878f);
  EXPECT_FLOAT_EQ(t.data_as<float>()[1], 0.5618956f);

  Tensor down = f.tensor("blk.4.ffn_down.weight");
  EXPECT_EQ(down.shape(), (std::vector<int64_t>{64, 172}));
  EXPECT_EQ(f.find_tensor("blk.4.ffn_down.weight")->data_offset + f.data_section_offset(),
            1097056u);
  double sum = 0;
  for (int64_t i = 0; i < down.numel(); ++i) sum += down.data_as<float>()[i];
  EXPECT_NEAR(sum, 19.543785, 1e-3);
}

TEST(GgufRoundTrip, ReadsLlamaSpmVocab) {
  LLMOS_REQUIRE_SHARED("vocab/ggml-vocab-llama-spm.gguf");
  File f = File::open(test::shared_path("vocab/ggml-vocab-llama-spm.gguf"));
  EXPECT_TRUE(f.tensors().empty());
  const Array& tokens = f.get_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.items.size(), 32000u);
  EXPECT_EQ(*tokens.items[31999].as_string(), "\xe7\xbb\x99");  // 给
  EXPECT_EQ(*f.get_array("tokenizer.ggml.scores").items[500].as<float>(), -241.0f);
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(f.get_int("llama.vocab_size"), 32000);
}

// Re-encoding a real file's metadata and tensors gives back an identical parse.
TEST(GgufRoundTrip, RewriteStories260K) {
  LLMOS_REQUIRE_SHARED("models/stories260K.gguf");
  File f = File::open(test::shared_path("models/stories260K.gguf"));
  Writer w;
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  for (const auto& info : f.tensors()) w.add_tensor(info.name, f.tensor(info));
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  File g = File::parse(bytes, bytes->data(), bytes->size(), "rewritten.gguf");
  EXPECT_EQ(g.metadata(), f.metadata());
  ASSERT_EQ(g.tensors().size(), f.tensors().size());
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    EXPECT_EQ(g.tensors()[i].name, f.tensors()[i].name);
    EXPECT_EQ(g.tensors()[i].shape, f.tensors()[i].shape);
    EXPECT_EQ(std::memcmp(g.tensor_data(g.tensors()[i]), f.tensor_data(f.tensors()[i]),
                          f.tensors()[i].nbytes),
              0);
  }
}

void expect_invalid(const std::function<void()>& fn, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "expected kInvalidArgument mentioning " << part;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument) << e.message();
    EXPECT_CONTAINS(e.message(), part);
  }
}

TEST(GgufWriter, ValidatesInputs) {
  Writer w;
  w.add_tensor("dup", random_tensor({4}, DType::kF32, 1));
  expect_invalid([&] { w.add_tensor("dup", random_tensor({4}, DType::kF32, 2)); },
                 "duplicate tensor name 'dup'");
  expect_invalid([&] { w.add_tensor("", random_tensor({4}, DType::kF32, 2)); }, "name is empty");
  expect_invalid([&] { w.add_tensor("undef", Tensor()); }, "'undef' is undefined");
  expect_invalid(
      [&] { w.add_tensor("scalar", Tensor::empty(std::vector<int64_t>{}, DType::kF32)); },
      "'scalar' has rank 0");
  expect_invalid(
      [&] {
        w.add_tensor("zero", Tensor::empty({0, 4}, DType::kF32));
      },
      "'zero' has an empty dimension");
  Tensor host = random_tensor({4}, DType::kF32, 3);
  expect_invalid(
      [&] {
        w.add_tensor("dev",
                     Tensor::borrow(host.data(), {4}, DType::kF32, nullptr, Device::cuda(0)));
      },
      "only host tensors");
  expect_invalid([&] { w.set_alignment(0); }, "alignment 0");
  expect_invalid([&] { w.set_alignment(48); }, "alignment 48");
  expect_invalid([&] { w.set("general.alignment", Value(uint64_t{64})); }, "must be a uint32");
  expect_invalid([&] { w.set("general.alignment", Value(uint32_t{3})); }, "alignment 3");
  expect_invalid([&] { w.set("", Value(uint32_t{3})); }, "key is empty");
  expect_invalid(
      [&] {
        w.set("mixed", Value(make_array(ValueType::kInt32, {int32_t{1}, uint32_t{2}})));
      },
      "key 'mixed': item 1 has type uint32");
  Value deep = Value(make_array(ValueType::kInt16, {int16_t{7}}));
  for (int d = 0; d < kMaxArrayDepth; ++d) deep = Value(make_array(ValueType::kArray, {deep}));
  expect_invalid([&] { w.set("deep", deep); }, "nested");
  // Failed calls changed nothing: the file still holds one tensor, no metadata, alignment 32.
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  File f = File::parse(bytes, bytes->data(), bytes->size(), "m.gguf");
  EXPECT_EQ(f.tensors().size(), 1u);
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_EQ(f.alignment(), 32u);
}

// add_tensor with a producer: the bytes are generated while the file is written, in pieces.
// The file is identical to one written from the same bytes held in Tensors.
TEST(GgufWriter, ProducedTensorsMatchTensorsHeldInMemory) {
  const Tensor a = random_tensor({3, 64}, DType::kQ8_0, 11);
  const Tensor b = random_tensor({5, 7}, DType::kF32, 12);
  const Tensor c = random_tensor({2, 256}, DType::kQ4_K, 13);
  for (uint32_t alignment : {32u, 1u, 64u}) {
    Writer held;
    Writer produced;
    for (Writer* w : {&held, &produced}) {
      w->set_alignment(alignment);
      w->set("k", Value(std::string("v")));
    }
    held.add_tensor("a", a);
    held.add_tensor("b", b);
    held.add_tensor("c", c);
    int calls = 0;
    // `a` in single bytes, `b` in one piece, `c` row by row.
    produced.add_tensor("a", a.shape(), a.dtype(), [&](const ByteSink& sink) {
      ++calls;
      for (int64_t i = 0; i < a.nbytes(); ++i) sink(a.data_as<uint8_t>() + i, 1);
    });
    produced.add_tensor("b", b);
    produced.add_tensor("c", c.shape(), c.dtype(), [&](const ByteSink& sink) {
      ++calls;
      for (int64_t r = 0; r < c.rows(); ++r) sink(c.row(r), static_cast<size_t>(c.row_bytes()));
    });
    const std::vector<uint8_t> expect = held.to_bytes();
    EXPECT_TRUE(produced.to_bytes() == expect) << "alignment " << alignment;
    EXPECT_EQ(calls, 2);
    const std::string path = test::temp_dir() + "/produced.gguf";
    produced.write_file(path);
    EXPECT_EQ(calls, 4);  // once per write
    std::ifstream in(path, std::ios::binary);
    const std::vector<uint8_t> written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(written == expect) << "alignment " << alignment;
  }
}

TEST(GgufWriter, ProducerErrorsLeaveNoFile) {
  const std::string dir = test::temp_dir() + "/producer-errors";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/x.gguf";
  const Tensor t = random_tensor({4, 32}, DType::kF32, 21);
  auto expect_fails = [&](const TensorProducer& producer, StatusCode code, const std::string& part) {
    Writer w;
    w.add_tensor("first", t);
    w.add_tensor("made", t.shape(), t.dtype(), producer);
    w.add_tensor("last", t);
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        if (attempt == 0) {
          w.write_file(path);
        } else {
          (void)w.to_bytes();
        }
        ADD_FAILURE() << "expected an error mentioning " << part;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), code) << e.message();
        EXPECT_CONTAINS(e.message(), part);
      }
    }
    EXPECT_TRUE(std::filesystem::is_empty(dir)) << "a partial or temporary file was left";
  };
  const auto bytes = static_cast<size_t>(t.nbytes());
  expect_fails([&](const ByteSink& sink) { sink(t.data(), bytes - 4); }, StatusCode::kInternal,
               "'made' wrote 508 bytes, expected 512");
  expect_fails(
      [&](const ByteSink& sink) {
        sink(t.data(), bytes);
        sink(t.data(), 1);
      },
      StatusCode::kInternal, "'made' wrote more than its 512 bytes");
  expect_fails(
      [&](const ByteSink& sink) {
        sink(t.data(), 8);
        throw_error(StatusCode::kFormat, "source went away");
      },
      StatusCode::kFormat, "source went away");
  // A failed write does not leave an older file half-replaced either.
  Writer ok;
  ok.set("k", Value(uint32_t{7}));
  ok.write_file(path);
  Writer bad;
  bad.add_tensor("made", {4}, DType::kF32, [](const ByteSink&) { throw_error(StatusCode::kIo, "boom"); });
  EXPECT_THROW(bad.write_file(path), Error);
  EXPECT_EQ(File::open(path).get_int("k"), 7);
}

TEST(GgufWriter, ValidatesProducedTensors) {
  Writer w;
  const TensorProducer none;
  const TensorProducer zeros = [](const ByteSink& sink) {
    static const uint8_t z[64] = {};
    sink(z, sizeof(z));
  };
  w.add_tensor("ok", {16}, DType::kF32, zeros);
  expect_invalid([&] { w.add_tensor("ok", {16}, DType::kF32, zeros); }, "duplicate tensor name 'ok'");
  expect_invalid([&] { w.add_tensor("", {16}, DType::kF32, zeros); }, "name is empty");
  expect_invalid([&] { w.add_tensor("p", {16}, DType::kF32, none); }, "'p' has no producer");
  expect_invalid([&] { w.add_tensor("r0", {}, DType::kF32, zeros); }, "'r0' has rank 0");
  expect_invalid([&] { w.add_tensor("r5", {1, 1, 1, 1, 16}, DType::kF32, zeros); }, "'r5' has rank 5");
  expect_invalid([&] { w.add_tensor("e", {0, 16}, DType::kF32, zeros); }, "'e' has an empty or negative dimension 0");
  expect_invalid([&] { w.add_tensor("n", {4, -16}, DType::kF32, zeros); }, "dimension 1");
  expect_invalid([&] { w.add_tensor("blk", {2, 48}, DType::kQ4_K, zeros); }, "row length 48 is not a multiple");
  expect_invalid([&] { w.add_tensor("id", {16}, static_cast<DType>(4), zeros); }, "unknown dtype id 4");
  expect_invalid([&] { w.add_tensor("big", {int64_t{1} << 40, int64_t{1} << 40, 32}, DType::kF32, zeros); },
                 "overflows int64");
  // 2^63 elements overflow although their q4_0 bytes (about 2^62.2) would not.
  expect_invalid([&] { w.add_tensor("elems", {int64_t{1} << 32, int64_t{1} << 31}, DType::kQ4_0, zeros); },
                 "element count overflows int64");
  auto bytes = std::make_shared<std::vector<uint8_t>>(w.to_bytes());
  File f = File::parse(bytes, bytes->data(), bytes->size(), "v.gguf");
  ASSERT_EQ(f.tensors().size(), 1u);
  EXPECT_EQ(f.tensors()[0].nbytes, 64u);
}

TEST(GgufValue, ConversionsAreRangeChecked) {
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
  EXPECT_TRUE(Value(uint8_t{200}).to_int64(&i));
  EXPECT_EQ(i, 200);
  EXPECT_TRUE(Value(int8_t{-5}).to_int64(&i));
  EXPECT_EQ(i, -5);
  EXPECT_FALSE(Value(int8_t{-5}).to_uint64(&u));
  EXPECT_FALSE(Value(std::numeric_limits<uint64_t>::max()).to_int64(&i));
  EXPECT_TRUE(Value(std::numeric_limits<uint64_t>::max()).to_uint64(&u));
  EXPECT_EQ(u, std::numeric_limits<uint64_t>::max());
  i = 99;
  EXPECT_FALSE(Value(1.0f).to_int64(&i));  // floats are not integers
  EXPECT_FALSE(Value(true).to_int64(&i));
  EXPECT_FALSE(Value(std::string("1")).to_int64(&i));
  EXPECT_EQ(i, 99);  // untouched on failure
  EXPECT_TRUE(Value(int32_t{-7}).to_double(&d));
  EXPECT_EQ(d, -7.0);
  EXPECT_TRUE(Value(0.25).to_double(&d));
  EXPECT_EQ(d, 0.25);
  EXPECT_FALSE(Value(std::string("x")).to_double(&d));
  EXPECT_TRUE(Value(int16_t{1}).is_integer());
  EXPECT_FALSE(Value(true).is_integer());
  EXPECT_EQ(value_type_name(ValueType::kFloat64), "float64");
  EXPECT_EQ(value_type_name(Value(uint16_t{1}).type()), "uint16");
  // int and size_t literals land on the expected storage types.
  EXPECT_EQ(Value(5).type(), ValueType::kInt32);
  EXPECT_EQ(Value(size_t{5}).type(), ValueType::kUint64);
  EXPECT_EQ(Value("s").type(), ValueType::kString);
  Value copy_source = Value(uint16_t{3});
  Value copy = copy_source;  // non-const lvalue copies, not wraps
  EXPECT_EQ(copy, copy_source);
}

TEST(GgufValue, DisplayString) {
  EXPECT_EQ(Value(uint8_t{65}).to_display_string(), "65");
  EXPECT_EQ(Value(int8_t{-1}).to_display_string(), "-1");
  EXPECT_EQ(Value(true).to_display_string(), "true");
  EXPECT_EQ(Value(0.5f).to_display_string(), "0.5");
  EXPECT_EQ(Value(std::string("a\"b\n")).to_display_string(), "\"a\\\"b\\n\"");
  Array a = make_array(ValueType::kInt32, {});
  for (int32_t k = 0; k < 10; ++k) a.items.emplace_back(k);
  EXPECT_EQ(Value(a).to_display_string(3), "[0, 1, 2, ... (10 int32 items)]");
  EXPECT_EQ(Value(make_array(ValueType::kString, {})).to_display_string(), "[]");
}

}  // namespace
}  // namespace llmos::gguf
