// The C++ API (llmos/llmos.hpp): load a model, share one engine between two clients of
// different priority, one streaming through a callback and one pulling events, then print the
// engine's statistics. Errors arrive as llmos::api::Error.
//
//   generate_cpp MODEL.gguf [PROMPT] [MAX_TOKENS]      (MODEL defaults to $LLMOS_MODEL)
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>

#include "llmos/llmos.hpp"

int main(int argc, char** argv) {
  namespace api = llmos::api;
  const char* env = std::getenv("LLMOS_MODEL");
  const std::string path = argc > 1 ? argv[1] : (env != nullptr ? env : "");
  const std::string prompt = argc > 2 ? argv[2] : "Once upon a time";
  const int max_tokens = argc > 3 ? std::atoi(argv[3]) : 48;
  if (path.empty()) {
    std::cerr << "usage: generate_cpp MODEL.gguf [PROMPT] [MAX_TOKENS]\n";
    return 2;
  }
  try {
    api::Model model(path);
    const api::ModelInfo info = model.info();
    std::cerr << "[generate_cpp] llmos " << api::version() << ", " << info.architecture
              << " model, vocab " << info.vocab_size << ", context " << info.context_length << "\n";
    api::Engine engine(model);

    // Client 1: realtime, pushed to a callback on the engine thread.
    std::mutex mu;
    std::condition_variable cv;
    std::string pushed;
    bool done = false;
    api::Request realtime;
    realtime.prompt = prompt;
    realtime.priority = LLMOS_PRIORITY_REALTIME;
    realtime.client_id = "assistant";
    realtime.sampling = api::SamplingParams::greedy(max_tokens);
    realtime.on_event = [&](const api::Event& ev) {
      std::lock_guard<std::mutex> lk(mu);
      pushed += ev.text;
      if (ev.finished) {
        done = true;
        cv.notify_all();
      }
      return true;  // false would cancel the request
    };
    engine.submit(realtime);

    // Client 2: background, pulled here while the engine batches both.
    api::Request background;
    background.prompt = "The sun was";
    background.priority = LLMOS_PRIORITY_BACKGROUND;
    background.client_id = "indexer";
    background.sampling.max_tokens = max_tokens;
    background.sampling.seed = 42;
    const uint64_t id = engine.submit(background);
    std::string pulled;
    for (;;) {
      const api::Event ev = *engine.next_event(id);
      pulled += ev.text;
      if (ev.finished) break;
    }
    {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [&] { return done; });
    }
    std::cout << "[realtime, greedy] " << prompt << pushed << "\n";
    std::cout << "[background, sampled] The sun was" << pulled << "\n";
    std::cout << "[blocking generate] " << prompt
              << engine.generate(prompt, api::SamplingParams::greedy(8)) << "\n";

    const api::Stats s = engine.stats();
    std::cerr << "[generate_cpp] " << s.total_requests << " requests, " << s.steps << " steps, "
              << s.tokens_generated << " tokens generated, prefix cache hit " << s.prefix_hit_tokens
              << "/" << s.prefix_query_tokens << " tokens\n";
    return 0;
  } catch (const api::Error& e) {
    std::cerr << "generate_cpp: " << e.what() << " (" << llmos_status_string(e.status()) << ")\n";
    return 1;
  }
}
