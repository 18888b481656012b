// Shared helpers for the engine tests: a small model (stories260K when
// ../shared has it, else a seeded random model with the built-in vocabulary)
// and the single-sequence oracle.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "engine/engine.h"
#include "engine/generator.h"
#include "model/llama_model.h"
#include "model/random_model.h"
#include "support/test_paths.h"

namespace llmos::test {

inline std::shared_ptr<LlamaModel> load_engine_test_model(int threads = 2) {
  std::shared_ptr<Backend> backend = create_backend({Device::cpu(), threads});
  if (shared_file_exists("models/stories260K.gguf")) {
    return LlamaModel::load(shared_path("models/stories260K.gguf"), backend);
  }
  RandomModelSpec spec;
  spec.dim = 64;
  spec.num_layers = 2;
  spec.context_length = 512;
  spec.seed = 7;
  const std::string path = temp_dir() + "/engine_test_model.gguf";
  write_random_model(spec, path);
  return LlamaModel::load(path, backend);
}

// Greedy tokens for one prompt, alone, through the single-sequence generator (a
// separate code path from the engine: no scheduler, no shared cache, one
// contiguous block table).
inline std::vector<int32_t> generate_alone(LlamaModel& model, const std::vector<int32_t>& prompt,
                                           int max_tokens, DType kv_dtype = DType::kF16) {
  GenerateOptions options;
  options.max_tokens = max_tokens;
  options.sampling.temperature = 0.0f;
  options.kv_dtype = kv_dtype;
  Generator generator(model, options);
  return generator.generate_tokens(prompt).tokens;
}

// Prompts of varied lengths; several share a long common prefix (a "system
// prompt") so the prefix cache has something to find.
inline std::vector<std::string> engine_test_prompts() {
  const std::string system =
      "Once upon a time, there was a little girl named "
      "Lily. She loved to play outside in the "
      "park with her friends. ";
  return {
      system + "One day, she saw a big red ball.",
      "Tom had a dog.",
      system + "She found a shiny stone near the river and",
      "The sun was",
      system + "Her mom said",
      "A cat sat on the mat and looked at the bird in the tall tree. The bird "
      "sang a song, and the cat",
      "Lily",
      system + "One day, she saw a big red ball. She ran",
  };
}

}  // namespace llmos::test
