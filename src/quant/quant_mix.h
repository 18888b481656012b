// Which type each tensor of a model gets when it is quantized to a llama.cpp "file type" such as
// Q4_K_M: the per-tensor rules of llama.cpp's llama-quant.cpp (llama_tensor_get_type and its
// shape fallback), learned from that code and re-implemented here for the file types llmos
// writes. docs/formats.md ("llmos quantize") lists every rule; `llmos quantize` applies them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace llmos {

// A target file type: its llama.cpp name, its LLAMA_FTYPE value (written as general.file_type)
// and the base type most weight matrices get.
struct QuantFileType {
  std::string_view name;     // "Q4_K_M"
  uint32_t ftype;            // LLAMA_FTYPE_MOSTLY_Q4_K_M = 15
  DType base;                // q4_K
  std::string_view summary;  // one line for the usage text
};

// Every file type llmos can write, in the order the usage lists them.
const std::vector<QuantFileType>& quant_file_types();
// Looks a type up by name (case-insensitive; the llama.cpp aliases Q4_K and Q5_K mean Q4_K_M
// and Q5_K_M) or by its LLAMA_FTYPE number; nullptr when unknown.
const QuantFileType* find_quant_file_type(std::string_view name_or_number);
// "F32, F16, BF16, ..." for messages.
std::string quant_file_type_list();

// What the rules need to know about the model (from its GGUF metadata).
struct QuantModelInfo {
  std::string architecture;  // general.architecture
  int64_t num_layers = 0;    // {arch}.block_count
  int64_t num_heads = 0;     // {arch}.attention.head_count
  int64_t num_kv_heads = 0;  // {arch}.attention.head_count_kv (0: same as num_heads)
  int64_t num_experts = 0;   // {arch}.expert_count (0: a dense model)
};

// One tensor as it is in the source file.
struct QuantTensorIn {
  std::string name;
  std::vector<int64_t> shape;  // row-major (shape.back() is the row length)
  DType dtype = DType::kF32;
};

struct QuantTensorPlan {
  DType type = DType::kF32;  // the type in the output file
  bool quantizable = false;  // a weight matrix the rules apply to (else kept as it is)
  bool fell_back = false;    // the chosen type did not fit the row length
  std::string note;          // why the type differs from the file type's base, for the log
};

// The output type of every tensor (same order as `tensors`). `pure` skips the mixture rules (every
// weight matrix gets the base type, as llama.cpp's --pure), keeping only the shape fallback.
// Throws kUnsupported naming the tensor when no block type fits a row length (as llama.cpp does
// for the 32-element formats).
std::vector<QuantTensorPlan> plan_quantization(const std::vector<QuantTensorIn>& tensors,
                                               const QuantModelInfo& model,
                                               const QuantFileType& file_type, bool pure);

// llama.cpp's "use more bits" layer pattern for attn_v / ffn_down in the _M mixes: the first
// and last eighth of the layers, and every third layer in between.
bool quant_use_more_bits(int64_t layer, int64_t num_layers);

}  // namespace llmos
