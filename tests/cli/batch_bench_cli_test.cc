// `llmos batch` and `llmos bench` as a user runs them.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <cctype>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "engine/generator.h"
#include "model/llama_model.h"
#include "model/random_model.h"
#include "support/cli_runner.h"
#include "support/mini_json.h"
#include "support/test_paths.h"

namespace llmos {
namespace {

using test::contains;
using test::JsonValue;
using test::run_cli;
using test::shell_quote;

constexpr const char* kStories = "models/stories260K.gguf";

std::string write_file(const std::string& name, const std::string& content) {
  const std::string path = test::temp_dir() + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// The embedded default model, cached under a private HOME.
std::string default_model_env() {
  return "LLMOS_MODEL= XDG_CACHE_HOME= HOME=" + shell_quote(test::temp_dir() + "/home");
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Written here rather than taken from the CLI, so the check is independent of it.
bool is_valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

// Parses batch output: one JSON object per line, nothing else.
std::vector<JsonValue> parse_batch_output(const std::string& out) {
  std::vector<JsonValue> v;
  for (const std::string& line : split_lines(out)) {
    EXPECT_TRUE(is_valid_utf8(line)) << line;
    for (char c : line)
      EXPECT_GE(static_cast<unsigned char>(c), 0x20u) << "raw control byte in " << line;
    v.push_back(test::parse_json(line));
  }
  return v;
}

std::vector<int32_t> tokens_of(const JsonValue& line) {
  std::vector<int32_t> t;
  for (const JsonValue& x : line.at("tokens").array) t.push_back(static_cast<int32_t>(x.number));
  return t;
}

// The number printed right before " <what>" in stderr (e.g. "12 preemptions").
int64_t stat_from(const std::string& err, const std::string& what) {
  for (size_t at = err.find(" " + what); at != std::string::npos;
       at = err.find(" " + what, at + 1)) {
    size_t begin = at;
    while (begin > 0 && std::isdigit(static_cast<unsigned char>(err[begin - 1]))) --begin;
    if (begin < at) return std::stoll(err.substr(begin, at - begin));
  }
  ADD_FAILURE() << "no '<number> " << what << "' in stderr: " << err;
  return -1;
}

std::shared_ptr<LlamaModel> load_stories() {
  BackendOptions o;
  o.num_threads = 1;
  return LlamaModel::load(test::shared_path(kStories), create_backend(o));
}

TEST(BatchCli, OneJsonLinePerPromptInInputOrder) {
  LLMOS_REQUIRE_SHARED(kStories);
  // Lines of very different lengths, an empty one in the middle (BOS only), and a final
  // newline that does not make a prompt.
  const std::vector<std::string> prompts = {
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park",
      "Tom",
      "",
      "The sun was",
      "Lily and Tom went to the park to play with a big red ball",
      "A"};
  std::string file_text;
  for (const auto& p : prompts) file_text += p + "\n";
  const std::string file = write_file("order.txt", file_text);
  const auto r = run_cli({"batch", "-m", test::shared_path(kStories), "-f", file, "-n", "10",
                          "--seed", "5", "--parallel", "3"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto lines = parse_batch_output(r.out);
  ASSERT_EQ(lines.size(), prompts.size()) << r.out;
  auto model = load_stories();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(lines[i].at("prompt").string, prompts[i]);
    const auto tokens = tokens_of(lines[i]);
    EXPECT_GE(tokens.size(), 1u);
    EXPECT_LE(tokens.size(), 10u);
    const std::string reason = lines[i].at("finish_reason").string;
    EXPECT_TRUE(reason == "length" || reason == "eos") << reason;
    if (reason == "length") {
      EXPECT_EQ(tokens.size(), 10u);
    }
    EXPECT_EQ(lines[i].object.count("error"), 0u);
    // The text is the continuation: the pieces of the generated tokens.
    std::string text;
    for (int32_t t : tokens) text += model->tokenizer().token_to_piece(t);
    EXPECT_EQ(lines[i].at("text").string, text);
  }
  EXPECT_TRUE(contains(r.err, "6 requests")) << r.err;
  EXPECT_TRUE(contains(r.err, "tokens/s")) << r.err;
  EXPECT_TRUE(contains(r.err, "prefix cache on")) << r.err;
  // A file without a final newline gives the same prompts.
  const std::string no_newline =
      write_file("order2.txt", file_text.substr(0, file_text.size() - 1));
  const auto again = run_cli({"batch", "-m", test::shared_path(kStories), "-f", no_newline, "-n",
                              "10", "--seed", "5", "--parallel", "2"});
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
}

TEST(BatchCli, LineIUsesSeedSPlusI) {
  LLMOS_REQUIRE_SHARED(kStories);
  const std::string file =
      write_file("seeds.txt", "Once upon a time\nOnce upon a time\nOnce upon a time\n");
  auto run = [&](const std::string& seed) {
    const auto r = run_cli({"batch", "-m", test::shared_path(kStories), "-f", file, "-n", "16",
                            "--temp", "1", "--seed", seed, "--parallel", "1"});
    EXPECT_EQ(r.status, 0) << r.err;
    std::vector<std::vector<int32_t>> t;
    for (const auto& line : parse_batch_output(r.out)) t.push_back(tokens_of(line));
    return t;
  };
  const auto a = run("100");
  const auto b = run("101");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_NE(a[0], a[1]);  // same prompt, different seeds
  EXPECT_EQ(b[0], a[1]);  // seed 101 + 0 == seed 100 + 1
  EXPECT_EQ(b[1], a[2]);
  EXPECT_EQ(run("100"), a);  // reproducible
}

TEST(BatchCli, GreedyMatchesGenerateAloneUnderPreemption) {
  LLMOS_REQUIRE_SHARED(kStories);
  const int n = 24;
  const std::vector<std::string> prompts = {"Once upon a time",
                                            "Tom and Lily went to the",
                                            "The sun was",
                                            "Once upon a time, there was a little girl",
                                            "Once upon a time, there was a little boy named Tom",
                                            "",
                                            "Lily"};
  std::string file_text;
  for (const auto& p : prompts) file_text += p + "\n";
  const std::string file = write_file("greedy.txt", file_text);

  // The oracles: `llmos generate` for the text, the same Generator in-process for the ids.
  auto model = load_stories();
  std::vector<std::string> generated_text;
  std::vector<GenerateResult> alone;
  for (const auto& p : prompts) {
    const auto g = run_cli({"generate", "-m", test::shared_path(kStories), "-p", p, "-n",
                            std::to_string(n), "--temp", "0"});
    ASSERT_EQ(g.status, 0) << g.err;
    generated_text.push_back(g.out);
    GenerateOptions o;
    o.max_tokens = n;
    o.sampling.temperature = 0.0f;
    Generator gen(*model, o);
    alone.push_back(gen.generate(p));
  }

  // 16 blocks of 4 tokens hold one request (<= 38 tokens) but not four: requests get
  // preempted and must still produce exactly what they produce alone.
  const std::vector<std::vector<std::string>> variants = {
      {}, {"--no-prefix-cache"}, {"--preemption", "swap"}};
  for (const auto& extra : variants) {
    std::vector<std::string> args = {"batch",
                                     "-m",
                                     test::shared_path(kStories),
                                     "-f",
                                     file,
                                     "-n",
                                     std::to_string(n),
                                     "--temp",
                                     "0",
                                     "--parallel",
                                     "4",
                                     "--kv-blocks",
                                     "16",
                                     "--block-size",
                                     "4"};
    args.insert(args.end(), extra.begin(), extra.end());
    const std::string label =
        extra.empty() ? "default" : extra[0] + (extra.size() > 1 ? " " + extra[1] : "");
    const auto r = run_cli(args);
    ASSERT_EQ(r.status, 0) << label << ": " << r.err;
    EXPECT_GT(stat_from(r.err, "preemptions"), 0) << label << ": " << r.err;
    if (!extra.empty() && extra[0] == "--no-prefix-cache") {
      EXPECT_TRUE(contains(r.err, "prefix cache off")) << r.err;
    }
    const auto lines = parse_batch_output(r.out);
    ASSERT_EQ(lines.size(), prompts.size()) << label;
    for (size_t i = 0; i < prompts.size(); ++i) {
      SCOPED_TRACE(label + ", prompt '" + prompts[i] + "'");
      EXPECT_EQ(lines[i].at("prompt").string, prompts[i]);
      std::vector<int32_t> tokens = tokens_of(lines[i]);
      const std::string reason = lines[i].at("finish_reason").string;
      // The engine keeps the end-of-sequence token; the single-sequence generator drops it.
      if (reason == "eos") {
        ASSERT_FALSE(tokens.empty());
        EXPECT_TRUE(model->tokenizer().is_eog(tokens.back()));
        tokens.pop_back();
        EXPECT_EQ(alone[i].finish, FinishReason::kEos);
      } else {
        EXPECT_EQ(reason, "length");
        EXPECT_EQ(alone[i].finish, FinishReason::kLength);
      }
      EXPECT_EQ(tokens, alone[i].tokens);
      EXPECT_EQ(prompts[i] + lines[i].at("text").string, generated_text[i]);
    }
  }
}

TEST(BatchCli, EscapesAnyPromptBytes) {
  // Quotes, backslashes, control characters (no newline: it separates prompts), DEL, valid
  // multi-byte UTF-8, and bytes that are not UTF-8 at all.
  const std::vector<std::string> prompts = {
      "say \"hi\" to C:\\dir\\", "tab\there\x01\x1f end\r", "del\x7f",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
      "bad \xff\xfe, cut \xe2\x82, lone \x80, overlong \xc0\xaf, "
      "surrogate \xed\xa0\x80"};
  // What a correct writer gives for the last one: one U+FFFD per byte that starts no valid
  // sequence.
  const std::string r_fffd = "\xef\xbf\xbd";
  const std::string expected_last = "bad " + r_fffd + r_fffd + ", cut " + r_fffd + r_fffd +
                                    ", lone " + r_fffd + ", overlong " + r_fffd + r_fffd +
                                    ", surrogate " + r_fffd + r_fffd + r_fffd;
  std::string file_text;
  for (const auto& p : prompts) file_text += p + "\n";
  const std::string file = write_file("escape.txt", file_text);
  const auto r = run_cli({"batch", "-f", file, "-n", "3", "--seed", "1"}, default_model_env());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto lines = parse_batch_output(r.out);
  ASSERT_EQ(lines.size(), prompts.size()) << r.out;
  for (size_t i = 0; i + 1 < prompts.size(); ++i)
    EXPECT_EQ(lines[i].at("prompt").string, prompts[i]);
  EXPECT_EQ(lines.back().at("prompt").string, expected_last);
  EXPECT_TRUE(contains(r.out, R"("say \"hi\" to C:\\dir\\")")) << r.out;
  EXPECT_TRUE(contains(r.out, R"(tab\u0009here\u0001\u001f end\u000d)")) << r.out;
  EXPECT_TRUE(contains(r.out, R"(del\u007f)")) << r.out;
}

TEST(BatchCli, EmptyLineNeedsABosToken) {
  LLMOS_REQUIRE_SHARED("vocab/ggml-vocab-gpt-2.gguf");
  // A tiny random model with GPT-2's vocabulary, which adds no BOS token.
  RandomModelSpec spec;
  spec.dim = 32;
  spec.num_heads = 2;
  spec.num_kv_heads = 1;
  spec.ffn_dim = 64;
  spec.num_layers = 1;
  spec.vocab_from = test::shared_path("vocab/ggml-vocab-gpt-2.gguf");
  const std::string model = test::temp_dir() + "/gpt2-vocab-model.gguf";
  write_random_model(spec, model);
  const std::string file = write_file("gap.txt", "hello\nworld\n\nagain\n");
  const auto r = run_cli({"batch", "-m", model, "-f", file, "-n", "2"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "line 3")) << r.err;
  EXPECT_TRUE(contains(r.err, "BOS")) << r.err;
  EXPECT_EQ(r.out, "");  // checked before any output
  // Without the empty line it runs.
  const auto ok =
      run_cli({"batch", "-m", model, "-f", write_file("nogap.txt", "hello\nworld\n"), "-n", "2"});
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(split_lines(ok.out).size(), 2u);
}

TEST(BatchCli, BadArgumentsAndMissingFile) {
  const std::string file = write_file("one.txt", "hello\n");
  const std::vector<std::vector<std::string>> bad = {
      {"batch"},                                   // no -f
      {"batch", "-f", file, "--parallel", "0"},    //
      {"batch", "-f", file, "-n", "0"},            //
      {"batch", "-f", file, "--kv-blocks", "0"},   //
      {"batch", "-f", file, "--block-size", "0"},  //
      {"batch", "-f", file, "--preemption", "later"},
      {"batch", "-f", file, "--priority", "urgent"},
      {"batch", "-f", file, "--kv-dtype", "q4_0"},
      {"batch", "-f", file, "--temp", "-1"},
      {"batch", "-f", file, "--bogus"},
  };
  for (const auto& args : bad) {
    const auto r = run_cli(args, default_model_env());
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.status, 2) << joined << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "usage: llmos batch")) << joined << "\n" << r.err;
    EXPECT_EQ(r.out, "");
  }
  const std::string missing = test::temp_dir() + "/no-such-prompts.txt";
  const auto r = run_cli({"batch", "-f", missing}, default_model_env());
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(contains(r.err, missing)) << r.err;
  EXPECT_FALSE(contains(r.err, "usage:")) << r.err;
  const std::string dir = test::temp_dir();
  const auto d = run_cli({"batch", "-f", dir}, default_model_env());
  EXPECT_EQ(d.status, 1) << d.err;
  EXPECT_TRUE(contains(d.err, "prompt file '" + dir + "'")) << d.err;
  const auto help = run_cli({"batch", "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_TRUE(contains(help.out, "--parallel")) << help.out;
}

TEST(BatchCli, RequestThatCannotFitIsReportedOnItsLine) {
  // 2 blocks of 4 tokens: "x" (BOS + 1 token) plus 3 generated tokens fits, a long prompt
  // does not even alone. Its line says so; the others run; the exit status says one failed.
  const std::string file =
      write_file("fit.txt", "a\nthe big dog and the little cat went to the park\nb\n");
  const auto r = run_cli({"batch", "-f", file, "-n", "3", "--kv-blocks", "2", "--block-size", "4"},
                         default_model_env());
  EXPECT_EQ(r.status, 1) << r.err;
  const auto lines = parse_batch_output(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0].at("finish_reason").string, "length");
  EXPECT_EQ(lines[1].at("finish_reason").string, "error");
  EXPECT_TRUE(contains(lines[1].at("error").string, "KV cache")) << lines[1].at("error").string;
  EXPECT_EQ(lines[2].at("finish_reason").string, "length");
  EXPECT_EQ(lines[0].object.count("error"), 0u);
  EXPECT_TRUE(contains(r.err, "1 of 3 requests failed")) << r.err;
}

struct BenchRow {
  double pp, tg, b, n_kv, t_pp, s_pp, t_tg, s_tg, t, s, ceil, of_ceil;
};

std::vector<BenchRow> parse_table(const std::string& out) {
  std::vector<BenchRow> rows;
  const auto lines = split_lines(out);
  size_t header = 0;
  while (header < lines.size() && lines[header].rfind("| ", 0) != 0) ++header;
  EXPECT_LT(header + 1, lines.size()) << out;
  if (header + 1 >= lines.size()) return rows;
  std::string compact;
  for (char c : lines[header]) {
    if (c != ' ') compact += c;
  }
  EXPECT_EQ(compact, "|PP|TG|B|N_KV|T_PPs|S_PPt/s|T_TGs|S_TGt/s|Ts|St/s|S_TGceil|ofceil|");
  EXPECT_EQ(lines[header + 1].find_first_not_of("|-"), std::string::npos) << lines[header + 1];
  for (size_t i = header + 2; i < lines.size(); ++i) {
    BenchRow row{};
    double* f = &row.pp;
    std::istringstream in(lines[i]);
    char bar = 0;
    in >> bar;
    for (int k = 0; k < 11; ++k) in >> f[k] >> bar;
    // The last column is a percentage.
    char percent = 0;
    in >> row.of_ceil >> percent >> bar;
    EXPECT_EQ(percent, '%') << lines[i];
    EXPECT_FALSE(in.fail()) << lines[i];
    rows.push_back(row);
  }
  return rows;
}

TEST(BenchCli, PrintsOneRowPerBatchSize) {
  const auto r = run_cli({"bench", "--batch", "1,3,2", "-p", "16", "-n", "8", "--reps", "2"},
                         default_model_env());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "model: llama 'llmos embedded default")) << r.out;
  EXPECT_TRUE(contains(r.out, "threads")) << r.out;
  const auto rows = parse_table(r.out);
  ASSERT_EQ(rows.size(), 3u) << r.out;
  const double batches[] = {1, 3, 2};
  for (size_t i = 0; i < rows.size(); ++i) {
    const BenchRow& row = rows[i];
    EXPECT_EQ(row.pp, 16);
    EXPECT_EQ(row.tg, 8);
    EXPECT_EQ(row.b, batches[i]);
    EXPECT_EQ(row.n_kv, batches[i] * 24);
    for (double v : {row.t_pp, row.s_pp, row.t_tg, row.s_tg, row.t, row.s})
      EXPECT_GT(v, 0.0) << r.out;
    EXPECT_NEAR(row.t, row.t_pp + row.t_tg, 2e-4);
    // Speeds are the token counts over the (unrounded) times.
    EXPECT_NEAR(row.s_pp * row.t_pp, row.b * 16, row.b * 16 * 0.05 + row.s_pp * 1e-4);
    EXPECT_NEAR(row.s_tg * row.t_tg, row.b * 8, row.b * 8 * 0.05 + row.s_tg * 1e-4);
    EXPECT_NEAR(row.s * row.t, row.n_kv, row.n_kv * 0.05 + row.s * 1e-4);
    // The decode ceiling, and S_TG as a fraction of it.
    EXPECT_GT(row.ceil, 0.0);
    EXPECT_NEAR(row.of_ceil, 100.0 * row.s_tg / row.ceil, 0.06 + row.of_ceil * 1e-3);
  }
  EXPECT_TRUE(contains(r.out, "S_TG ceiling: B x read bandwidth")) << r.out;
}

TEST(BenchCli, RejectsBadArguments) {
  const std::vector<std::vector<std::string>> bad = {{"--batch", ""},
                                                     {"--batch", "0"},
                                                     {"--batch", "1,,4"},
                                                     {"--batch", "4,"},
                                                     {"--batch", "-2"},
                                                     {"--batch", "x"},
                                                     {"--batch", "1", "-p", "0"},
                                                     {"--batch", "1", "-n", "0"},
                                                     {"-n", "-3"},
                                                     {"--reps", "0"},
                                                     {"--kv-dtype", "q8_0"},
                                                     {"--what"}};
  for (const auto& extra : bad) {
    std::vector<std::string> args = {"bench"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_cli(args, default_model_env());
    EXPECT_EQ(r.status, 2) << extra[0] << " " << (extra.size() > 1 ? extra[1] : "") << "\n"
                           << r.err;
    EXPECT_TRUE(contains(r.err, "usage: llmos bench")) << r.err;
    EXPECT_EQ(r.out, "");
  }
  // Longer than the model's context: a runtime error naming it.
  const auto r = run_cli({"bench", "--batch", "1", "-p", "1000", "-n", "100"}, default_model_env());
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "context length")) << r.err;
}

}  // namespace
}  // namespace llmos
