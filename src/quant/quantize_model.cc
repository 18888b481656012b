#include "quant/quantize_model.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "quant/quant.h"

namespace llmos {
namespace {

// Elements converted per chunk: large enough that the thread pool's hand-off is negligible,
// small enough that the chunk's output (at most 4 bytes per element) stays a few MiB.
constexpr int64_t kChunkElements = int64_t{1} << 20;
// Unchanged tensors are copied in pieces of this size so progress keeps moving.
constexpr uint64_t kCopyPiece = uint64_t{16} << 20;
constexpr uint32_t kQuantizationVersion = 2;  // GGML_QNT_VERSION

QuantModelInfo model_info(const gguf::File& file) {
  QuantModelInfo info;
  info.architecture = file.get_string_or("general.architecture", "");
  const std::string a = info.architecture + ".";
  info.num_layers = file.get_int_or(a + "block_count", 0);
  if (info.num_layers <= 0) {
    // No hyper-parameters: count the blk.N. layers the tensors name.
    int64_t max_layer = -1;
    for (const auto& t : file.tensors()) {
      if (t.name.rfind("blk.", 0) == 0) max_layer = std::max<int64_t>(max_layer, std::atoll(t.name.c_str() + 4));
    }
    info.num_layers = max_layer + 1;
  }
  info.num_heads = file.get_int_or(a + "attention.head_count", 0);
  info.num_kv_heads = file.get_int_or(a + "attention.head_count_kv", info.num_heads);
  info.num_experts = file.get_int_or(a + "expert_count", 0);
  return info;
}

std::vector<QuantTensorIn> tensor_list(const gguf::File& file) {
  std::vector<QuantTensorIn> out;
  out.reserve(file.tensors().size());
  for (const auto& t : file.tensors()) out.push_back({t.name, t.shape, t.dtype});
  return out;
}

const QuantFileType& require_file_type(const std::string& name) {
  const QuantFileType* ft = find_quant_file_type(name);
  if (ft == nullptr) {
    throw_error(StatusCode::kInvalidArgument, "unknown quantization type '", name,
                "'; valid types: ", quant_file_type_list());
  }
  return *ft;
}

bool same_file(const std::string& a, const std::string& b) {
  if (a == b) return true;
  struct stat sa {};
  struct stat sb {};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

uint64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// Drops a finished tensor's pages from this process's resident set (the input is a read-only
// private mapping, so they are simply re-read from the file if ever touched again): without
// this, quantizing a 14 GB model would leave 14 GB of the input counted as resident by the end,
// as llama.cpp's quantizer also avoids by unmapping each weight.
void release_pages(const uint8_t* data, uint64_t size) {
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (page_size <= 0 || size == 0) return;
  const auto page = static_cast<uintptr_t>(page_size);
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + size) / page * page;
  // Only whole pages inside the tensor; a failure just leaves the pages resident.
  if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

// Converts one tensor chunk by chunk into `sink`, each chunk's rows split over the pool.
class TensorConverter {
 public:
  TensorConverter(ThreadPool& pool, const std::function<void(uint64_t)>& on_rows)
      : pool_(pool), on_rows_(on_rows), scratch_(static_cast<size_t>(pool.num_threads())) {}

  void convert(const gguf::TensorInfo& info, const uint8_t* src, DType to,
               const gguf::ByteSink& sink) {
    const int64_t cols = info.shape.back();
    const int64_t rows = static_cast<int64_t>(info.nbytes / static_cast<uint64_t>(
                                                  dtype_row_bytes(info.dtype, cols)));
    const int64_t in_row = dtype_row_bytes(info.dtype, cols);
    const int64_t out_row = dtype_row_bytes(to, cols);
    const int64_t chunk_rows = std::clamp<int64_t>(kChunkElements / cols, 1, rows);
    out_.resize(static_cast<size_t>(chunk_rows * out_row));
    for (auto& s : scratch_) s.resize(static_cast<size_t>(cols));
    for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows - r0);
      pool_.parallel_for(n, 1, [&](int thread, int64_t begin, int64_t end) {
        float* row = scratch_[static_cast<size_t>(thread)].data();
        for (int64_t r = begin; r < end; ++r) {
          try {
            dequantize_row(info.dtype, src + (r0 + r) * in_row, row, cols);
            quantize_row(to, row, out_.data() + r * out_row, cols);
          } catch (const Error& e) {
            throw_error(e.code(), "tensor '", info.name, "' row ", r0 + r, ": ", e.message());
          }
        }
      });
      sink(out_.data(), static_cast<size_t>(n * out_row));
      on_rows_(static_cast<uint64_t>(n * cols));
    }
  }

 private:
  ThreadPool& pool_;
  const std::function<void(uint64_t)>& on_rows_;
  std::vector<std::vector<float>> scratch_;
  std::vector<uint8_t> out_;
};

}  // namespace

std::vector<QuantTensorPlan> plan_model_quantization(const std::string& input_path,
                                                     const QuantFileType& file_type, bool pure) {
  const gguf::File file = gguf::File::open(input_path);
  return plan_quantization(tensor_list(file), model_info(file), file_type, pure);
}

QuantizeResult quantize_model(const std::string& input_path, const std::string& output_path,
                              const QuantizeOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const QuantFileType& ft = require_file_type(options.file_type);
  LLMOS_CHECK_ARG(!output_path.empty(), "quantize: the output path is empty");
  const gguf::File file = gguf::File::open(input_path);
  LLMOS_CHECK_ARG(!same_file(input_path, output_path), "quantize: the output '", output_path,
                  "' is the input file; choose another output path");

  const std::vector<QuantTensorPlan> plans =
      plan_quantization(tensor_list(file), model_info(file), ft, options.pure);
  const auto& tensors = file.tensors();

  QuantizeResult result;
  result.file_type = &ft;
  result.tensors = tensors.size();
  uint64_t total_elements = 0;
  std::vector<uint64_t> elements(tensors.size(), 1);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    for (int64_t d : t.shape) elements[i] *= static_cast<uint64_t>(d);  // the reader checked overflow
    total_elements += elements[i];
    if (plans[i].type == t.dtype) continue;
    ++result.converted;
    if (plans[i].fell_back) {
      ++result.fallbacks;
      if (options.on_warning) options.on_warning("tensor '" + t.name + "': " + plans[i].note);
    }
    // Block type to another block type: the second rounding compounds the first.
    if (dtype_is_quantized(t.dtype) && dtype_is_quantized(plans[i].type)) {
      ++result.requantized;
      if (options.on_warning) {
        options.on_warning("tensor '" + t.name + "': requantizing " + std::string(dtype_name(t.dtype)) +
                           " -> " + std::string(dtype_name(plans[i].type)) +
                           " (quality is lower than quantizing from f32/f16/bf16)");
      }
    }
  }

  gguf::Writer writer;
  for (const auto& [key, value] : file.metadata()) {
    // A single output file: the split keys of a sharded input do not apply to it.
    if (key == "split.no" || key == "split.count" || key == "split.tensors.count") continue;
    writer.set(key, value);
  }
  writer.set("general.quantization_version", gguf::Value(kQuantizationVersion));
  writer.set("general.file_type", gguf::Value(ft.ftype));

  ThreadPool pool(options.num_threads);
  QuantizeProgress progress;
  progress.count = tensors.size();
  progress.total = total_elements;
  auto report = [&](QuantizeProgress::Stage stage) {
    progress.stage = stage;
    if (options.on_progress) options.on_progress(progress);
  };
  const std::function<void(uint64_t)> on_rows = [&](uint64_t n) {
    progress.tensor_done += n;
    progress.done += n;
    report(QuantizeProgress::Stage::kRows);
  };
  TensorConverter converter(pool, on_rows);

  for (size_t i = 0; i < tensors.size(); ++i) {
    const gguf::TensorInfo& info = tensors[i];
    const DType to = plans[i].type;
    auto producer = [&, i, to](const gguf::ByteSink& sink) {
      const uint8_t* src = file.tensor_data(info);
      progress.index = i;
      progress.name = info.name;
      progress.shape = &info.shape;
      progress.from = info.dtype;
      progress.to = to;
      progress.converted = to != info.dtype;
      progress.tensor_done = 0;
      progress.tensor_total = elements[i];
      progress.in_bytes = info.nbytes;
      progress.out_bytes = elements[i] / static_cast<uint64_t>(info.shape.back()) *
                           static_cast<uint64_t>(dtype_row_bytes(to, info.shape.back()));
      report(QuantizeProgress::Stage::kTensorBegin);
      if (to == info.dtype) {
        const uint64_t row_bytes = static_cast<uint64_t>(dtype_row_bytes(info.dtype, info.shape.back()));
        // Whole rows per piece, so the progress counts elements exactly.
        const uint64_t piece = std::max<uint64_t>(1, kCopyPiece / row_bytes) * row_bytes;
        for (uint64_t off = 0; off < info.nbytes; off += piece) {
          const uint64_t n = std::min(piece, info.nbytes - off);
          sink(src + off, static_cast<size_t>(n));
          on_rows(n / row_bytes * static_cast<uint64_t>(info.shape.back()));
        }
      } else {
        converter.convert(info, src, to, sink);
      }
      release_pages(src, info.nbytes);
      report(QuantizeProgress::Stage::kTensorEnd);
    };
    writer.add_tensor(info.name, info.shape, to, producer);
  }
  writer.write_file(output_path);

  result.input_bytes = file.file_size();
  result.output_bytes = file_size(output_path);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace llmos
