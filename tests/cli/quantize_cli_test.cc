// `llmos quantize` as a user runs it: usage and exit codes, a per-tensor progress line on a
// non-terminal stderr, the summary on stdout, errors that leave no output file, and an output
// that `llmos generate` can run.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "io/gguf_reader.h"
#include "model/random_model.h"
#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace llmos {
namespace {

namespace fs = std::filesystem;
using test::contains;
using test::run_cli;

// The subcommand is wired into main.cc by the lead; until then there is nothing to run.
#define REQUIRE_QUANTIZE_COMMAND()                                                              \
  do {                                                                                          \
    const test::CliResult help = run_cli({"quantize", "--help"});                               \
    if (help.status != 0 || !contains(help.out, "IN.gguf OUT.gguf TYPE"))                       \
      GTEST_SKIP() << "'llmos quantize' is not wired into this build's llmos binary yet "       \
                      "(src/cli/main.cc); the library is tested by quantize_model_test";        \
  } while (0)

std::string model_path(const std::string& name, int layers = 4, int64_t ffn = 512) {
  const std::string path = test::temp_dir() + "/" + name;
  if (!fs::exists(path)) {
    RandomModelSpec spec;
    spec.dim = 256;
    spec.num_layers = layers;
    spec.num_heads = 8;
    spec.num_kv_heads = 4;
    spec.ffn_dim = ffn;
    write_random_model(spec, path);
  }
  return path;
}

size_t count_lines(const std::string& s, const std::string& part) {
  size_t n = 0;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string::npos) end = s.size();
    if (s.substr(start, end - start).find(part) != std::string::npos) ++n;
    start = end + 1;
  }
  return n;
}

TEST(QuantizeCli, HelpListsTheTypes) {
  REQUIRE_QUANTIZE_COMMAND();
  const test::CliResult r = run_cli({"quantize", "--help"});
  EXPECT_EQ(r.status, 0);
  for (const char* part : {"Q4_K_M", "Q5_K_M", "Q8_0", "BF16", "--threads", "--pure"}) {
    EXPECT_TRUE(contains(r.out, part)) << part << "\n" << r.out;
  }
}

TEST(QuantizeCli, QuantizesWithProgressAndSummary) {
  REQUIRE_QUANTIZE_COMMAND();
  const std::string in = model_path("cli-src.gguf");
  const std::string out = test::temp_dir() + "/cli-q4km.gguf";
  const test::CliResult r = run_cli({"quantize", "-t", "2", in, out, "q4_k_m"});
  ASSERT_EQ(r.status, 0) << r.err;
  const gguf::File src = gguf::File::open(in);
  const gguf::File dst = gguf::File::open(out);
  EXPECT_EQ(dst.get_int("general.file_type"), 15);
  ASSERT_EQ(dst.tensors().size(), src.tensors().size());
  // stderr is not a terminal here: one progress line per tensor, naming it and its types.
  for (const auto& t : dst.tensors()) {
    EXPECT_EQ(count_lines(r.err, " " + t.name + " "), 1u) << t.name << "\n" << r.err;
  }
  // q6_K: output, and attn_v and ffn_down of the "more bits" layers 2 and 3 of 4.
  EXPECT_EQ(count_lines(r.err, "f32 -> q6_K"), 5u) << r.err;
  EXPECT_TRUE(contains(r.err, "100.0%")) << r.err;
  EXPECT_FALSE(contains(r.err, "\r")) << "no carriage returns when stderr is not a terminal";
  // The summary: sizes, the type, the time.
  EXPECT_TRUE(contains(r.out, "Q4_K_M")) << r.out;
  EXPECT_TRUE(contains(r.out, "MiB")) << r.out;
  EXPECT_TRUE(contains(r.out, " s:")) << r.out;

  // The quantized model runs.
  const test::CliResult g = run_cli({"generate", "-m", out, "-p", "the big dog", "-n", "6", "--temp", "0"});
  EXPECT_EQ(g.status, 0) << g.err;
  EXPECT_EQ(g.out.rfind("the big dog", 0), 0u) << g.out;
}

TEST(QuantizeCli, TypeAliasesNumbersAndPure) {
  REQUIRE_QUANTIZE_COMMAND();
  const std::string in = model_path("cli-src.gguf");
  const std::string out = test::temp_dir() + "/cli-alias.gguf";
  ASSERT_EQ(run_cli({"quantize", in, out, "Q5_K"}).status, 0);
  EXPECT_EQ(gguf::File::open(out).get_int("general.file_type"), 17);
  ASSERT_EQ(run_cli({"quantize", in, out, "7"}).status, 0);
  EXPECT_EQ(gguf::File::open(out).get_int("general.file_type"), 7);
  ASSERT_EQ(run_cli({"quantize", "--pure", in, out, "Q4_K_M"}).status, 0);
  const gguf::File pure = gguf::File::open(out);
  EXPECT_EQ(pure.find_tensor("output.weight")->dtype, DType::kQ4_K);
  EXPECT_EQ(pure.find_tensor("blk.0.attn_v.weight")->dtype, DType::kQ4_K);
}

TEST(QuantizeCli, BadCommandLinesPrintUsageAndExit2) {
  REQUIRE_QUANTIZE_COMMAND();
  const std::string in = model_path("cli-src.gguf");
  const std::string out = test::temp_dir() + "/cli-bad.gguf";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"quantize"}, "expected IN.gguf OUT.gguf TYPE, got 0 arguments"},
      {{"quantize", in, out}, "got 2 arguments"},
      {{"quantize", in, out, "Q4_K_M", "extra"}, "got 4 arguments"},
      {{"quantize", in, out, "Q9_Z"}, "unknown type 'Q9_Z'; valid types: F32, F16, BF16"},
      {{"quantize", in, out, "IQ2_XXS"}, "llama.cpp type llmos quantize does not write"},
      {{"quantize", "--bogus", in, out, "Q8_0"}, "unknown option '--bogus'"},
      {{"quantize", in, out, "Q8_0", "-t"}, "needs a value"},
      {{"quantize", "-t", "0", in, out, "Q8_0"}, "--threads must be between 1"},
  };
  for (const auto& [args, message] : cases) {
    const test::CliResult r = run_cli(args);
    EXPECT_EQ(r.status, 2) << args.size() << ": " << r.err;
    EXPECT_TRUE(contains(r.err, message)) << message << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "usage: llmos quantize")) << r.err;
  }
  EXPECT_FALSE(fs::exists(out));
}

TEST(QuantizeCli, RuntimeErrorsExit1AndLeaveNoFile) {
  REQUIRE_QUANTIZE_COMMAND();
  const std::string dir = test::temp_dir() + "/cli-errors";
  fs::create_directories(dir);
  const std::string in = model_path("cli-src.gguf");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"quantize", dir + "/missing.gguf", dir + "/out.gguf", "Q8_0"}, "missing.gguf"},
      {{"quantize", in, in, "Q8_0"}, "is the input file"},
      {{"quantize", in, dir + "/no/such/dir/out.gguf", "Q8_0"}, "no/such/dir/out.gguf"},
      {{"quantize", model_path("cli-odd.gguf", 2, 336), dir + "/out.gguf", "Q8_0"},
       "is not a multiple of the q8_0 block size 32"},
  };
  for (const auto& c : cases) {
    const test::CliResult r = run_cli(c.args);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(contains(r.err, "llmos quantize: error: ")) << r.err;
    EXPECT_TRUE(contains(r.err, c.message)) << c.message << "\n" << r.err;
  }
  EXPECT_TRUE(fs::is_empty(dir)) << "an output or temporary file was left behind";
  // The refused in-place run left the input intact.
  EXPECT_NO_THROW(gguf::File::open(in));
}

}  // namespace
}  // namespace llmos
