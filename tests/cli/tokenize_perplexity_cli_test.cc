// `llmos tokenize` and `llmos perplexity` as a user runs them.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "support/cli_runner.h"
#include "support/mini_json.h"
#include "support/test_paths.h"

namespace llmos {
namespace {

using test::contains;
using test::run_cli;

constexpr const char* kSpmVocab = "vocab/ggml-vocab-llama-spm.gguf";
constexpr const char* kStories = "models/stories260K.gguf";

// The llama-spm test vectors: inputs and the expected ids (no BOS), in file order.
std::vector<std::pair<std::string, std::string>> spm_vectors() {
  const std::string inp = test::read_file(test::shared_path(std::string(kSpmVocab) + ".inp"));
  const std::string out = test::read_file(test::shared_path(std::string(kSpmVocab) + ".out"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0;;) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) break;
    inputs.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<std::string> lines;
  std::istringstream lines_in(out);
  for (std::string line; std::getline(lines_in, line);) {
    // .out lines start with a space before each id; the CLI separates ids by single spaces.
    const size_t first = line.find_first_not_of(' ');
    lines.push_back(first == std::string::npos ? "" : line.substr(first));
  }
  std::vector<std::pair<std::string, std::string>> v;
  for (size_t i = 0; i < inputs.size() && i < lines.size(); ++i) v.emplace_back(inputs[i], lines[i]);
  return v;
}

TEST(TokenizeCli, PrintsTheReferenceIdsOnOneLine) {
  LLMOS_REQUIRE_SHARED(kSpmVocab);
  const auto vectors = spm_vectors();
  ASSERT_GT(vectors.size(), 20u);
  int checked = 0;
  for (const auto& [text, ids] : vectors) {
    if (text.find('\0') != std::string::npos) continue;
    const std::string file = test::temp_dir() + "/tok-input.txt";
    std::ofstream(file, std::ios::binary) << text;
    // -f takes the bytes verbatim; control-token text is plain text as in the reference vectors.
    const auto r = run_cli({"tokenize", "-m", test::shared_path(kSpmVocab), "-f", file, "--no-parse-special"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, ids + "\n") << "input '" << text << "'";
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

TEST(TokenizeCli, PromptAndBosHandling) {
  LLMOS_REQUIRE_SHARED(kStories);
  const auto plain = run_cli({"tokenize", "-m", test::shared_path(kStories), "-p", "Once upon a time"});
  const auto with_bos = run_cli({"tokenize", "-m", test::shared_path(kStories), "-p", "Once upon a time", "--add-bos"});
  ASSERT_EQ(plain.status, 0) << plain.err;
  ASSERT_EQ(with_bos.status, 0) << with_bos.err;
  EXPECT_EQ(with_bos.out, "1 " + plain.out);
  EXPECT_FALSE(contains(plain.out, "  "));
  EXPECT_EQ(plain.out.back(), '\n');
  // The file's trailing newline is part of the text.
  const std::string file = test::temp_dir() + "/newline.txt";
  std::ofstream(file, std::ios::binary) << "Once upon a time\n";
  const auto from_file = run_cli({"tokenize", "-m", test::shared_path(kStories), "-f", file});
  ASSERT_EQ(from_file.status, 0) << from_file.err;
  EXPECT_NE(from_file.out, plain.out);
  EXPECT_EQ(from_file.out.rfind(plain.out.substr(0, plain.out.size() - 1), 0), 0u);
  // Empty text: an empty line.
  const auto empty = run_cli({"tokenize", "-m", test::shared_path(kStories), "-p", ""});
  EXPECT_EQ(empty.status, 0);
  EXPECT_EQ(empty.out, "\n");
}

TEST(TokenizeCli, BadArguments) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"tokenize", "-m", "x.gguf"},
           {"tokenize", "-m", "x.gguf", "-p", "a", "-f", "b"},
           {"tokenize", "-p", "a"},
           {"tokenize", "-m", "x.gguf", "-p", "a", "--bogus"}}) {
    const auto r = run_cli(args, "LLMOS_MODEL=");
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_TRUE(contains(r.err, "usage: llmos tokenize")) << r.err;
  }
  const auto missing = run_cli({"tokenize", "-m", test::shared_path(kStories), "-f", "/nonexistent/file.txt"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_TRUE(contains(missing.err, "/nonexistent/file.txt")) << missing.err;
}

TEST(PerplexityCli, PrintsProgressAndAFinalPplLine) {
  LLMOS_REQUIRE_SHARED(kStories);
  LLMOS_REQUIRE_SHARED("models/stories260K.greedy.json");
  std::string text;
  for (const auto& e : test::parse_json(test::read_file(test::shared_path("models/stories260K.greedy.json"))).array) {
    text += e.at("prompt").string + e.at("continuation").string + "\n";
  }
  const std::string file = test::temp_dir() + "/ppl.txt";
  std::ofstream(file, std::ios::binary) << text << text;
  const auto r = run_cli({"perplexity", "-m", test::shared_path(kStories), "-f", file, "-c", "64", "-b", "16",
                          "--chunks", "3", "-t", "2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "chunk 1/3")) << r.err;
  EXPECT_TRUE(contains(r.err, "chunk 3/3")) << r.err;
  ASSERT_EQ(r.out.rfind("PPL = ", 0), 0u) << r.out;
  const double ppl = std::stod(r.out.substr(6));
  EXPECT_GT(ppl, 1.0);
  EXPECT_LT(ppl, 10.0) << "stories260K scoring its own greedy text";
  // Batch size does not change the result.
  const auto whole = run_cli({"perplexity", "-m", test::shared_path(kStories), "-f", file, "-c", "64", "--chunks", "3"});
  ASSERT_EQ(whole.status, 0) << whole.err;
  EXPECT_NEAR(std::stod(whole.out.substr(6)), ppl, 1e-3 * ppl);
}

TEST(PerplexityCli, Errors) {
  LLMOS_REQUIRE_SHARED(kStories);
  const std::string file = test::temp_dir() + "/short.txt";
  std::ofstream(file, std::ios::binary) << "Once upon a time";
  const auto too_short = run_cli({"perplexity", "-m", test::shared_path(kStories), "-f", file, "-c", "128"});
  EXPECT_EQ(too_short.status, 1);
  EXPECT_TRUE(contains(too_short.err, "at least 128")) << too_short.err;
  EXPECT_TRUE(too_short.out.empty());
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"perplexity", "-m", "x.gguf"},
           {"perplexity", "-m", "x.gguf", "-f", "t.txt", "-c", "2"},
           {"perplexity", "-m", "x.gguf", "-f", "t.txt", "--chunks", "0"},
           {"perplexity", "-m", "x.gguf", "-f", "t.txt", "--kv-dtype", "q8_0"}}) {
    const auto r = run_cli(args);
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_TRUE(contains(r.err, "usage: llmos perplexity")) << r.err;
  }
}

}  // namespace
}  // namespace llmos
