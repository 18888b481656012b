// Tokenizer throughput (bytes of text per second) on a GGUF vocabulary. The vocabulary comes
// from $LLMOS_SHARED_DIR/vocab (default ../shared/vocab); the text is the vocabulary's test
// inputs repeated to 1 MiB.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tokenizer/tokenizer.h"

namespace llmos {
namespace {

std::string shared_dir() {
  const char* env = std::getenv("LLMOS_SHARED_DIR");
  return env != nullptr && *env != '\0' ? env : "../shared";
}

void BM_Encode(benchmark::State& state, const char* vocab_name) {
  const std::string base = shared_dir() + "/vocab/" + vocab_name;
  std::ifstream in(base + ".inp", std::ios::binary);
  if (!in) {
    state.SkipWithError(("missing " + base + ".inp (set LLMOS_SHARED_DIR)").c_str());
    return;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string text;
  while (text.size() < (1u << 20)) text += ss.str();
  std::unique_ptr<Tokenizer> tok;
  try {
    tok = Tokenizer::from_gguf(gguf::File::open(base));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  size_t tokens = 0;
  for (auto _ : state) {
    auto ids = tok->encode(text, false);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
}

BENCHMARK_CAPTURE(BM_Encode, llama_spm, "ggml-vocab-llama-spm.gguf")->Unit(benchmark::kMillisecond);
// Byte-level BPE (GPT-2 vocab and its gpt-2 pre-tokenizer).
BENCHMARK_CAPTURE(BM_Encode, gpt2_bpe, "ggml-vocab-gpt-2.gguf")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace llmos

BENCHMARK_MAIN();
