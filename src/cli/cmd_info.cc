// llmos info: what a GGUF model file holds.
#include <cstdio>
#include <iostream>

#include "backend/cuda/cuda_probe.h"
#include "cli/args.h"
#include "cli/cli_format.h"
#include "cli/commands.h"
#include "cli/model_source.h"
#include "core/error.h"
#include "model/model_config.h"
#include "tokenizer/tokenizer.h"

namespace llmos::cli {
int run_info(int argc, char** argv) {
  Args args("info", "describe a GGUF model: architecture, hyper-parameters, tokenizer, tensors",
            {{"-m", "--model", "PATH", "GGUF model (default: $LLMOS_MODEL)"},
             {"", "--metadata", "", "also list every metadata key"}});
  try {
    args.parse(argc, argv, 2);
    if (args.has("--help")) {
      std::cout << args.usage();
      return 0;
    }
    if (!resolve_model(args.get("--model"), false)) throw UsageError{"no model given (-m PATH or LLMOS_MODEL)"};
  } catch (const UsageError& e) {
    std::cerr << "llmos info: " << e.message << "\n\n" << args.usage();
    return 2;
  }
  try {
    const auto source = resolve_model(args.get("--model"), false);
    const gguf::File file = gguf::File::open(source->path);
    const ModelConfig c = ModelConfig::from_gguf(file);
    std::printf("file:            %s (GGUF v%u, %s, alignment %u)\n", file.path().c_str(), file.version(),
                human_bytes(static_cast<double>(file.file_size())).c_str(), file.alignment());
    std::printf("name:            %s\n", c.name.c_str());
    std::printf("architecture:    %s\n", c.architecture.c_str());
    std::printf("context length:  %lld\n", static_cast<long long>(c.context_length));
    std::printf("embedding:       %lld\n", static_cast<long long>(c.dim));
    std::printf("layers:          %lld\n", static_cast<long long>(c.num_layers));
    std::printf("heads:           %lld (KV heads %lld, head dim %lld)\n", static_cast<long long>(c.num_heads),
                static_cast<long long>(c.num_kv_heads), static_cast<long long>(c.head_dim));
    std::printf("feed-forward:    %lld\n", static_cast<long long>(c.ffn_dim));
    std::printf("rms norm eps:    %g\n", static_cast<double>(c.norm_eps));
    std::printf("rope:            base %g, %lld dims, %s pairs, scaling %s (factor %g)\n",
                static_cast<double>(c.rope_freq_base), static_cast<long long>(c.rope_dim),
                c.rope_neox ? "neox" : "adjacent", rope_scaling_name(c.rope_scaling),
                static_cast<double>(c.rope_scale_factor));
    std::printf("qkv bias:        %s\n", c.attention_bias ? "yes" : "no");
    std::printf("output weights:  %s\n", file.find_tensor("output.weight") ? "separate" : "tied to token_embd");

    const Vocab vocab = Vocab::from_gguf(file);
    std::printf("tokenizer:       %s, %zu tokens, bos %d, eos %d, unk %d, add_bos %s\n", vocab.model.c_str(),
                vocab.size(), vocab.bos, vocab.eos, vocab.unk, vocab.add_bos ? "yes" : "no");

    const CudaProbe cuda = probe_cuda();
    std::printf("cuda:            %s\n", cuda.compiled ? (std::to_string(cuda.device_count) + " device(s); " + cuda.detail).c_str()
                                                       : "not built");

    if (args.has("--metadata")) {
      std::printf("\nmetadata (%zu keys):\n", file.metadata().size());
      for (const auto& [key, value] : file.metadata()) {
        std::printf("  %-44s %s\n", key.c_str(), value.to_display_string().c_str());
      }
    }
    std::printf("\ntensors (%zu):\n", file.tensors().size());
    uint64_t total = 0;
    for (const auto& t : file.tensors()) {
      std::printf("  %-36s %-6s %-16s %s\n", t.name.c_str(), std::string(dtype_name(t.dtype)).c_str(),
                  shape_string(t.shape).c_str(), human_bytes(static_cast<double>(t.nbytes)).c_str());
      total += t.nbytes;
    }
    std::printf("total tensor data: %s\n", human_bytes(static_cast<double>(total)).c_str());
    return 0;
  } catch (const Error& e) {
    std::cerr << "llmos info: error: " << e.message() << "\n";
    return 1;
  }
}

}  // namespace llmos::cli
