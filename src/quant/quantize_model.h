// Quantizes a whole GGUF model file to a llama.cpp file type (Q4_K_M, Q8_0, F16, ...): the
// library side of `llmos quantize`. Tensor types follow the rules of quant_mix.h; metadata is
// carried over with general.file_type and general.quantization_version set; tensors keep their
// order.
//
// The work streams: each tensor is converted in chunks of rows (dequantize_row -> quantize_row,
// split over a ThreadPool) and each chunk goes straight into the output file, so memory stays at
// a few MiB per thread whatever the model size. The output is written to a temporary file beside
// it and renamed at the end: on any error no output file is left behind.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "quant/quant_mix.h"

namespace llmos {

struct QuantizeProgress {
  enum class Stage { kTensorBegin, kRows, kTensorEnd };
  Stage stage = Stage::kTensorBegin;
  size_t index = 0;  // tensor being written, 0-based, in file order
  size_t count = 0;  // tensors in the file
  std::string_view name;
  const std::vector<int64_t>* shape = nullptr;  // row-major
  DType from = DType::kF32;
  DType to = DType::kF32;
  bool converted = false;       // false: the bytes are copied unchanged
  uint64_t tensor_done = 0;     // elements of this tensor written so far
  uint64_t tensor_total = 0;
  uint64_t done = 0;            // elements of the whole model written so far
  uint64_t total = 0;
  uint64_t in_bytes = 0;        // this tensor's size in the input / output
  uint64_t out_bytes = 0;
};

struct QuantizeOptions {
  std::string file_type = "Q8_0";  // a name or number find_quant_file_type() accepts
  int num_threads = 0;             // 0: one per hardware thread
  bool pure = false;               // every weight matrix gets the base type (no mixture rules)
  // Called on the calling thread; either may be empty.
  std::function<void(const QuantizeProgress&)> on_progress;
  std::function<void(const std::string&)> on_warning;  // requantizing, shape fallbacks
};

struct QuantizeResult {
  const QuantFileType* file_type = nullptr;
  uint64_t input_bytes = 0;   // file sizes
  uint64_t output_bytes = 0;
  double seconds = 0.0;
  size_t tensors = 0;
  size_t converted = 0;       // tensors whose type changed
  size_t requantized = 0;     // of those, block-quantized tensors converted to another block type
  size_t fallbacks = 0;       // tensors whose row length forced a fallback type
};

// Errors (llmos::Error): kInvalidArgument for an unknown file type (the message lists the valid
// ones) or an output path that is the input file; kIo when the input cannot be opened or the
// output cannot be written; kFormat for a malformed input; kUnsupported for a tensor that
// cannot be converted (integer data, or a row length no type of the target fits).
QuantizeResult quantize_model(const std::string& input_path, const std::string& output_path,
                              const QuantizeOptions& options);

// The plan alone (no output written): each tensor's output type, for `--dry-run`-style checks
// and tests.
std::vector<QuantTensorPlan> plan_model_quantization(const std::string& input_path,
                                                     const QuantFileType& file_type, bool pure);

}  // namespace llmos
