// Embedding llmos from C++: load a GGUF model, generate a greedy continuation, stream it.
//   generate_text MODEL.gguf "PROMPT" [N]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "backend/backend.h"
#include "core/error.h"
#include "engine/generator.h"
#include "model/llama_model.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.gguf PROMPT [N]\n", argv[0]);
    return 2;
  }
  try {
    std::shared_ptr<llmos::Backend> backend = llmos::create_backend({llmos::Device::cpu(), 0});
    auto model = llmos::LlamaModel::load(argv[1], backend);

    llmos::GenerateOptions options;
    options.max_tokens = argc > 3 ? std::atoi(argv[3]) : 32;
    options.sampling.temperature = 0.0f;  // greedy
    llmos::Generator generator(*model, options);

    std::printf("%s", argv[2]);
    generator.generate(argv[2], [](llmos::TokenId, std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;  // keep going
    });
    std::printf("\n");
    return 0;
  } catch (const llmos::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
