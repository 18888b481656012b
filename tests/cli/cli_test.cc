// The `llmos` binary as a user runs it: exact output on stdout, diagnostics on stderr, usage
// and exit status 2 for bad command lines, exit status 1 with a clear message for bad files.
#include <gtest/gtest.h>

#include <fstream>

#include "model/random_model.h"
#include "support/cli_runner.h"
#include "support/mini_json.h"
#include "support/test_paths.h"

namespace llmos {
namespace {

using RunResult = test::CliResult;
using test::contains;
using test::run_cli;
using test::shell_quote;

TEST(Cli, NoArgumentsPrintsUsageAndFails) {
  const RunResult r = run_cli({});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "usage: llmos")) << r.err;
}

TEST(Cli, UnknownCommandFails) {
  const RunResult r = run_cli({"frobnicate"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "unknown command 'frobnicate'")) << r.err;
}

TEST(Cli, HelpAndVersionSucceed) {
  EXPECT_EQ(run_cli({"--help"}).status, 0);
  const RunResult v = run_cli({"--version"});
  EXPECT_EQ(v.status, 0);
  EXPECT_TRUE(contains(v.out, "llmos ")) << v.out;
  const RunResult g = run_cli({"generate", "--help"});
  EXPECT_EQ(g.status, 0);
  EXPECT_TRUE(contains(g.out, "--temp")) << g.out;
}

TEST(Cli, BadGenerateArgumentsPrintUsageAndExit2) {
  const std::vector<std::vector<std::string>> bad = {
      {"generate", "--bogus"},
      {"generate", "-n"},
      {"generate", "-n", "ten"},
      {"generate", "-n", "-5"},
      {"generate", "--temp", "-1"},
      {"generate", "--top-p", "1.5"},
      {"generate", "--min-p", "nan"},
      {"generate", "--seed", "-3"},
      {"generate", "-t", "0"},
      {"generate", "--kv-dtype", "q4_0"},
      {"generate", "--device", "tpu"},
      {"info", "--bogus"},
  };
  for (const auto& args : bad) {
    const RunResult r = run_cli(args, "LLMOS_MODEL=");
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.status, 2) << joined << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "usage: llmos")) << joined << "\n" << r.err;
    EXPECT_TRUE(r.out.empty()) << joined;
  }
}

TEST(Cli, InfoWithoutModelIsAUsageError) {
  const RunResult r = run_cli({"info"}, "LLMOS_MODEL=");
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "no model given")) << r.err;
}

TEST(Cli, MissingModelFileIsAClearError) {
  const std::string path = test::temp_dir() + "/does-not-exist.gguf";
  const RunResult r = run_cli({"generate", "-m", path, "-n", "4"});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, path)) << r.err;
}

TEST(Cli, MalformedModelFileIsAClearError) {
  const std::string path = test::temp_dir() + "/garbage.gguf";
  std::ofstream(path) << "GGUF but not really a model file";
  const RunResult r = run_cli({"info", "-m", path});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, path)) << r.err;
}

TEST(Cli, PromptBeyondTheContextFailsBeforePrintingAnything) {
  RandomModelSpec spec;
  spec.context_length = 8;
  const std::string path = test::temp_dir() + "/short-context.gguf";
  write_random_model(spec, path);
  const RunResult r = run_cli({"generate", "-m", path, "-p", "the big dog and the little cat went to the park"});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_TRUE(contains(r.err, "more than the context length 8")) << r.err;
}

TEST(Cli, GreedyGenerationPrintsPromptAndReferenceContinuation) {
  LLMOS_REQUIRE_SHARED("models/stories260K.gguf");
  LLMOS_REQUIRE_SHARED("models/stories260K.greedy.json");
  const auto doc = test::parse_json(test::read_file(test::shared_path("models/stories260K.greedy.json")));
  for (const auto& entry : doc.array) {
    const std::string prompt = entry.at("prompt").string;
    const RunResult r = run_cli({"generate", "-m", test::shared_path("models/stories260K.gguf"), "-p", prompt,
                                 "-n", std::to_string(static_cast<int>(entry.at("n_predict").number)), "--temp",
                                 "0"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, prompt + entry.at("continuation").string);
    EXPECT_TRUE(contains(r.err, "tokens/s")) << r.err;
  }
}

TEST(Cli, EnvironmentVariableSelectsTheModel) {
  LLMOS_REQUIRE_SHARED("models/stories260K.gguf");
  const RunResult r = run_cli({"generate", "-p", "Once upon a time", "-n", "5", "--temp", "0"},
                              "LLMOS_MODEL=" + shell_quote(test::shared_path("models/stories260K.gguf")));
  EXPECT_EQ(r.status, 0) << r.err;
  // Five greedy tokens of the reference continuation (see stories260K.greedy.json).
  const std::string reference = "Once upon a time, there was a little girl named Lily.";
  EXPECT_GT(r.out.size(), std::string("Once upon a time").size());
  EXPECT_EQ(reference.rfind(r.out, 0), 0u) << r.out;
}

TEST(Cli, EmbeddedDefaultModelRunsAndIsLabelled) {
  const std::string home = test::temp_dir() + "/home";
  const RunResult r = run_cli({"generate", "-p", "Once upon a time", "-n", "12", "--seed", "3"},
                              "LLMOS_MODEL= XDG_CACHE_HOME= HOME=" + shell_quote(home));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "embedded default model")) << r.err;
  EXPECT_TRUE(contains(r.err, "RANDOM weights")) << r.err;
  EXPECT_TRUE(contains(r.err, "tokens/s")) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time", 0), 0u) << r.out;
  EXPECT_GT(r.out.size(), std::string("Once upon a time").size());
  // Same seed, same text.
  const RunResult again = run_cli({"generate", "-p", "Once upon a time", "-n", "12", "--seed", "3"},
                                  "LLMOS_MODEL= XDG_CACHE_HOME= HOME=" + shell_quote(home));
  EXPECT_EQ(again.out, r.out);
}

TEST(Cli, InfoDescribesTheModel) {
  LLMOS_REQUIRE_SHARED("models/stories260K.gguf");
  const RunResult r = run_cli({"info", "-m", test::shared_path("models/stories260K.gguf")});
  EXPECT_EQ(r.status, 0) << r.err;
  for (const char* expected : {"architecture:    llama", "layers:          5", "heads:           8 (KV heads 4",
                               "tokenizer:       llama, 512 tokens", "blk.4.ffn_down.weight", "tensors (48)"}) {
    EXPECT_TRUE(contains(r.out, expected)) << "missing '" << expected << "' in\n" << r.out;
  }
}

}  // namespace
}  // namespace llmos
