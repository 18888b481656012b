// Shared parts of `llmos bench`: its options, what a model's forward pass costs (bytes of weights
// read per decoded token, matmul operations per token), the ceilings a measured rate is compared
// against, statistics over repetitions, and the JSON records. The two modes live in
// bench_llama.cc (pp/tg, like llama-bench) and bench_batched.cc (like llama-batched-bench).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/dtype.h"
#include "kernels/cpu/ceilings.h"
#include "model/llama_model.h"

namespace llmos::cli::bench {

struct BenchOptions {
  std::string model_path;
  int32_t n_prompt = 512;
  int32_t n_gen = 128;
  int reps = 5;
  bool json = false;
  uint64_t seed = 1234;
  DType kv_dtype = DType::kF16;
  int block_size = 16;
  std::vector<int32_t> batches;  // non-empty: the batched mode
};

// Everything a run needs: the model, the ceilings measured before it loaded (absent on a
// non-CPU device: they describe the CPU), and the tokens random prompts are drawn from.
struct BenchContext {
  BenchOptions options;
  std::shared_ptr<LlamaModel> model;
  std::optional<kernels::cpu::Ceilings> ceilings;
  std::vector<int32_t> candidates;
};

// One group of matmul weights of the same dtype.
struct MatmulWork {
  DType dtype = DType::kF32;
  double params = 0;  // weight elements: one multiply-add each per token
};

// What the forward pass reads and computes, from the model's weights.
struct ModelCost {
  // Bytes of weights one decode step of one token reads: every layer matrix, norm and bias, the
  // output norm and matrix, and one row of the token embedding.
  double decode_bytes = 0;
  std::vector<MatmulWork> layer_matmuls;  // all layers, grouped by dtype; every token runs them
  MatmulWork output;                      // the output matrix; only logits rows run it
  double file_bytes = 0;                  // every tensor of the file
  double file_params = 0;
  std::string matrix_types;  // "Q4_0", or "Q4_K+Q6_K" when mixed
};
ModelCost model_cost(const LlamaModel& model);

// The peak a weight dtype's matmul is bound by: int8 for formats whose kernels quantize the
// activations to int8 (every block-quantized type); bf16 for F16/BF16 when the CPU has
// AVX512_BF16, else fp32 FMA; fp32 FMA for F32.
enum class ComputePeak { kInt8, kBf16, kFp32 };
ComputePeak compute_peak(DType dtype, const kernels::cpu::Ceilings& c);
double peak_rate(ComputePeak kind, const kernels::cpu::Ceilings& c);
const char* peak_name(ComputePeak kind);  // "int8", "bf16", "fp32 FMA"

// Seconds the matmuls of `tokens` tokens, `logits_rows` of them with logits, take at the peaks
// (2 operations per weight element and token). Attention and the element-wise ops are left out.
double matmul_seconds_at_peak(const ModelCost& cost, const kernels::cpu::Ceilings& c, double tokens,
                              double logits_rows);
// Which peaks the pp ceiling uses: "int8 peak", "fp32 FMA peak", or "int8+fp32 FMA peaks".
std::string pp_basis(const ModelCost& cost, const kernels::cpu::Ceilings& c);

// Decode tokens/s the bandwidth allows: bandwidth / decode_bytes.
double tg_ceiling(const ModelCost& cost, const kernels::cpu::Ceilings& c);
// Prefill tokens/s the peaks allow for one sequence of n_prompt tokens with one logits row.
double pp_ceiling(const ModelCost& cost, const kernels::cpu::Ceilings& c, int32_t n_prompt);
// Aggregate decode tokens/s of `batch` sequences decoded together: the weights are read once
// per step for all of them, so batch x the bandwidth bound, capped by the peaks.
double batched_tg_ceiling(const ModelCost& cost, const kernels::cpu::Ceilings& c, int32_t batch);

// Statistics over repetitions.
double median(std::vector<double> v);
double mean(const std::vector<double>& v);
double stddev(const std::vector<double>& v);  // sample (n - 1); 0 for fewer than 2 values

// Random prompt tokens: everything but control and end-of-generation tokens.
std::vector<int32_t> prompt_candidates(const Tokenizer& tok, int64_t vocab_size);
uint64_t next_random(uint64_t& state);  // splitmix64: the same stream everywhere

// "model: llama 'name', 12 layers, ..." (the first line of the plain output).
std::string describe_model(const LlamaModel& model, const ModelCost& cost);
// "llama 201.4M Q4_0": the table's model column.
std::string model_type(const LlamaModel& model, const ModelCost& cost);
// "CPU avx512" or the device name.
std::string backend_label(const Backend& backend);
// The lines printed before a table: the measured ceilings, and what the ceilings of the tests
// are made of.
std::string describe_ceilings(const std::optional<kernels::cpu::Ceilings>& c);

// A flat JSON object with the value kinds bench needs (numbers keep full precision; a
// non-finite number is written as null).
class JsonRecord {
 public:
  JsonRecord& add(const std::string& key, const std::string& value);
  JsonRecord& add(const std::string& key, const char* value) {
    return add(key, std::string(value));
  }
  JsonRecord& add(const std::string& key, double value);
  JsonRecord& add(const std::string& key, int64_t value);
  JsonRecord& add(const std::string& key, int32_t value) { return add(key, int64_t{value}); }
  JsonRecord& add(const std::string& key, const std::vector<double>& values);
  JsonRecord& add_null(const std::string& key);
  JsonRecord& add_raw(const std::string& key, const std::string& json);
  std::string str() const { return text_ + "}"; }

 private:
  void key(const std::string& k);
  std::string text_ = "{";
};
std::string json_number(double v);
// The fields every record carries: model, threads, reps, the ceilings; `ceiling` (<= 0: none)
// and the fraction `tokens_per_second` is of it.
void add_common_fields(JsonRecord& r, const BenchContext& ctx, const ModelCost& cost,
                       const std::string& test, double tokens_per_second,
                       const std::vector<double>& samples, double ceiling,
                       const std::string& ceiling_basis);

// The modes. Each prints its table (or, with --json, adds its records) and returns.
void run_llama_bench(const BenchContext& ctx, std::vector<std::string>& json_records);
void run_batched_bench(const BenchContext& ctx, std::vector<std::string>& json_records);

}  // namespace llmos::cli::bench
