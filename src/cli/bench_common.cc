#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "cli/bench.h"
#include "cli/cli_format.h"
#include "cli/json_writer.h"
#include "core/error.h"
#include "kernels/cpu/isa.h"

namespace llmos::cli::bench {

using kernels::cpu::Ceilings;

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return out;
}

std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

}  // namespace

ModelCost model_cost(const LlamaModel& model) {
  const ModelWeights& w = model.weights();
  ModelCost cost;
  std::vector<DType> order;  // matrix dtypes in the order first seen
  auto add_matmul = [&](const Tensor& t) {
    cost.decode_bytes += static_cast<double>(t.nbytes());
    auto it = std::find_if(cost.layer_matmuls.begin(), cost.layer_matmuls.end(),
                           [&](const MatmulWork& m) { return m.dtype == t.dtype(); });
    if (it == cost.layer_matmuls.end()) {
      cost.layer_matmuls.push_back({t.dtype(), 0.0});
      it = cost.layer_matmuls.end() - 1;
    }
    it->params += static_cast<double>(t.numel());
  };
  for (const LayerWeights& l : w.layers) {
    for (const Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
      add_matmul(*t);
    for (const Tensor* t : {&l.attn_norm, &l.ffn_norm, &l.bq, &l.bk, &l.bv}) {
      if (t->defined()) cost.decode_bytes += static_cast<double>(t->nbytes());
    }
  }
  cost.output = {w.output.dtype(), static_cast<double>(w.output.numel())};
  cost.decode_bytes += static_cast<double>(w.output.nbytes() + w.output_norm.nbytes());
  // A tied output matrix is the embedding table: its row is already counted in it.
  if (!w.tied_output) cost.decode_bytes += static_cast<double>(w.token_embd.row_bytes());
  for (const gguf::TensorInfo& t : model.file().tensors()) {
    cost.file_bytes += static_cast<double>(t.nbytes);
    double n = 1;
    for (int64_t d : t.shape) n *= static_cast<double>(d);
    cost.file_params += n;
  }
  for (const MatmulWork& m : cost.layer_matmuls) {
    cost.matrix_types += (cost.matrix_types.empty() ? "" : "+") + upper(dtype_name(m.dtype));
  }
  return cost;
}

ComputePeak compute_peak(DType dtype, const Ceilings& c) {
  if (dtype_is_quantized(dtype)) return ComputePeak::kInt8;
  if ((dtype == DType::kF16 || dtype == DType::kBF16) && c.bf16_peak > 0) return ComputePeak::kBf16;
  return ComputePeak::kFp32;
}

double peak_rate(ComputePeak kind, const Ceilings& c) {
  switch (kind) {
    case ComputePeak::kInt8: return c.int8_peak;
    case ComputePeak::kBf16: return c.bf16_peak;
    case ComputePeak::kFp32: return c.fp32_peak;
  }
  return 0.0;
}

const char* peak_name(ComputePeak kind) {
  switch (kind) {
    case ComputePeak::kInt8: return "int8";
    case ComputePeak::kBf16: return "bf16";
    case ComputePeak::kFp32: return "fp32 FMA";
  }
  return "?";
}

double matmul_seconds_at_peak(const ModelCost& cost, const Ceilings& c, double tokens,
                              double logits_rows) {
  auto seconds = [&](const MatmulWork& m, double rows) {
    const double peak = peak_rate(compute_peak(m.dtype, c), c);
    return peak > 0 ? 2.0 * m.params * rows / peak : 0.0;
  };
  double total = seconds(cost.output, logits_rows);
  for (const MatmulWork& m : cost.layer_matmuls) total += seconds(m, tokens);
  return total;
}

std::string pp_basis(const ModelCost& cost, const Ceilings& c) {
  std::vector<std::string> names;
  for (const MatmulWork& m : cost.layer_matmuls) {
    const std::string n = peak_name(compute_peak(m.dtype, c));
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : "+") + n;
  return out + (names.size() > 1 ? " peaks" : " peak");
}

double tg_ceiling(const ModelCost& cost, const Ceilings& c) {
  return cost.decode_bytes > 0 ? c.read_bandwidth / cost.decode_bytes : 0.0;
}

double pp_ceiling(const ModelCost& cost, const Ceilings& c, int32_t n_prompt) {
  const double t = matmul_seconds_at_peak(cost, c, n_prompt, 1);
  return t > 0 ? n_prompt / t : 0.0;
}

double batched_tg_ceiling(const ModelCost& cost, const Ceilings& c, int32_t batch) {
  const double memory_bound = batch * tg_ceiling(cost, c);
  const double t = matmul_seconds_at_peak(cost, c, batch, batch);
  const double compute_bound = t > 0 ? batch / t : memory_bound;
  return std::min(memory_bound, compute_bound);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return 0.0;
  double s = 0.0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0.0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

std::vector<int32_t> prompt_candidates(const Tokenizer& tok, int64_t vocab_size) {
  std::vector<int32_t> ids;
  const Vocab& v = tok.vocab();
  for (int32_t t = 0; t < vocab_size; ++t) {
    const bool control =
        static_cast<size_t>(t) < v.types.size() && v.types[t] == TokenType::kControl;
    if (!control && !tok.is_eog(t)) ids.push_back(t);
  }
  if (ids.empty())
    throw_error(StatusCode::kInvalidArgument, "bench: the vocabulary has only control tokens");
  return ids;
}

uint64_t next_random(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::string describe_model(const LlamaModel& model, const ModelCost& cost) {
  const ModelConfig& c = model.config();
  const Backend& backend = model.backend();
  std::string where = backend.name();
  if (where.find("thread") == std::string::npos)
    where += ", " + std::to_string(backend.num_threads()) + " threads";
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "model: %s '%s', %lld layers, dim %lld, vocab %lld, %.2fM params, %s, %s weights; "
                "backend %s",
                c.architecture.c_str(), c.name.c_str(), static_cast<long long>(c.num_layers),
                static_cast<long long>(c.dim), static_cast<long long>(c.vocab_size),
                cost.file_params / 1e6, human_bytes(cost.file_bytes).c_str(),
                cost.matrix_types.c_str(), where.c_str());
  return buf;
}

std::string model_type(const LlamaModel& model, const ModelCost& cost) {
  const double p = cost.file_params;
  const std::string size = p >= 1e9   ? format("%.1fB", p / 1e9)
                           : p >= 1e6 ? format("%.0fM", p / 1e6)
                                      : format("%.0fK", p / 1e3);
  return model.config().architecture + " " + size + " " + cost.matrix_types;
}

std::string backend_label(const Backend& backend) {
  if (backend.device().is_cpu()) {
    const std::string name = backend.name();
    if (name.find("reference") != std::string::npos) return "CPU ref";
    return std::string("CPU ") + kernels::cpu::isa_name(kernels::cpu::active_isa());
  }
  return upper(backend.name());
}

std::string describe_ceilings(const std::optional<Ceilings>& c) {
  if (!c) return "ceilings: not measured (they describe the CPU; this backend is not the CPU)\n";
  char buf[768];
  std::snprintf(
      buf, sizeof(buf),
      "ceilings (measured now in %.2f s, %d threads, %s): read bandwidth %.1f GB/s (%s buffer), "
      "int8 %s %.0f GOPS, fp32 %s %.0f GFLOP/s, bf16 vdpbf16ps %s\n",
      c->seconds, c->threads, kernels::cpu::isa_name(c->isa), c->read_bandwidth / 1e9,
      human_bytes(static_cast<double>(c->bandwidth_bytes)).c_str(), c->int8_instruction,
      c->int8_peak / 1e9, c->fp32_instruction, c->fp32_peak / 1e9,
      c->bf16_peak > 0                       ? format("%.0f GFLOP/s", c->bf16_peak / 1e9).c_str()
      : c->isa == kernels::cpu::Isa::kAvx512 ? "n/a (the CPU does not advertise AVX512_BF16)"
                                             : "n/a (an AVX-512 instruction)");
  return buf;
}

// ---- JSON ----

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

void JsonRecord::key(const std::string& k) {
  if (text_.size() > 1) text_ += ", ";
  append_json_string(text_, k);
  text_ += ": ";
}

JsonRecord& JsonRecord::add(const std::string& k, const std::string& value) {
  key(k);
  append_json_string(text_, value);
  return *this;
}

JsonRecord& JsonRecord::add(const std::string& k, double value) {
  key(k);
  text_ += json_number(value);
  return *this;
}

JsonRecord& JsonRecord::add(const std::string& k, int64_t value) {
  key(k);
  text_ += std::to_string(value);
  return *this;
}

JsonRecord& JsonRecord::add(const std::string& k, const std::vector<double>& values) {
  key(k);
  text_ += "[";
  for (size_t i = 0; i < values.size(); ++i) text_ += (i ? ", " : "") + json_number(values[i]);
  text_ += "]";
  return *this;
}

JsonRecord& JsonRecord::add_null(const std::string& k) { return add_raw(k, "null"); }

JsonRecord& JsonRecord::add_raw(const std::string& k, const std::string& json) {
  key(k);
  text_ += json;
  return *this;
}

void add_common_fields(JsonRecord& r, const BenchContext& ctx, const ModelCost& cost,
                       const std::string& test, double tokens_per_second,
                       const std::vector<double>& samples, double ceiling,
                       const std::string& ceiling_basis) {
  const LlamaModel& model = *ctx.model;
  r.add("test", test)
      .add("model", ctx.options.model_path)
      .add("model_type", model_type(model, cost))
      .add("model_size", static_cast<int64_t>(cost.file_bytes))
      .add("model_n_params", static_cast<int64_t>(cost.file_params))
      .add("weight_types", cost.matrix_types)
      .add("backend", backend_label(model.backend()))
      .add("threads", static_cast<int64_t>(model.backend().num_threads()))
      .add("kv_type", std::string(dtype_name(ctx.options.kv_dtype)))
      .add("reps", static_cast<int64_t>(ctx.options.reps))
      .add("tokens_per_second", tokens_per_second)
      .add("stddev_tokens_per_second", stddev(samples))
      .add("samples", samples);
  if (ceiling > 0) {
    r.add("ceiling", ceiling).add("ceiling_fraction", tokens_per_second / ceiling);
  } else {
    r.add_null("ceiling").add_null("ceiling_fraction");
  }
  r.add("ceiling_basis", ceiling_basis).add("weight_bytes_per_token", cost.decode_bytes);
  if (!ctx.ceilings) {
    r.add_null("ceilings");
    return;
  }
  const Ceilings& c = *ctx.ceilings;
  JsonRecord m;
  m.add("isa", kernels::cpu::isa_name(c.isa))
      .add("threads", static_cast<int64_t>(c.threads))
      .add("read_bandwidth_gb_s", c.read_bandwidth / 1e9)
      .add("bandwidth_buffer_bytes", static_cast<int64_t>(c.bandwidth_bytes))
      .add("int8_gops", c.int8_peak / 1e9)
      .add("int8_instruction", c.int8_instruction)
      .add("fp32_gflops", c.fp32_peak / 1e9)
      .add("fp32_instruction", c.fp32_instruction);
  if (c.bf16_peak > 0) {
    m.add("bf16_gflops", c.bf16_peak / 1e9);
  } else {
    m.add_null("bf16_gflops");
  }
  m.add("seconds", c.seconds);
  r.add_raw("ceilings", m.str());
}

}  // namespace llmos::cli::bench
