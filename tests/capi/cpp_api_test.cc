// The C++ API (llmos/llmos.hpp, namespace llmos::api) over the C API: RAII, exceptions carrying
// the status and message, generation against the stories260K reference continuations, pull and
// push streaming, cancellation, snapshots and stats. Linked with the static library, which also
// holds the internal namespace llmos: building this file shows the two do not clash.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "llmos/llmos.hpp"
#include "support/mini_json.h"
#include "support/test_paths.h"

namespace {

namespace api = llmos::api;
constexpr const char* kModel = "models/stories260K.gguf";
constexpr const char* kExpected = "models/stories260K.greedy.json";

struct Reference {
  std::string prompt;
  int n_predict = 0;
  std::string continuation;
};

std::vector<Reference> references() {
  std::vector<Reference> out;
  const auto doc =
      llmos::test::parse_json(llmos::test::read_file(llmos::test::shared_path(kExpected)));
  for (const auto& e : doc.array) {
    out.push_back({e.at("prompt").string, static_cast<int>(e.at("n_predict").number),
                   e.at("continuation").string});
  }
  return out;
}

api::ModelParams two_threads() {
  api::ModelParams p;
  p.n_threads = 2;
  return p;
}

api::EngineParams small_engine() {
  api::EngineParams p;
  p.kv_cache_blocks = 128;
  return p;
}

TEST(CppApi, ErrorsAreExceptionsWithStatusAndMessage) {
  try {
    api::Model m("/nonexistent/dir/model.gguf");
    FAIL() << "no exception";
  } catch (const api::Error& e) {
    EXPECT_EQ(e.status(), LLMOS_ERR_IO);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/model.gguf"), std::string::npos)
        << e.what();
  }
  api::ModelParams bad;
  bad.device = "abacus";
  try {
    api::Model m("whatever.gguf", bad);
    FAIL() << "no exception";
  } catch (const api::Error& e) {
    EXPECT_EQ(e.status(), LLMOS_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.what()).find("abacus"), std::string::npos) << e.what();
  }
  EXPECT_EQ(api::version(), LLMOS_VERSION_STRING);
}

TEST(CppApi, ModelInfoAndTokenizerRoundTrip) {
  LLMOS_REQUIRE_SHARED(kModel);
  api::Model model(llmos::test::shared_path(kModel), two_threads());
  const api::ModelInfo info = model.info();
  EXPECT_EQ(info.architecture, "llama");
  EXPECT_GT(info.vocab_size, 0);
  EXPECT_EQ(info.n_threads, 2);
  const std::string text = "Tom and Lily went to the park, and they were happy.";
  const std::vector<api::Token> with_bos = model.tokenize(text, true);
  const std::vector<api::Token> plain = model.tokenize(text, false);
  ASSERT_FALSE(plain.empty());
  if (info.add_bos) {
    ASSERT_EQ(with_bos.size(), plain.size() + 1);
    EXPECT_EQ(with_bos[0], info.bos);
  }
  EXPECT_EQ(model.detokenize(plain), text);
  // A text longer than the first buffer guesses still comes back whole.
  std::string longer;
  for (int i = 0; i < 40; ++i) longer += text + " ";
  EXPECT_EQ(model.detokenize(model.tokenize(longer, false)), longer);
  std::string pieces;
  for (api::Token t : plain) pieces += model.token_to_piece(t);
  EXPECT_EQ(pieces.substr(pieces[0] == ' ' ? 1 : 0), text);
  try {
    model.token_to_piece(-5);
    FAIL() << "no exception";
  } catch (const api::Error& e) {
    EXPECT_EQ(e.status(), LLMOS_ERR_INVALID_ARGUMENT);
  }
}

TEST(CppApi, GreedyGenerationMatchesReference) {
  LLMOS_REQUIRE_SHARED(kModel);
  LLMOS_REQUIRE_SHARED(kExpected);
  api::Model model(llmos::test::shared_path(kModel), two_threads());
  api::Engine engine(model, small_engine());
  for (const Reference& r : references()) {
    EXPECT_EQ(engine.generate(r.prompt, api::SamplingParams::greedy(r.n_predict)), r.continuation)
        << r.prompt;
  }
}

TEST(CppApi, PullStreamingAndCancel) {
  LLMOS_REQUIRE_SHARED(kModel);
  LLMOS_REQUIRE_SHARED(kExpected);
  const Reference ref = references().at(0);
  api::Model model(llmos::test::shared_path(kModel), two_threads());
  api::Engine engine(model, small_engine());

  api::Request r;
  r.prompt = ref.prompt;
  r.sampling = api::SamplingParams::greedy(ref.n_predict);
  const uint64_t id = engine.submit(r);
  std::string text;
  int tokens = 0;
  for (;;) {
    std::optional<api::Event> ev = engine.next_event(id, std::chrono::seconds(30));
    ASSERT_TRUE(ev.has_value());
    text += ev->text;
    if (ev->finished) {
      EXPECT_TRUE(ev->finish_reason == LLMOS_FINISH_LENGTH ||
                  ev->finish_reason == LLMOS_FINISH_EOS);
      break;
    }
    ++tokens;
  }
  EXPECT_EQ(text, ref.continuation);
  EXPECT_GT(tokens, 0);
  EXPECT_FALSE(engine.cancel(id));  // already ended
  try {
    engine.next_event(id, std::chrono::milliseconds(0));
    FAIL() << "no exception";
  } catch (const api::Error& e) {
    EXPECT_EQ(e.status(), LLMOS_ERR_NOT_FOUND);
  }

  r.sampling.max_tokens = 2000;  // ample time for the cancellation to land first
  r.sampling.ignore_eos = 1;
  const uint64_t long_id = engine.submit(r);
  ASSERT_TRUE(engine.next_event(long_id).has_value());
  EXPECT_TRUE(engine.cancel(long_id));
  const auto [rest, last] = engine.wait(long_id);
  EXPECT_EQ(last.finish_reason, LLMOS_FINISH_CANCELLED);

  const api::Stats s = engine.stats();
  EXPECT_EQ(s.total_requests, 2);
  EXPECT_EQ(s.cancelled_requests, 1);
  EXPECT_GT(s.tokens_generated, tokens);
}

TEST(CppApi, CallbackStreamingAndStopByReturningFalse) {
  LLMOS_REQUIRE_SHARED(kModel);
  LLMOS_REQUIRE_SHARED(kExpected);
  const Reference ref = references().at(0);
  api::Model model(llmos::test::shared_path(kModel), two_threads());
  api::Engine engine(model, small_engine());

  std::mutex mu;
  std::condition_variable cv;
  std::string text;
  int tokens = 0;
  bool done = false;
  llmos_finish_reason reason = LLMOS_FINISH_NONE;
  auto run = [&](int stop_after, int max_tokens) {
    text.clear();
    tokens = 0;
    done = false;
    api::Request r;
    r.prompt = ref.prompt;
    r.sampling = api::SamplingParams::greedy(max_tokens);
    r.sampling.ignore_eos = stop_after > 0 ? 1 : 0;
    r.on_event = [&, stop_after](const api::Event& ev) {
      std::lock_guard<std::mutex> lk(mu);
      text += ev.text;
      if (ev.finished) {
        reason = ev.finish_reason;
        done = true;
        cv.notify_all();
        return true;
      }
      ++tokens;
      return stop_after == 0 || tokens < stop_after;
    };
    engine.submit(r);
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return done; });
  };
  run(0, ref.n_predict);
  EXPECT_EQ(text, ref.continuation);
  run(5, 300);
  EXPECT_EQ(reason, LLMOS_FINISH_CANCELLED);
  EXPECT_GE(tokens, 5);
  EXPECT_LT(tokens, 300);
}

TEST(CppApi, SnapshotSaveRestoreEqualsUninterruptedRun) {
  LLMOS_REQUIRE_SHARED(kModel);
  api::Model model(llmos::test::shared_path(kModel), two_threads());
  const std::string path = llmos::test::temp_dir() + "/cpp_ctx.bin";
  std::string first, second, whole;
  {
    api::Engine engine(model, small_engine());
    api::Request r;
    r.prompt = "The sun was";
    r.sampling = api::SamplingParams::greedy(10);
    r.sampling.ignore_eos = 1;
    r.keep_context = true;
    const uint64_t id = engine.submit(r);
    first = engine.wait(id).first;
    engine.snapshot_save(id, path);
    r.keep_context = false;
    r.sampling.max_tokens = 20;
    whole = engine.generate(r);
  }
  api::Engine later(model, small_engine());  // a new engine: the file carries the context
  api::Request cont;
  cont.sampling = api::SamplingParams::greedy(10);
  cont.sampling.ignore_eos = 1;
  second = later.wait(later.snapshot_restore(path, cont)).first;
  EXPECT_EQ(first + second, whole);
  try {
    later.snapshot_restore(path + ".missing");
    FAIL() << "no exception";
  } catch (const api::Error& e) {
    EXPECT_EQ(e.status(), LLMOS_ERR_IO);
  }
  std::remove(path.c_str());
}

TEST(CppApi, EngineOutlivesModelAndHandlesMove) {
  LLMOS_REQUIRE_SHARED(kModel);
  std::atomic<int> messages{0};
  api::set_log_callback([&](llmos_log_level, std::string_view m) {
    if (!m.empty()) ++messages;
  });
  std::optional<api::Engine> engine;
  {
    api::Model model(llmos::test::shared_path(kModel), two_threads());
    api::Model moved = std::move(model);
    EXPECT_EQ(model.get(), nullptr);
    engine.emplace(moved, small_engine());
  }
  api::set_log_callback(nullptr);
  EXPECT_GE(messages.load(), 2);  // the load and the engine's creation
  EXPECT_FALSE(engine->generate("Once upon a time", api::SamplingParams::greedy(8)).empty());
  api::Engine other = std::move(*engine);
  EXPECT_EQ(engine->get(), nullptr);
  EXPECT_FALSE(other.generate("The sun was", api::SamplingParams::greedy(4)).empty());
}

// Destroying an engine with requests in flight ends them: a callback request gets its last
// event (which frees the C++ callback: the leak checker would see it otherwise) and a pulled one
// is cancelled.
TEST(CppApi, EngineDestroyedWithRequestsInFlight) {
  LLMOS_REQUIRE_SHARED(kModel);
  api::Model model(llmos::test::shared_path(kModel), two_threads());
  auto last = std::make_shared<std::atomic<int>>(-1);
  {
    api::Engine engine(model, small_engine());
    api::Request r;
    r.prompt = "Once upon a time";
    r.sampling = api::SamplingParams::greedy(400);
    r.sampling.ignore_eos = 1;
    engine.submit(r);  // pulled, never read
    r.on_event = [last](const api::Event& ev) {
      if (ev.finished) last->store(ev.finish_reason);
      return true;
    };
    engine.submit(r);
  }
  EXPECT_TRUE(last->load() == LLMOS_FINISH_CANCELLED || last->load() == LLMOS_FINISH_LENGTH)
      << last->load();
}

}  // namespace
