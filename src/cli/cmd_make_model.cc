// llmos make-model: writes a seeded random-weight Llama-family GGUF file. The weights are
// meaningless by design; the files exist to benchmark and test llmos at real model shapes
// (the bench-200m preset is the CPU performance benchmark shape, docs/performance.md).
#include <iostream>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "model/random_model.h"

namespace llmos::cli {
namespace {

// bench-200m: llama, dim 1024, 12 layers, 16 heads, 4 KV heads, FFN 2816, the Llama-2
// SentencePiece vocabulary (32000 tokens) — about 200M parameters.
RandomModelSpec bench_200m_spec() {
  RandomModelSpec s;
  s.name = "llmos-bench-200m";
  s.dim = 1024;
  s.num_layers = 12;
  s.num_heads = 16;
  s.num_kv_heads = 4;
  s.ffn_dim = 2816;
  s.context_length = 4096;
  s.matrix_dtype = DType::kF16;
  s.embedding_dtype = DType::kF16;
  s.output_dtype = DType::kF16;
  return s;
}

DType parse_weight_dtype(const std::string& name) {
  if (name == "f32") return DType::kF32;
  if (name == "f16") return DType::kF16;
  if (name == "bf16") return DType::kBF16;
  throw UsageError{"--dtype: '" + name + "' (expected f32, f16 or bf16; quantize afterwards)"};
}

}  // namespace

int run_make_model(int argc, char** argv) {
  Args args("make-model", "write a seeded random-weight llama model (for benchmarks and tests)",
            {{"-o", "--output", "PATH", "output GGUF file (required)"},
             {"", "--preset", "NAME", "bench-200m (default) or demo (the embedded default model)"},
             {"", "--vocab-from", "PATH", "copy the tokenizer of this GGUF file (bench-200m: "
                                          "the Llama-2 vocab, ../shared/vocab/ggml-vocab-llama-spm.gguf)"},
             {"", "--dim", "N", "embedding size"},
             {"", "--layers", "N", "layers"},
             {"", "--heads", "N", "attention heads"},
             {"", "--kv-heads", "N", "key/value heads"},
             {"", "--ffn", "N", "feed-forward size"},
             {"", "--context", "N", "context length"},
             {"", "--dtype", "TYPE", "weight dtype: f32, f16 or bf16 (bench-200m: f16)"},
             {"", "--seed", "N", "random seed (default 1)"}});
  RandomModelSpec spec;
  std::string output;
  try {
    args.parse(argc, argv, 2);
    if (args.has("--help")) {
      std::cout << args.usage();
      return 0;
    }
    const std::string preset = args.get_or("--preset", "bench-200m");
    if (preset == "bench-200m") {
      spec = bench_200m_spec();
    } else if (preset == "demo") {
      spec = default_demo_model_spec();
    } else {
      throw UsageError{"--preset: unknown preset '" + preset + "' (expected bench-200m or demo)"};
    }
    const auto out = args.get("--output");
    if (!out) throw UsageError{"--output is required"};
    output = *out;
    spec.vocab_from = args.get_or("--vocab-from", spec.vocab_from);
    if (preset == "bench-200m" && spec.vocab_from.empty()) {
      throw UsageError{"--vocab-from is required for bench-200m (the Llama-2 SentencePiece vocab)"};
    }
    spec.dim = args.get_int("--dim", spec.dim, 8, 65536);
    spec.num_layers = args.get_int("--layers", spec.num_layers, 1, 1024);
    spec.num_heads = args.get_int("--heads", spec.num_heads, 1, 1024);
    spec.num_kv_heads = args.get_int("--kv-heads", spec.num_kv_heads, 1, 1024);
    spec.ffn_dim = args.get_int("--ffn", spec.ffn_dim, 1, 1 << 20);
    spec.context_length = args.get_int("--context", spec.context_length, 2, 1 << 22);
    spec.seed = args.get_u64("--seed", 1);
    if (const auto dtype = args.get("--dtype")) {
      const DType d = parse_weight_dtype(*dtype);
      spec.matrix_dtype = spec.embedding_dtype = spec.output_dtype = d;
    }
    if (spec.dim % spec.num_heads != 0 || spec.num_heads % spec.num_kv_heads != 0) {
      throw UsageError{"--dim must be a multiple of --heads, and --heads of --kv-heads"};
    }
  } catch (const UsageError& e) {
    std::cerr << "llmos make-model: " << e.message << "\n\n" << args.usage();
    return 2;
  }
  try {
    write_random_model(spec, output);
    std::cout << "wrote " << output << ": llama, dim " << spec.dim << ", " << spec.num_layers
              << " layers, " << spec.num_heads << " heads (" << spec.num_kv_heads
              << " KV), ffn " << spec.ffn_dim << ", seed " << spec.seed << "\n";
    return 0;
  } catch (const Error& e) {
    std::cerr << "llmos make-model: error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace llmos::cli
