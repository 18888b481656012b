// Every vocabulary in $LLMOS_SHARED_DIR/vocab that has llama.cpp's test-tokenizer-0 vectors
// beside it (<name>.gguf.inp / <name>.gguf.out) is tokenized and compared id for id, whatever
// its tokenizer family: the file's tokenizer.ggml.model picks the implementation, so a new
// vocabulary of a supported family is checked as soon as it is dropped in. Vocabularies of a
// family llmos does not implement at all are reported and skipped; any other error fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/gguf_reader.h"
#include "support/test_paths.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace llmos {
namespace {

namespace fs = std::filesystem;

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

// test-tokenizer-0's format: inputs separated by "\n__ggml_vocab_test__\n" (the file ends
// with one, which starts no further input); one line of space-separated ids per input.
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
  EXPECT_EQ(inputs.size(), outputs.size()) << inp_path << ": input and output counts differ";
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

// The vocab files (names relative to vocab/) that have both vector files.
std::vector<std::string> vocab_files_with_vectors() {
  std::vector<std::string> names;
  const fs::path dir = fs::path(test::shared_dir()) / "vocab";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const fs::path p = entry.path();
    if (p.extension() != ".gguf") continue;
    if (fs::exists(p.string() + ".inp") && fs::exists(p.string() + ".out")) {
      names.push_back(p.filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(TokenizerVectors, AtLeastTheKnownVocabsAreThere) {
  const std::vector<std::string> names = vocab_files_with_vectors();
  if (names.empty()) GTEST_SKIP() << "no vocab/*.gguf with .inp/.out under " << test::shared_dir();
  // The two families this repository ships vectors for; more may be dropped in.
  EXPECT_NE(std::find(names.begin(), names.end(), "ggml-vocab-gpt-2.gguf"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "ggml-vocab-llama-spm.gguf"), names.end());
}

TEST(TokenizerVectors, EveryVocabMatchesLlamaCppExactly) {
  const std::vector<std::string> names = vocab_files_with_vectors();
  if (names.empty()) GTEST_SKIP() << "no vocab/*.gguf with .inp/.out under " << test::shared_dir();
  size_t checked = 0;
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    const std::string path = test::shared_path("vocab/" + name);
    const gguf::File file = gguf::File::open(path);
    std::unique_ptr<Tokenizer> tok;
    try {
      tok = Tokenizer::from_gguf(file);
    } catch (const Error& e) {
      const std::string model = file.get_string_or("tokenizer.ggml.model", "");
      if (e.code() == StatusCode::kUnsupported && model != "gpt2" && model != "llama") {
        std::printf("%s: tokenizer family '%s' not implemented, skipped\n", name.c_str(),
                    model.c_str());
        continue;
      }
      ADD_FAILURE() << e.what();
      continue;
    }
    const std::vector<Vector> vectors = read_vectors(path + ".inp", path + ".out");
    EXPECT_GE(vectors.size(), 10u);
    size_t passed = 0;
    size_t round_trips = 0;
    for (const Vector& v : vectors) {
      // test-tokenizer-0 tokenizes with add_special = false, parse_special = false.
      const std::vector<TokenId> ids = tok->encode(v.text, false, false);
      if (ids == v.ids) {
        ++passed;
      } else {
        ADD_FAILURE() << "text '" << v.text << "'\n  expected " << join(v.ids)
                      << "\n  got      " << join(ids);
      }
      // Both families lose nothing on valid UTF-8.
      if (utf8_is_valid(v.text)) {
        EXPECT_EQ(tok->decode(ids), v.text);
        ++round_trips;
      }
    }
    std::printf("%s (%s): %zu/%zu vectors exact, %zu round trips\n", name.c_str(),
                tok->vocab().model.c_str(), passed, vectors.size(), round_trips);
    EXPECT_EQ(passed, vectors.size());
    ++checked;
  }
  RecordProperty("vocabs_checked", static_cast<int>(checked));
}

}  // namespace
}  // namespace llmos
