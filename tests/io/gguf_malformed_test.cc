// Malformed GGUF input: one hand-crafted file per validation rule, each checked for kFormat and
// for a message naming the file, the field and the byte offset; then a corpus of truncated and
// bit-flipped real files that must parse cleanly or fail with llmos::Error, never crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/gguf_bytes.h"
#include "io/gguf_reader.h"
#include "support/test_paths.h"

namespace llmos::gguf {
namespace {

using test::GgufBytes;

constexpr const char* kName = "bad.gguf";
constexpr uint32_t kTypeU32 = 4, kTypeBool = 7, kTypeString = 8, kTypeArray = 9, kTypeU64 = 10;
constexpr uint32_t kF32 = 0, kQ4_0 = 2;

// Parses an exact-size heap copy (so ASan sees any read past the end).
File parse_copy(const std::vector<uint8_t>& bytes, const std::string& name = kName) {
  auto copy = std::make_shared<std::vector<uint8_t>>(bytes);
  return File::parse(copy, copy->data(), copy->size(), name);
}

// The kFormat message for a file that must be rejected ("" plus a test failure otherwise).
std::string format_error(const GgufBytes& b) {
  try {
    parse_copy(b.bytes);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kFormat) << e.message();
    EXPECT_NE(e.message().find(kName), std::string::npos) << e.message();
    return e.message();
  }
  ADD_FAILURE() << "the file was accepted";
  return "";
}

// "offset N" not followed by another digit.
bool mentions_offset(const std::string& msg, uint64_t offset) {
  const std::string needle = "offset " + std::to_string(offset);
  for (size_t p = msg.find(needle); p != std::string::npos; p = msg.find(needle, p + 1)) {
    const size_t end = p + needle.size();
    if (end == msg.size() || !std::isdigit(static_cast<unsigned char>(msg[end]))) return true;
  }
  return false;
}

#define EXPECT_OFFSET(msg, offset) \
  EXPECT_TRUE(mentions_offset(msg, offset)) << "expected offset " << (offset) << " in: " << (msg)

// Header (24 bytes) for one key/value pair and no tensors; the key starts at offset 24.
GgufBytes one_kv() {
  GgufBytes b;
  b.header(3, 0, 1);
  return b;
}

// --- header -------------------------------------------------------------------------------

TEST(GgufMalformed, BadMagic) {
  GgufBytes b;
  b.raw("GGUX").u32(3).u64(0).u64(0);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "magic");
  EXPECT_OFFSET(m, 0);
}

TEST(GgufMalformed, Version1IsRejectedClearly) {
  GgufBytes b;
  b.header(1, 0, 0);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "version 1 is not supported");
  EXPECT_OFFSET(m, 4);
}

TEST(GgufMalformed, UnsupportedVersions) {
  for (uint32_t v : {0u, 4u, 1000u}) {
    GgufBytes b;
    b.header(v, 0, 0);
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "version " + std::to_string(v));
    EXPECT_OFFSET(m, 4);
  }
}

TEST(GgufMalformed, BigEndianFile) {
  GgufBytes b;
  b.raw("GGUF").u8(0).u8(0).u8(0).u8(3).u64(0).u64(0);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "big-endian");
  EXPECT_OFFSET(m, 4);
}

TEST(GgufMalformed, TruncatedHeaderAtEveryLength) {
  GgufBytes full;
  full.header(3, 0, 0);
  for (size_t len = 0; len < full.size(); ++len) {
    SCOPED_TRACE("length " + std::to_string(len));
    GgufBytes b;
    b.bytes.assign(full.bytes.begin(), full.bytes.begin() + static_cast<long>(len));
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "truncated");
    const char* field = len < 4    ? "magic"
                        : len < 8  ? "version"
                        : len < 16 ? "tensor_count"
                                   : "kv_count";
    const uint64_t at = len < 4 ? 0 : len < 8 ? 4 : len < 16 ? 8 : 16;
    EXPECT_CONTAINS(m, field);
    EXPECT_OFFSET(m, at);
  }
}

TEST(GgufMalformed, EmptyImageAndNullData) {
  try {
    File::parse(nullptr, nullptr, 0, kName);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kFormat);
    EXPECT_CONTAINS(e.message(), "magic");
  }
}

TEST(GgufMalformed, TensorCountLargerThanTheFileCouldHold) {
  for (uint64_t count : {uint64_t{2}, uint64_t{1} << 40, std::numeric_limits<uint64_t>::max()}) {
    GgufBytes b;
    b.header(3, count, 0).zeros(40);  // room for one entry, not two
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "tensor_count " + std::to_string(count));
    EXPECT_OFFSET(m, 8);
  }
}

TEST(GgufMalformed, KvCountLargerThanTheFileCouldHold) {
  for (uint64_t count : {uint64_t{4}, std::numeric_limits<uint64_t>::max()}) {
    GgufBytes b;
    b.header(3, 0, count).zeros(40);  // room for three minimal pairs, not four
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "kv_count " + std::to_string(count));
    EXPECT_OFFSET(m, 16);
  }
}

// --- metadata -----------------------------------------------------------------------------

TEST(GgufMalformed, KeyLengthPastTheEnd) {
  GgufBytes b = one_kv();
  b.u64(100).raw("abc").zeros(20);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "metadata key #0");
  EXPECT_CONTAINS(m, "string length 100");
  EXPECT_OFFSET(m, 24);
}

TEST(GgufMalformed, HugeKeyLengthDoesNotAllocate) {
  GgufBytes b = one_kv();
  b.u64(std::numeric_limits<uint64_t>::max() - 3).zeros(20);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "metadata key #0");
  EXPECT_OFFSET(m, 24);
}

TEST(GgufMalformed, EmptyKey) {
  GgufBytes b = one_kv();
  b.str("").u32(kTypeU32).u32(1);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "metadata key #0 is empty");
  EXPECT_OFFSET(m, 24);
}

TEST(GgufMalformed, TruncatedScalarValue) {
  GgufBytes b = one_kv();
  b.str("k").u32(kTypeU64).u32(0);  // a uint64 with only 4 bytes left; value at 24+9+4 = 37
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "truncated");
  EXPECT_CONTAINS(m, "value of key 'k'");
  EXPECT_OFFSET(m, 37);
}

TEST(GgufMalformed, StringValueLengthPastTheEnd) {
  GgufBytes b = one_kv();
  b.str("s").u32(kTypeString).u64(uint64_t{1} << 63).raw("xyz");
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "string value of key 's'");
  EXPECT_CONTAINS(m, "string length 9223372036854775808");
  EXPECT_OFFSET(m, 37);
}

TEST(GgufMalformed, UnknownValueType) {
  for (uint32_t type : {13u, 0xffffffffu}) {
    GgufBytes b = one_kv();
    b.str("k").u32(type).u32(0);  // type tag at 24 + 9 = 33
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "value type of key 'k'");
    EXPECT_CONTAINS(m, "unknown value type " + std::to_string(type));
    EXPECT_OFFSET(m, 33);
  }
}

TEST(GgufMalformed, UnknownArrayElementType) {
  GgufBytes b = one_kv();
  b.str("a").u32(kTypeArray).u32(42).u64(0);  // element type at 37
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "array element type of key 'a'");
  EXPECT_CONTAINS(m, "unknown value type 42");
  EXPECT_OFFSET(m, 37);
}

TEST(GgufMalformed, ArrayCountLargerThanTheFileCouldHold) {
  // 10^12 uint32 elements, and 10 strings (8 bytes minimum each) with only 40 bytes left.
  for (auto [elem, count] : {std::pair<uint32_t, uint64_t>{kTypeU32, 1000000000000ull},
                             std::pair<uint32_t, uint64_t>{kTypeString, 10},
                             std::pair<uint32_t, uint64_t>{kTypeU32, ~0ull}}) {
    GgufBytes b = one_kv();
    b.str("arr").u32(kTypeArray).u32(elem).u64(count).zeros(40);  // count at 24+11+4+4 = 43
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "array element count " + std::to_string(count));
    EXPECT_CONTAINS(m, "'arr'");
    EXPECT_OFFSET(m, 43);
  }
}

TEST(GgufMalformed, TruncatedInsideArrayOfStrings) {
  GgufBytes b = one_kv();
  b.str("t").u32(kTypeArray).u32(kTypeString).u64(2).str("ok").u64(50).raw("short");
  // The second string's length field sits at 24+9+4+4+8 + 10 = 59.
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "string value of key 't'");
  EXPECT_OFFSET(m, 59);
}

// Arrays nest through element type 9; each level is a u32 type + u64 count (12 bytes).
GgufBytes nested_arrays(int depth) {
  GgufBytes b = one_kv();
  b.str("deep").u32(kTypeArray);  // the outermost array starts at 24+12+4 = 40
  for (int d = 1; d < depth; ++d) b.u32(kTypeArray).u64(1);
  b.u32(kTypeU32).u64(1).u32(7);
  return b;
}

TEST(GgufMalformed, ArrayNestingTooDeep) {
  GgufBytes ok = nested_arrays(kMaxArrayDepth);
  File f = parse_copy(ok.bytes);
  const Value* v = f.find("deep");
  ASSERT_NE(v, nullptr);
  for (int d = 1; d < kMaxArrayDepth; ++d) v = &v->as_array()->items.at(0);
  EXPECT_EQ(v->as_array()->items.at(0), Value(uint32_t{7}));

  GgufBytes b = nested_arrays(kMaxArrayDepth + 1);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "nested " + std::to_string(kMaxArrayDepth + 1) + " deep");
  EXPECT_CONTAINS(m, "'deep'");
  EXPECT_OFFSET(m, 40 + 12 * kMaxArrayDepth);
}

TEST(GgufMalformed, DuplicateKey) {
  GgufBytes b;
  b.header(3, 0, 2).kv_u32("a", 1).kv_u32("a", 2);  // second key at 24 + 17 = 41
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "duplicate metadata key 'a'");
  EXPECT_OFFSET(m, 41);
  EXPECT_OFFSET(m, 24);  // where it was first defined
}

TEST(GgufMalformed, BoolOtherThanZeroOrOne) {
  GgufBytes b = one_kv();
  b.str("b").u32(kTypeBool).u8(2).zeros(4);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "bool value of key 'b' is 2");
  EXPECT_OFFSET(m, 37);
}

TEST(GgufMalformed, KeysAndStringsMayHoldNulAndUtf8) {
  GgufBytes b;
  const std::string key("k\0\xc3\xa9", 4);
  const std::string val("\xe4\xb8\xad\0", 4);
  b.header(3, 0, 1).kv_str(key, val);
  File f = parse_copy(b.bytes);
  EXPECT_EQ(f.get_string(key), val);
}

// --- alignment ----------------------------------------------------------------------------

TEST(GgufMalformed, AlignmentOfTheWrongType) {
  GgufBytes b = one_kv();
  b.str("general.alignment").u32(kTypeU64).u64(64);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "general.alignment");
  EXPECT_CONTAINS(m, "type uint64, expected uint32");
  EXPECT_OFFSET(m, 24);
}

TEST(GgufMalformed, AlignmentZeroOrNotAPowerOfTwo) {
  for (uint32_t a : {0u, 48u, 3u}) {
    GgufBytes b;
    b.header(3, 0, 2).kv_u32("x", 1).kv_u32("general.alignment", a);  // at 24 + 17 = 41
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "general.alignment' is " + std::to_string(a));
    EXPECT_CONTAINS(m, "power of two");
    EXPECT_OFFSET(m, 41);
  }
}

// --- tensor table -------------------------------------------------------------------------

// One tensor entry right after the header (entry at 24, name "w" so n_dims at 33, ne[0] at 37),
// followed by `data_bytes` bytes of padding + data.
GgufBytes one_tensor(std::initializer_list<uint64_t> ne, uint32_t type, uint64_t offset,
                     size_t data_bytes = 256) {
  GgufBytes b;
  b.header(3, 1, 0).tensor("w", ne, type, offset).pad_to(32).zeros(data_bytes);
  return b;
}

TEST(GgufMalformed, ValidSingleTensorParses) {
  GgufBytes b = one_tensor({8, 2}, kF32, 0);
  File f = parse_copy(b.bytes);
  ASSERT_EQ(f.tensors().size(), 1u);
  EXPECT_EQ(f.tensors()[0].shape, (std::vector<int64_t>{2, 8}));
  EXPECT_EQ(f.tensors()[0].info_offset, 24u);
}

TEST(GgufMalformed, TensorNameLengthPastTheEnd) {
  GgufBytes b;
  b.header(3, 1, 0).u64(1000).zeros(40);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "name of tensor #0");
  EXPECT_OFFSET(m, 24);
}

TEST(GgufMalformed, EmptyTensorName) {
  GgufBytes b;
  b.header(3, 1, 0).tensor("", {8}, kF32, 0).zeros(64);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "name of tensor #0 is empty");
  EXPECT_OFFSET(m, 24);
}

TEST(GgufMalformed, DuplicateTensorName) {
  GgufBytes b;
  b.header(3, 2, 0).tensor("w", {8}, kF32, 0).tensor("w", {8}, kF32, 32).pad_to(32).zeros(64);
  const std::string m = format_error(b);  // second entry at 24 + 33 = 57
  EXPECT_CONTAINS(m, "duplicate tensor name 'w'");
  EXPECT_OFFSET(m, 57);
}

// Metadata arrays are bounded in total, not only by the bytes left: every element becomes an
// in-memory value many times its encoded size.
TEST(GgufMalformed, MetadataArraysBeyondTheTotalBudget) {
  const uint64_t each = kMaxMetadataArrayElements / 2 + 1;  // two of these exceed the budget
  GgufBytes b;
  b.header(3, 0, 2);
  b.str("a").u32(kTypeArray).u32(0).u64(each).zeros(each);
  const uint64_t second_count_at = b.bytes.size() + 8 + 1 + 4 + 4;
  b.str("b").u32(kTypeArray).u32(0).u64(each).zeros(each);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "'b'");
  EXPECT_CONTAINS(m, "array elements in total");
  EXPECT_OFFSET(m, second_count_at);

  GgufBytes ok;  // one of them alone is fine
  ok.header(3, 0, 1);
  ok.str("a").u32(kTypeArray).u32(0).u64(each).zeros(each);
  EXPECT_EQ(parse_copy(ok.bytes).find("a")->as_array()->items.size(), each);
}

TEST(GgufMalformed, BadNDims) {
  for (uint32_t n : {0u, 5u, 1000u}) {
    GgufBytes b;
    b.header(3, 1, 0).str("w").u32(n).u64(8).u32(kF32).u64(0).zeros(64);
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "tensor 'w' n_dims is " + std::to_string(n));
    EXPECT_OFFSET(m, 33);
  }
}

TEST(GgufMalformed, ZeroDimension) {
  GgufBytes b = one_tensor({8, 0}, kF32, 0);  // ne[1] at 45
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "tensor 'w' ne[1] is 0");
  EXPECT_OFFSET(m, 45);
}

TEST(GgufMalformed, NegativeDimension) {
  GgufBytes b = one_tensor({~0ull}, kF32, 0);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "tensor 'w' ne[0]");
  EXPECT_CONTAINS(m, "negative or too large");
  EXPECT_OFFSET(m, 37);
}

TEST(GgufMalformed, ElementCountOverflow) {
  GgufBytes b = one_tensor({1ull << 32, 1ull << 32}, kF32, 0);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "element count overflows int64 at ne[1]");
  EXPECT_OFFSET(m, 45);
}

TEST(GgufMalformed, ByteSizeOverflow) {
  {
    GgufBytes b = one_tensor({1ull << 62}, kF32, 0);  // 2^62 elements fit, 2^64 bytes do not
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "row byte size overflows int64");
    EXPECT_OFFSET(m, 37);
  }
  {
    GgufBytes b = one_tensor({1ull << 31, 1ull << 31}, kF32, 0);
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "byte size overflows int64 at ne[1]");
    EXPECT_OFFSET(m, 45);
  }
}

TEST(GgufMalformed, UnknownDtype) {
  for (uint32_t id : {4u, 5u, 99u, 0xffffffffu}) {  // 4 and 5 are retired ggml types
    GgufBytes b = one_tensor({32}, id, 0);          // type at 37 + 8 = 45
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "tensor 'w' has unknown ggml type id " + std::to_string(id));
    EXPECT_OFFSET(m, 45);
  }
}

TEST(GgufMalformed, RowNotAWholeNumberOfBlocks) {
  GgufBytes b = one_tensor({33, 2}, kQ4_0, 0);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "row length ne[0] = 33");
  EXPECT_CONTAINS(m, "q4_0 block size 32");
  EXPECT_OFFSET(m, 37);
}

TEST(GgufMalformed, TensorOffsetNotAligned) {
  {
    GgufBytes b = one_tensor({8}, kF32, 8);  // offset field at 37 + 8 + 4 = 49
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "data offset 8 is not a multiple of the alignment 32");
    EXPECT_OFFSET(m, 49);
  }
  {
    GgufBytes b;
    b.header(3, 1, 1)
        .kv_u32("general.alignment", 64)
        .tensor("w", {8}, kF32, 32)
        .pad_to(64)
        .zeros(128);
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "data offset 32 is not a multiple of the alignment 64");
  }
}

TEST(GgufMalformed, TensorDataPastTheEnd) {
  GgufBytes b = one_tensor({16}, kF32, 0, 32);  // 64 bytes of data, 32 present
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "tensor 'w' data [0, 64)");
  EXPECT_CONTAINS(m, "past the end of the file (" + std::to_string(b.size()) + " bytes)");
  EXPECT_OFFSET(m, 24);
}

TEST(GgufMalformed, TensorOffsetHugeDoesNotWrap) {
  GgufBytes b = one_tensor({16}, kF32, std::numeric_limits<uint64_t>::max() - 31);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "tensor 'w' data [");
  EXPECT_CONTAINS(m, "past the end of the file");
  EXPECT_OFFSET(m, 24);
}

TEST(GgufMalformed, DataSectionStartsPastTheEnd) {
  GgufBytes b;
  b.header(3, 1, 1).kv_u32("general.alignment", 4096).tensor("w", {8}, kF32, 0);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "data section starts at byte offset 4096");
  EXPECT_CONTAINS(m, "past the end of the file");
}

TEST(GgufMalformed, OverlappingTensors) {
  GgufBytes b;
  // 'a' covers [0, 64), 'b' starts at 32; 'b''s entry is at 24 + 33 = 57.
  b.header(3, 2, 0).tensor("a", {16}, kF32, 0).tensor("b", {8}, kF32, 32).pad_to(32).zeros(96);
  const std::string m = format_error(b);
  EXPECT_CONTAINS(m, "tensor 'b' data [32, 64) overlaps tensor 'a' data [0, 64)");
  EXPECT_OFFSET(m, 57);
  // Listed out of order: overlap is still found.
  GgufBytes c;
  c.header(3, 2, 0).tensor("a", {8}, kF32, 32).tensor("b", {16}, kF32, 0).pad_to(32).zeros(96);
  EXPECT_CONTAINS(format_error(c), "overlaps");
}

TEST(GgufMalformed, TruncatedTensorTable) {
  GgufBytes full;
  full.header(3, 1, 0).tensor("w", {8, 2}, kF32, 0);
  // Cut inside every field of the entry (from 32 bytes on, so the tensor_count check passes).
  for (size_t len = 24 + 32; len < full.size(); ++len) {
    GgufBytes b;
    b.bytes.assign(full.bytes.begin(), full.bytes.begin() + static_cast<long>(len));
    const std::string m = format_error(b);
    EXPECT_CONTAINS(m, "truncated");
    EXPECT_CONTAINS(m, "tensor");
  }
}

// --- corpus: truncated and corrupted real files ---------------------------------------------

// Every successful parse must describe tensors inside the image; touching their first and last
// bytes lets ASan catch any view that is not.
void check_parse(const std::vector<uint8_t>& image, size_t* accepted, size_t* rejected) {
  try {
    File f = parse_copy(image, "corpus.gguf");
    volatile uint8_t sink = 0;
    for (const TensorInfo& t : f.tensors()) {
      ASSERT_LE(f.data_section_offset() + t.data_offset + t.nbytes, image.size()) << t.name;
      Tensor view = f.tensor(t);
      ASSERT_EQ(view.nbytes(), static_cast<int64_t>(t.nbytes));
      const auto* p = static_cast<const uint8_t*>(view.data());
      sink = sink ^ p[0] ^ p[t.nbytes - 1];
    }
    ++*accepted;
  } catch (const Error&) {
    ++*rejected;
  }
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// Debug-build cost: a stories260K parse takes ~0.7 ms, a 32000-token vocabulary ~25 ms, so
// the vocabulary gets far fewer cases.
void run_corpus(const std::string& relative, size_t truncation_step, int random_truncations,
                int flips) {
  const std::vector<uint8_t> original = read_all(test::shared_path(relative));
  ASSERT_GT(original.size(), 24u);
  const File reference = parse_copy(original, relative);
  // The header/metadata/tensor-table region, where parsing decisions are made.
  const size_t region = reference.data_section_offset() < original.size()
                            ? static_cast<size_t>(reference.data_section_offset())
                            : original.size();
  std::mt19937_64 rng(0x9e3779b97f4a7c15ull);
  size_t accepted = 0, rejected = 0;

  // (a) truncations: the header region in steps (every byte at its start), plus random ones.
  std::vector<size_t> lengths;
  for (size_t len = 0; len < std::min<size_t>(region, 512); ++len) lengths.push_back(len);
  for (size_t len = 512; len < region; len += truncation_step) lengths.push_back(len);
  for (int i = 0; i < random_truncations; ++i) {
    lengths.push_back(static_cast<size_t>(rng() % original.size()));
  }
  for (size_t len : lengths) {
    std::vector<uint8_t> cut(original.begin(), original.begin() + static_cast<long>(len));
    check_parse(cut, &accepted, &rejected);
    if (::testing::Test::HasFatalFailure()) return;
  }
  // A prefix shorter than the tensor data can never parse when the file has tensors.
  if (!reference.tensors().empty()) {
    EXPECT_EQ(accepted, 0u);
  }

  // (b) seeded random corruption: half in the first KiB (header, first keys, array headers),
  // most of the rest in the parsed region, some anywhere; single bits, short runs of random
  // bytes, and 0xff / 0x00 runs that turn lengths and counts huge or zero.
  std::vector<uint8_t> image = original;
  for (int i = 0; i < flips; ++i) {
    const uint64_t pick = rng() % 8;
    const size_t span = pick < 4   ? std::min<size_t>(region, 1024)
                        : pick < 7 ? region
                                   : image.size();
    const size_t n = 1 + static_cast<size_t>(rng() % 4);
    const size_t at = static_cast<size_t>(rng() % (span > n ? span - n : 1));
    std::vector<uint8_t> saved(image.begin() + static_cast<long>(at),
                               image.begin() + static_cast<long>(at + n));
    switch (rng() % 4) {
      case 0:
        image[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      case 1:
        for (size_t k = 0; k < n; ++k) image[at + k] = static_cast<uint8_t>(rng());
        break;
      case 2:
        for (size_t k = 0; k < n; ++k) image[at + k] = 0xff;
        break;
      default:
        for (size_t k = 0; k < n; ++k) image[at + k] = 0;
        break;
    }
    check_parse(image, &accepted, &rejected);
    if (::testing::Test::HasFatalFailure()) return;
    std::copy(saved.begin(), saved.end(), image.begin() + static_cast<long>(at));
  }
  EXPECT_EQ(image, original);
  EXPECT_GT(rejected, 0u);
  ::testing::Test::RecordProperty("accepted", static_cast<int>(accepted));
  ::testing::Test::RecordProperty("rejected", static_cast<int>(rejected));
}

TEST(GgufCorpus, Stories260KTruncatedAndCorrupted) {
  LLMOS_REQUIRE_SHARED("models/stories260K.gguf");
  run_corpus("models/stories260K.gguf", 7, 100, 3000);
}

TEST(GgufCorpus, LlamaSpmVocabTruncatedAndCorrupted) {
  LLMOS_REQUIRE_SHARED("vocab/ggml-vocab-llama-spm.gguf");
  run_corpus("vocab/ggml-vocab-llama-spm.gguf", 18001, 20, 100);
}

}  // namespace
}  // namespace llmos::gguf
