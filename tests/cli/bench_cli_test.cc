// `llmos bench` in its default mode (pp/tg of one sequence, like llama-bench) and the parts it
// shares with --batch: the ceilings measured at start, the ceiling of each test, --json.
// The expected ceilings are recomputed here from the GGUF file and the printed machine
// ceilings, independently of the CLI's own arithmetic.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "io/gguf_reader.h"
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

std::string default_model_env() {
  return "LLMOS_MODEL= XDG_CACHE_HOME= HOME=" + shell_quote(test::temp_dir() + "/home");
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  for (size_t i = 1; i < line.size(); ++i) {  // past the leading '|'
    if (line[i] == '|') {
      const size_t b = cell.find_first_not_of(' '), e = cell.find_last_not_of(' ');
      out.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
      cell.clear();
    } else {
      cell += line[i];
    }
  }
  return out;
}

double number(const std::string& s) {
  size_t used = 0;
  const double v = std::stod(s, &used);
  EXPECT_EQ(used, s.size()) << "'" << s << "' is not a number";
  return v;
}

struct Row {
  std::string model, size, params, backend, test;
  int threads = 0;
  double tps = 0, std = 0, ceiling = 0, fraction = 0;
};

// The markdown table: header, separator, one row per test.
std::vector<Row> parse_table(const std::string& out) {
  const auto lines = split_lines(out);
  size_t h = 0;
  while (h < lines.size() && lines[h].rfind("| ", 0) != 0) ++h;
  EXPECT_LT(h + 1, lines.size()) << out;
  if (h + 1 >= lines.size()) return {};
  EXPECT_EQ(cells(lines[h]),
            (std::vector<std::string>{"model", "size", "params", "backend", "threads", "test",
                                      "t/s", "ceiling t/s", "of ceil"}))
      << lines[h];
  EXPECT_EQ(lines[h + 1].find_first_not_of("|-: "), std::string::npos) << lines[h + 1];
  EXPECT_EQ(cells(lines[h + 1]).size(), 9u) << lines[h + 1];
  std::vector<Row> rows;
  for (size_t i = h + 2; i < lines.size(); ++i) {
    const auto c = cells(lines[i]);
    EXPECT_EQ(c.size(), 9u) << lines[i];
    if (c.size() != 9) continue;
    Row r;
    r.model = c[0];
    r.size = c[1];
    r.params = c[2];
    r.backend = c[3];
    r.threads = static_cast<int>(number(c[4]));
    r.test = c[5];
    const size_t pm = c[6].find(" ± ");
    EXPECT_NE(pm, std::string::npos) << c[6];
    if (pm == std::string::npos) continue;
    r.tps = number(c[6].substr(0, pm));
    r.std = number(c[6].substr(pm + 4));
    r.ceiling = number(c[7]);
    EXPECT_EQ(c[8].back(), '%') << c[8];
    r.fraction = number(c[8].substr(0, c[8].size() - 1)) / 100.0;
    rows.push_back(r);
  }
  return rows;
}

// What the forward pass of the model in `path` reads and computes, from its tensor table.
struct Expected {
  double decode_bytes = 0;   // bytes of weights one decode token reads
  double layer_params = 0;   // matmul weight elements of all layers
  double output_params = 0;  // of the output matrix
  bool all_f32 = true, all_quantized = true;
};

Expected expected_costs(const std::string& path) {
  const gguf::File f = gguf::File::open(path);
  Expected e;
  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  const gguf::TensorInfo* out = f.find_tensor("output.weight");
  EXPECT_NE(embd, nullptr);
  if (embd == nullptr) return e;
  for (const gguf::TensorInfo& t : f.tensors()) {
    double n = 1;
    for (int64_t d : t.shape) n *= static_cast<double>(d);
    if (t.name != "token_embd.weight") e.decode_bytes += static_cast<double>(t.nbytes);
    if (t.name.rfind("blk.", 0) == 0 && t.shape.size() == 2) {
      e.layer_params += n;
      e.all_f32 = e.all_f32 && t.dtype == DType::kF32;
      e.all_quantized = e.all_quantized && dtype_is_quantized(t.dtype);
    }
    if (t.name == "output.weight") e.output_params = n;
  }
  const double embd_rows = static_cast<double>(embd->shape[0]);
  if (out == nullptr) {  // tied: the table is the output matrix
    e.decode_bytes += static_cast<double>(embd->nbytes);
    e.output_params = embd_rows * static_cast<double>(embd->shape[1]);
  } else {
    e.decode_bytes += static_cast<double>(embd->nbytes) / embd_rows;
  }
  return e;
}

void expect_rel_near(double actual, double expected, double rel, const std::string& what) {
  EXPECT_NEAR(actual, expected, std::abs(expected) * rel) << what;
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Checks one record's shared fields and returns its machine ceilings.
const JsonValue& check_common(const JsonValue& rec, int reps, int threads) {
  for (const char* key : {"test", "model", "model_type", "model_size", "model_n_params", "backend",
                          "threads", "reps", "n_prompt", "n_gen", "batch", "tokens_per_second",
                          "samples", "ceiling", "ceiling_fraction", "ceilings"}) {
    EXPECT_EQ(rec.object.count(key), 1u) << "missing " << key;
  }
  EXPECT_EQ(rec.at("threads").number, threads);
  EXPECT_EQ(rec.at("reps").number, reps);
  EXPECT_GT(rec.at("model_size").number, 0);
  EXPECT_GT(rec.at("model_n_params").number, 0);
  const double tps = rec.at("tokens_per_second").number;
  EXPECT_GT(tps, 0.0);
  EXPECT_TRUE(std::isfinite(tps));
  const auto& samples = rec.at("samples").array;
  EXPECT_EQ(samples.size(), static_cast<size_t>(reps));
  std::vector<double> s;
  for (const JsonValue& v : samples) {
    EXPECT_GT(v.number, 0.0);
    s.push_back(v.number);
  }
  if (!s.empty()) {
    EXPECT_GE(tps, *std::min_element(s.begin(), s.end()) * (1 - 1e-12));
    EXPECT_LE(tps, *std::max_element(s.begin(), s.end()) * (1 + 1e-12));
  }
  const double ceiling = rec.at("ceiling").number;
  EXPECT_GT(ceiling, 0.0);
  EXPECT_GT(rec.at("ceiling_fraction").number, 0.0);
  expect_rel_near(rec.at("ceiling_fraction").number, tps / ceiling, 1e-9, "ceiling_fraction");
  const JsonValue& c = rec.at("ceilings");
  EXPECT_EQ(c.at("threads").number, threads);
  EXPECT_GT(c.at("read_bandwidth_gb_s").number, 0.0);
  EXPECT_GT(c.at("int8_gops").number, 0.0);
  EXPECT_GT(c.at("fp32_gflops").number, 0.0);
  EXPECT_GE(c.at("bandwidth_buffer_bytes").number, double(1 << 29));
  const JsonValue& bf16 = c.at("bf16_gflops");
  EXPECT_TRUE(bf16.kind == JsonValue::Kind::kNull || bf16.number > 0);
  return c;
}

TEST(BenchLlamaCli, PrintsAMarkdownTableWithCeilings) {
  LLMOS_REQUIRE_SHARED(kStories);
  const auto r = run_cli(
      {"bench", "-m", test::shared_path(kStories), "-p", "16", "-n", "8", "-r", "2", "-t", "2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "ceilings (measured now")) << r.out;
  for (const char* what : {"read bandwidth", "GB/s", "int8", "GOPS", "fp32", "GFLOP/s", "bf16",
                           "median ± sample std dev over 2 rep(s)"}) {
    EXPECT_TRUE(contains(r.out, what)) << what << "\n" << r.out;
  }
  const auto rows = parse_table(r.out);
  ASSERT_EQ(rows.size(), 2u) << r.out;
  EXPECT_EQ(rows[0].test, "pp16");
  EXPECT_EQ(rows[1].test, "tg8");
  for (const Row& row : rows) {
    EXPECT_EQ(row.model, "llama 293K F32");
    EXPECT_EQ(row.params, "0.29 M");
    EXPECT_EQ(row.threads, 2);
    EXPECT_EQ(row.backend.rfind("CPU", 0), 0u) << row.backend;
    EXPECT_GT(row.tps, 0.0);
    EXPECT_GE(row.std, 0.0);
    EXPECT_GT(row.ceiling, 0.0);
    EXPECT_GT(row.fraction, 0.0);
    // The fraction is the printed rate over the printed ceiling (both rounded).
    EXPECT_NEAR(row.fraction, row.tps / row.ceiling, 0.0006 + row.tps / row.ceiling * 1e-3);
  }
}

TEST(BenchLlamaCli, ZeroSkipsATest) {
  LLMOS_REQUIRE_SHARED(kStories);
  const std::string model = test::shared_path(kStories);
  const auto tg_only = run_cli({"bench", "-m", model, "-p", "0", "-n", "4", "-r", "1"});
  ASSERT_EQ(tg_only.status, 0) << tg_only.err;
  const auto a = parse_table(tg_only.out);
  ASSERT_EQ(a.size(), 1u) << tg_only.out;
  EXPECT_EQ(a[0].test, "tg4");
  EXPECT_EQ(a[0].std, 0.0);  // one rep
  const auto pp_only = run_cli({"bench", "-m", model, "-p", "8", "-n", "0", "-r", "1"});
  ASSERT_EQ(pp_only.status, 0) << pp_only.err;
  const auto b = parse_table(pp_only.out);
  ASSERT_EQ(b.size(), 1u) << pp_only.out;
  EXPECT_EQ(b[0].test, "pp8");
}

TEST(BenchLlamaCli, JsonIsOneArrayWithCeilingsFromTheModel) {
  LLMOS_REQUIRE_SHARED(kStories);
  const std::string model = test::shared_path(kStories);
  const int reps = 3;
  const auto r = run_cli({"bench", "-m", model, "-p", "16", "-n", "8", "-r", std::to_string(reps),
                          "-t", "1", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const JsonValue doc = test::parse_json(r.out);  // the whole of stdout
  ASSERT_EQ(doc.kind, JsonValue::Kind::kArray) << r.out;
  ASSERT_EQ(doc.array.size(), 2u) << r.out;
  EXPECT_TRUE(contains(r.err, "ceilings (measured now")) << r.err;
  const Expected e = expected_costs(model);
  ASSERT_TRUE(e.all_f32);

  const JsonValue& pp = doc.array[0];
  const JsonValue& c = check_common(pp, reps, 1);
  EXPECT_EQ(pp.at("test").string, "pp16");
  EXPECT_EQ(pp.at("n_prompt").number, 16);
  EXPECT_EQ(pp.at("n_gen").number, 0);
  EXPECT_EQ(pp.at("batch").number, 1);
  EXPECT_EQ(pp.at("model").string, model);
  std::vector<double> samples;
  for (const JsonValue& v : pp.at("samples").array) samples.push_back(v.number);
  EXPECT_EQ(pp.at("tokens_per_second").number, median_of(samples));
  // F32 weights: 2 x params x tokens (the output matrix for the last token only) at the fp32
  // FMA peak.
  const double pp_ops = 2.0 * (e.layer_params * 16 + e.output_params);
  expect_rel_near(pp.at("ceiling").number, c.at("fp32_gflops").number * 1e9 * 16 / pp_ops, 1e-9,
                  "pp ceiling");

  const JsonValue& tg = doc.array[1];
  check_common(tg, reps, 1);
  EXPECT_EQ(tg.at("test").string, "tg8");
  EXPECT_EQ(tg.at("n_prompt").number, 0);
  EXPECT_EQ(tg.at("n_gen").number, 8);
  samples.clear();
  for (const JsonValue& v : tg.at("samples").array) samples.push_back(v.number);
  EXPECT_EQ(tg.at("tokens_per_second").number, median_of(samples));
  expect_rel_near(tg.at("weight_bytes_per_token").number, e.decode_bytes, 1e-12, "bytes/token");
  expect_rel_near(tg.at("ceiling").number,
                  tg.at("ceilings").at("read_bandwidth_gb_s").number * 1e9 / e.decode_bytes, 1e-9,
                  "tg ceiling");
}

TEST(BenchLlamaCli, QuantizedPrefillIsMeasuredAgainstTheInt8Peak) {
  // A Q8_0 copy of the embedded default model, made by the CLI itself.
  const std::string env = default_model_env();
  const std::string f32 = test::temp_dir() + "/demo-f32.gguf";
  const std::string q8 = test::temp_dir() + "/demo-q8_0.gguf";
  ASSERT_EQ(run_cli({"make-model", "-o", f32, "--preset", "demo"}).status, 0);
  const auto q = run_cli({"quantize", f32, q8, "Q8_0", "--pure"});
  ASSERT_EQ(q.status, 0) << q.err;
  const auto r = run_cli({"bench", "-m", q8, "-p", "32", "-n", "0", "-r", "1", "--json"}, env);
  ASSERT_EQ(r.status, 0) << r.err;
  const JsonValue doc = test::parse_json(r.out);
  ASSERT_EQ(doc.array.size(), 1u) << r.out;
  const JsonValue& pp = doc.array[0];
  check_common(pp, 1, static_cast<int>(pp.at("threads").number));
  EXPECT_EQ(pp.at("test").string, "pp32");
  EXPECT_TRUE(contains(pp.at("ceiling_basis").string, "int8")) << pp.at("ceiling_basis").string;
  const Expected e = expected_costs(q8);
  ASSERT_TRUE(e.all_quantized);
  const double ops = 2.0 * (e.layer_params * 32 + e.output_params);
  // With --pure the output matrix is Q8_0 too, so all of it runs at the int8 peak.
  expect_rel_near(pp.at("ceiling").number,
                  pp.at("ceilings").at("int8_gops").number * 1e9 * 32 / ops, 1e-9, "pp ceiling");
}

TEST(BenchLlamaCli, EveryIsaMeasuresItsCeilings) {
  for (const char* isa : {"avx2", "scalar"}) {
    SCOPED_TRACE(isa);
    const auto r = run_cli({"bench", "-p", "4", "-n", "2", "-r", "1", "--json"},
                           default_model_env() + " LLMOS_ISA=" + isa);
    if (r.status != 0 && contains(r.err, "does not support")) GTEST_SKIP() << r.err;
    ASSERT_EQ(r.status, 0) << r.err;
    const JsonValue doc = test::parse_json(r.out);
    ASSERT_EQ(doc.array.size(), 2u) << r.out;
    const JsonValue& c =
        check_common(doc.array[0], 1, static_cast<int>(doc.array[0].at("threads").number));
    EXPECT_EQ(c.at("isa").string, isa);
    EXPECT_EQ(c.at("bf16_gflops").kind, JsonValue::Kind::kNull);  // an AVX-512 instruction
  }
}

TEST(BenchLlamaCli, BatchedModeJson) {
  const auto r = run_cli({"bench", "--batch", "1,3", "-p", "8", "-n", "4", "-r", "2", "--json"},
                         default_model_env());
  ASSERT_EQ(r.status, 0) << r.err;
  const JsonValue doc = test::parse_json(r.out);
  ASSERT_EQ(doc.array.size(), 2u) << r.out;
  const double batches[] = {1, 3};
  for (size_t i = 0; i < 2; ++i) {
    const JsonValue& rec = doc.array[i];
    const JsonValue& c = check_common(rec, 2, static_cast<int>(rec.at("threads").number));
    EXPECT_EQ(rec.at("test").string, "batched");
    EXPECT_EQ(rec.at("batch").number, batches[i]);
    EXPECT_EQ(rec.at("n_prompt").number, 8);
    EXPECT_EQ(rec.at("n_gen").number, 4);
    for (const char* k : {"s_pp", "s_tg", "s", "t_pp", "t_tg", "t"})
      EXPECT_GT(rec.at(k).number, 0.0) << k;
    EXPECT_EQ(rec.at("tokens_per_second").number, rec.at("s_tg").number);
    expect_rel_near(rec.at("s_tg").number * rec.at("t_tg").number, batches[i] * 4, 1e-9, "s_tg");
    expect_rel_near(rec.at("s").number * rec.at("t").number, batches[i] * 12, 1e-9, "s");
    // A decode step reads the weights once for all B sequences: B x the bandwidth bound,
    // capped by the matmul peak (the default model has F32 weights: fp32 FMA).
    const Expected e = expected_costs(rec.at("model").string);
    ASSERT_TRUE(e.all_f32);
    const double bw_bound = batches[i] * c.at("read_bandwidth_gb_s").number * 1e9 / e.decode_bytes;
    const double compute_bound =
        c.at("fp32_gflops").number * 1e9 / (2.0 * (e.layer_params + e.output_params));
    expect_rel_near(rec.at("ceiling").number, std::min(bw_bound, compute_bound), 1e-9,
                    "batched ceiling");
  }
}

TEST(BenchLlamaCli, DefaultModelPlainRun) {
  const auto r = run_cli({"bench", "-p", "8", "-n", "4", "-r", "2"}, default_model_env());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "model: llama 'llmos embedded default")) << r.out;
  const auto rows = parse_table(r.out);
  ASSERT_EQ(rows.size(), 2u) << r.out;
  EXPECT_EQ(rows[0].test, "pp8");
  EXPECT_EQ(rows[1].test, "tg4");
}

TEST(BenchLlamaCli, RejectsBadOptionsNamingThem) {
  struct Case {
    std::vector<std::string> args;
    std::string names;
  };
  const std::vector<Case> bad = {
      {{"-p", "-1"}, "--n-prompt"},
      {{"-n", "-5"}, "--n-gen"},
      {{"-p", "0", "-n", "0"}, "--n-prompt and --n-gen"},
      {{"-r", "0"}, "--reps"},
      {{"--reps", "two"}, "--reps"},
      {{"-t", "0"}, "--threads"},
      {{"--json=yes"}, "--json"},
      {{"--batch", "2", "-p", "0"}, "--n-prompt"},
      {{"--batch", "2", "-n", "0"}, "--n-gen"},
      {{"-p"}, "-p"},
  };
  for (const Case& c : bad) {
    std::vector<std::string> args = {"bench"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto r = run_cli(args, default_model_env());
    EXPECT_EQ(r.status, 2) << c.names << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, c.names)) << c.names << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "usage: llmos bench")) << r.err;
    EXPECT_EQ(r.out, "");
  }
  // Longer than the model's context: a runtime error naming it, before any output.
  const auto r = run_cli({"bench", "-p", "100000", "-n", "0"}, default_model_env());
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "-p 100000")) << r.err;
  EXPECT_TRUE(contains(r.err, "context length")) << r.err;
  EXPECT_EQ(r.out, "");
  const auto help = run_cli({"bench", "--help"});
  EXPECT_EQ(help.status, 0);
  for (const char* opt : {"--n-prompt", "--n-gen", "--reps", "--json", "--batch", "--threads"})
    EXPECT_TRUE(contains(help.out, opt)) << opt;
}

}  // namespace
}  // namespace llmos
