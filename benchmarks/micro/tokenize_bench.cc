// Tokenizer throughput (bytes of text per second, one core) on a GGUF vocabulary. The
// vocabulary comes from $LLMOS_SHARED_DIR/vocab (default ../shared/vocab). Two texts, each
// repeated to 1 MiB: the vocabulary's test inputs (many scripts, emoji, whitespace edge
// cases) and plain English prose.
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

constexpr const char* kEnglish =
    "The scheduler wakes every few milliseconds, looks at the queue of waiting requests, and "
    "decides which of them may run next. A request from the shell is interactive, so it goes "
    "first; the nightly report can wait. Each conversation keeps its memory in small pages, and "
    "when memory runs short the oldest background work is paused, written out, and brought back "
    "later exactly as it was. Nobody has to think about any of this: you type a question, and a "
    "moment later the answer starts to appear, one word at a time, while the lights in the hall "
    "dim because the house assistant noticed it's 11 p.m. and you've been reading for 2 hours.\n";

enum class Text { kVectors, kEnglish };

void BM_Encode(benchmark::State& state, const char* vocab_name, Text which) {
  const std::string base = shared_dir() + "/vocab/" + vocab_name;
  std::string sample = kEnglish;
  if (which == Text::kVectors) {
    std::ifstream in(base + ".inp", std::ios::binary);
    if (!in) {
      state.SkipWithError(("missing " + base + ".inp (set LLMOS_SHARED_DIR)").c_str());
      return;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    sample = ss.str();
  }
  std::string text;
  while (text.size() < (1u << 20)) text += sample;
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

BENCHMARK_CAPTURE(BM_Encode, llama_spm_vectors, "ggml-vocab-llama-spm.gguf", Text::kVectors)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, llama_spm_english, "ggml-vocab-llama-spm.gguf", Text::kEnglish)
    ->Unit(benchmark::kMillisecond);
// Byte-level BPE (GPT-2 vocab and its gpt-2 pre-tokenizer).
BENCHMARK_CAPTURE(BM_Encode, gpt2_bpe_vectors, "ggml-vocab-gpt-2.gguf", Text::kVectors)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, gpt2_bpe_english, "ggml-vocab-gpt-2.gguf", Text::kEnglish)
    ->Unit(benchmark::kMillisecond);
// Llama 3's vocabulary (128k tokens, llama-bpe pre-tokenizer), when the vocab folder has it.
BENCHMARK_CAPTURE(BM_Encode, llama_bpe_english, "ggml-vocab-llama-bpe.gguf", Text::kEnglish)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace llmos

BENCHMARK_MAIN();
