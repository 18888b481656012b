// The SentencePiece tokenizer against llama.cpp's reference vectors for the Llama-2 vocab
// (ggml-vocab-llama-spm.gguf.inp/.out, the files llama.cpp's test-tokenizer-0 reads), and on
// the stories260K model's 512-token vocab.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "io/gguf_reader.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace llmos {
namespace {

constexpr const char* kLlamaVocab = "vocab/ggml-vocab-llama-spm.gguf";
constexpr const char* kLlamaInp = "vocab/ggml-vocab-llama-spm.gguf.inp";
constexpr const char* kLlamaOut = "vocab/ggml-vocab-llama-spm.gguf.out";
constexpr const char* kStories = "models/stories260K.gguf";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Vector {
  std::string text;
  std::vector<TokenId> ids;
};

// Splits the files the way test-tokenizer-0 does: inputs are separated by
// "\n__ggml_vocab_test__\n" (the file ends with one, which starts no further input); the
// .out file has one line of space-separated ids per input.
std::vector<Vector> read_vectors(const std::string& inp_path, const std::string& out_path) {
  const std::string raw = read_file(inp_path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < raw.size();) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(raw.substr(pos));
      break;
    }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::ifstream out(out_path);
  std::vector<std::vector<TokenId>> outputs;
  for (std::string line; std::getline(out, line);) {
    std::istringstream ids(line);
    std::vector<TokenId> row;
    for (long id; ids >> id;) row.push_back(static_cast<TokenId>(id));
    outputs.push_back(row);
  }
  EXPECT_EQ(inputs.size(), outputs.size()) << "input and output files disagree on the count";
  std::vector<Vector> vectors;
  for (size_t i = 0; i < inputs.size() && i < outputs.size(); ++i) {
    vectors.push_back({inputs[i], outputs[i]});
  }
  return vectors;
}

std::string join(const std::vector<TokenId>& ids) {
  std::string s;
  for (const TokenId id : ids) s += std::to_string(id) + " ";
  return s;
}

TEST(SpmVectors, LlamaVocabMatchesReferenceExactly) {
  LLMOS_REQUIRE_SHARED(kLlamaVocab);
  LLMOS_REQUIRE_SHARED(kLlamaInp);
  LLMOS_REQUIRE_SHARED(kLlamaOut);
  const gguf::File file = gguf::File::open(test::shared_path(kLlamaVocab));
  const auto tok = Tokenizer::from_gguf(file);
  EXPECT_EQ(tok->vocab().size(), 32000u);

  const std::vector<Vector> vectors =
      read_vectors(test::shared_path(kLlamaInp), test::shared_path(kLlamaOut));
  ASSERT_GE(vectors.size(), 40u);
  size_t passed = 0;
  size_t round_trips = 0;
  for (const Vector& v : vectors) {
    // test-tokenizer-0 tokenizes with add_special = false, parse_special = false.
    const std::vector<TokenId> ids = tok->encode(v.text, false, false);
    if (ids == v.ids) {
      ++passed;
    } else {
      ADD_FAILURE() << "text '" << v.text << "'\n  expected " << join(v.ids) << "\n  got      "
                    << join(ids);
    }
    // SentencePiece with byte fallback loses nothing on valid UTF-8.
    if (utf8_is_valid(v.text)) {
      EXPECT_EQ(tok->decode(ids), v.text);
      EXPECT_EQ(tok->decode(tok->encode(v.text, true)), v.text);
      ++round_trips;
    }
  }
  std::printf("llama-spm vectors: %zu/%zu exact, %zu round trips checked\n", passed,
              vectors.size(), round_trips);
  RecordProperty("vectors_passed", static_cast<int>(passed));
  RecordProperty("vectors_total", static_cast<int>(vectors.size()));
  EXPECT_EQ(passed, vectors.size());
  EXPECT_EQ(round_trips, vectors.size());
}

TEST(SpmVectors, LlamaVocabMetadata) {
  LLMOS_REQUIRE_SHARED(kLlamaVocab);
  const auto tok = Tokenizer::from_gguf(gguf::File::open(test::shared_path(kLlamaVocab)));
  const Vocab& v = tok->vocab();
  EXPECT_EQ(v.model, "llama");
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.eos, 2);
  EXPECT_EQ(v.unk, 0);
  EXPECT_EQ(v.pad, kNoToken);
  EXPECT_TRUE(v.add_bos);
  EXPECT_FALSE(v.add_eos);
  EXPECT_TRUE(v.add_space_prefix);
  EXPECT_EQ(v.types[0], TokenType::kUnknown);
  EXPECT_EQ(v.types[1], TokenType::kControl);
  EXPECT_EQ(v.types[3], TokenType::kByte);
  EXPECT_EQ(tok->token_to_piece(13), "\n");  // <0x0A>
  EXPECT_EQ(tok->token_to_piece(1), "");
  EXPECT_EQ(tok->token_to_piece(1, true), "<s>");
  EXPECT_EQ(tok->token_to_piece(0, true), "<unk>");
  // Special tokens in text: plain text by default, the tokens themselves with parse_special.
  EXPECT_EQ(tok->encode("<s>Hello</s>", false, true), (std::vector<TokenId>{1, 15043, 2}));
  EXPECT_NE(tok->encode("<s>Hello</s>", false, false), (std::vector<TokenId>{1, 15043, 2}));
  EXPECT_EQ(tok->encode("Hello", true), (std::vector<TokenId>{1, 15043}));
}

TEST(SpmVectors, LlamaVocabThroughput) {
  LLMOS_REQUIRE_SHARED(kLlamaVocab);
  LLMOS_REQUIRE_SHARED(kLlamaInp);
  const auto tok = Tokenizer::from_gguf(gguf::File::open(test::shared_path(kLlamaVocab)));
  const std::string sample = read_file(test::shared_path(kLlamaInp));
  std::string text;
  while (text.size() < (1u << 20)) text += sample;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<TokenId> ids = tok->encode(text, false);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("encoded %zu bytes into %zu tokens at %.2f MB/s (this build type)\n", text.size(),
              ids.size(), text.size() / seconds / 1e6);
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_LT(seconds, 60.0);  // generous for Debug + sanitizers; catches quadratic behaviour
}

TEST(SpmVectors, Stories260kRoundTripsAndBos) {
  LLMOS_REQUIRE_SHARED(kStories);
  const gguf::File file = gguf::File::open(test::shared_path(kStories));
  const auto tok = Tokenizer::from_gguf(file);
  const Vocab& v = tok->vocab();
  ASSERT_EQ(v.size(), 512u);
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.pad, kNoToken);  // stored as 0xFFFFFFFF
  EXPECT_TRUE(v.add_bos);      // key absent: the default for "llama"

  const std::vector<TokenId> ids = tok->encode("Once upon a time", true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_NE(ids[1], 1);
  EXPECT_EQ(tok->encode("Once upon a time", false),
            std::vector<TokenId>(ids.begin() + 1, ids.end()));
  // Every id is a real piece of the text: the first word starts with the dummy-prefix space.
  EXPECT_EQ(tok->token_to_piece(ids[1]).front(), ' ');
  EXPECT_EQ(tok->decode(ids), "Once upon a time");
  // " the" is a single token of this vocab ("▁the"), and its merge wins over the pieces.
  const std::vector<TokenId> the = tok->encode("the", false);
  ASSERT_EQ(the.size(), 1u);
  EXPECT_EQ(v.tokens[the[0]], "\xE2\x96\x81the");

  for (const std::string text :
       {"Tom and Lily went to the park.\n\"Let's go!\" she said.", "  two  spaces ",
        "Unicode: \xC3\xA9t\xC3\xA9 \xF0\x9F\x9A\x80 \xE4\xBD\xA0\xE5\xA5\xBD", "\n\n\t",
        "123 4567 89"}) {
    EXPECT_EQ(tok->decode(tok->encode(text, true)), text);
  }
}

}  // namespace
}  // namespace llmos
