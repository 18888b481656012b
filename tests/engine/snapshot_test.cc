// Context snapshots through the Engine: a request kept with keep_context, switched out with
// take_snapshot() and resumed later (in the same engine after the cache has churned, in another
// engine, or from a file) continues exactly as one fresh request over the whole history would:
// greedy tokens are compared one for one. Snapshots of another model or KV layout are refused
// at submit, and restoring under preemption (swap, or swap falling back to recompute) changes
// nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "engine_test_util.h"
#include "kv/context_snapshot.h"

namespace llmos {
namespace {

constexpr int kMaxTokens = 20;

using Tokens = std::vector<int32_t>;

Tokens concat(Tokens a, const Tokens& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

EngineConfig make_config(DType kv_dtype = DType::kF16, int block_size = 16, int64_t blocks = 256) {
  EngineConfig c;
  c.kv_dtype = kv_dtype;
  c.block_size = block_size;
  c.kv_cache_blocks = blocks;
  c.max_sequences = 8;
  return c;
}

EngineRequest greedy(Tokens prompt, bool keep = false,
                     std::shared_ptr<const ContextSnapshot> resume = nullptr) {
  EngineRequest r;
  r.prompt_tokens = std::move(prompt);
  r.max_tokens = kMaxTokens;
  r.sampling.temperature = 0.0f;
  r.ignore_eos = true;  // every request runs its full length: longer, comparable histories
  r.keep_context = keep;
  r.resume = std::move(resume);
  return r;
}

RequestResult run(Engine& engine, EngineRequest r) {
  return engine.wait(engine.submit(std::move(r)));
}

void expect_error(const std::function<void()>& f, StatusCode code, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error thrown (expected " << status_code_name(code) << ")";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message lacks '" << needle << "': " << e.what();
  }
}

class EngineSnapshot : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = test::load_engine_test_model(); }
  static void TearDownTestSuite() { model_.reset(); }

  static Tokens prompt(size_t i) {
    return model_->tokenizer().encode(test::engine_test_prompts().at(i), /*add_special=*/true);
  }
  static Tokens continuation(const std::string& text) {
    return model_->tokenizer().encode(text, /*add_special=*/false);
  }
  // The oracle: one fresh request over the whole history, on its own engine (no prefix cache,
  // so every token is computed from scratch).
  static Tokens fresh(const Tokens& history, DType kv_dtype = DType::kF16) {
    EngineConfig c = make_config(kv_dtype, 16, 64);
    c.enable_prefix_caching = false;
    Engine oracle(model_, c);
    const RequestResult r = run(oracle, greedy(history));
    EXPECT_EQ(r.finish_reason, RequestFinishReason::kLength) << r.error;
    return r.tokens;
  }

  // Runs `prompt` with keep_context and returns its result and snapshot, checking the
  // snapshot describes exactly that request.
  static std::shared_ptr<ContextSnapshot> keep(Engine& engine, const Tokens& p,
                                               RequestResult* result = nullptr) {
    RequestResult a = run(engine, greedy(p, /*keep=*/true));
    EXPECT_EQ(a.finish_reason, RequestFinishReason::kLength) << a.error;
    EXPECT_EQ(a.tokens.size(), static_cast<size_t>(kMaxTokens));
    std::shared_ptr<ContextSnapshot> snap = engine.take_snapshot(a.id);
    EXPECT_NE(snap, nullptr);
    if (!snap) return nullptr;
    EXPECT_EQ(snap->tokens, concat(p, a.tokens));
    // The last sampled token has no K/V yet.
    EXPECT_EQ(snap->kv.num_tokens, static_cast<int64_t>(snap->tokens.size()) - 1);
    EXPECT_EQ(snap->model_fingerprint, engine.model_fingerprint());
    EXPECT_EQ(snap->layout.block_size, engine.config().block_size);
    EXPECT_EQ(snap->layout.dtype, engine.config().kv_dtype);
    EXPECT_NO_THROW(snap->validate());
    if (result) *result = std::move(a);
    return snap;
  }

  static std::shared_ptr<LlamaModel> model_;
};
std::shared_ptr<LlamaModel> EngineSnapshot::model_;

// ---- context switch ------------------------------------------------------------------------

class EngineSnapshotDtype : public EngineSnapshot, public ::testing::WithParamInterface<DType> {};

TEST_P(EngineSnapshotDtype, ResumedContextContinuesLikeOneFreshRequest) {
  const DType dtype = GetParam();
  Engine engine(model_, make_config(dtype));
  for (size_t i : {size_t{0}, size_t{3}}) {
    SCOPED_TRACE(::testing::Message() << "prompt " << i);
    const Tokens p = prompt(i);
    RequestResult a;
    std::shared_ptr<ContextSnapshot> snap = keep(engine, p, &a);
    ASSERT_NE(snap, nullptr);
    for (const Tokens& q : {continuation(" Then the little dog"), Tokens{}}) {
      SCOPED_TRACE(::testing::Message() << q.size() << " continuation tokens");
      const RequestResult b = run(engine, greedy(q, false, snap));
      ASSERT_EQ(b.finish_reason, RequestFinishReason::kLength) << b.error;
      const Tokens history = concat(concat(p, a.tokens), q);
      EXPECT_EQ(b.prompt_tokens, history);
      EXPECT_EQ(b.num_cached_prompt_tokens, snap->kv.num_tokens);
      EXPECT_EQ(b.tokens, fresh(history, dtype));
    }
  }
  const EngineStats st = engine.stats();
  EXPECT_EQ(st.kv.used_blocks, 0);
  EXPECT_EQ(st.swap_used_bytes, 0);
}

INSTANTIATE_TEST_SUITE_P(KvDtypes, EngineSnapshotDtype,
                         ::testing::Values(DType::kF16, DType::kF32, DType::kBF16),
                         [](const auto& p) { return std::string(dtype_name(p.param)); });

// A resumed request can itself be kept and resumed: two context switches in a row.
TEST_F(EngineSnapshot, ChainedContextSwitches) {
  Engine engine(model_, make_config());
  const Tokens p = prompt(1);
  RequestResult a;
  std::shared_ptr<ContextSnapshot> s1 = keep(engine, p, &a);
  ASSERT_NE(s1, nullptr);
  const Tokens q1 = continuation(" The dog");
  const RequestResult b = run(engine, greedy(q1, /*keep=*/true, s1));
  std::shared_ptr<ContextSnapshot> s2 = engine.take_snapshot(b.id);
  ASSERT_NE(s2, nullptr);
  const Tokens h1 = concat(concat(p, a.tokens), q1);
  EXPECT_EQ(s2->tokens, concat(h1, b.tokens));
  EXPECT_EQ(s2->kv.num_tokens, static_cast<int64_t>(s2->tokens.size()) - 1);
  const Tokens q2 = continuation(" and the cat");
  const RequestResult c = run(engine, greedy(q2, false, s2));
  EXPECT_EQ(c.tokens, fresh(concat(s2->tokens, q2)));
}

// ---- restoring elsewhere -------------------------------------------------------------------

TEST_F(EngineSnapshot, RestoreAfterTheCacheChurnedAndInAnotherEngine) {
  // Small blocks, a small budget and no prefix cache: the churn reuses every block A had, so
  // the restored K/V must land in whichever blocks are free then.
  EngineConfig tight = make_config(DType::kF16, 4, 64);
  tight.enable_prefix_caching = false;
  tight.watermark = 0.0;
  Engine engine(model_, tight);
  const Tokens p = prompt(2);
  RequestResult a;
  std::shared_ptr<ContextSnapshot> snap = keep(engine, p, &a);
  ASSERT_NE(snap, nullptr);
  const Tokens q = continuation(" She ran");
  const Tokens expected = fresh(concat(concat(p, a.tokens), q));

  EngineRequest churn = greedy({});
  churn.max_tokens = 24;
  const std::vector<std::string> prompts = test::engine_test_prompts();
  for (const RequestResult& r : engine.generate(prompts, churn))
    EXPECT_EQ(r.finish_reason, RequestFinishReason::kLength) << r.error;
  EXPECT_EQ(run(engine, greedy(q, false, snap)).tokens, expected) << "after churn";

  // Resumed while the churn runs beside it (and preempts: 64 blocks of 4 are not enough).
  std::vector<uint64_t> ids;
  for (const std::string& s : prompts) {
    EngineRequest r = churn;
    r.prompt = s;
    ids.push_back(engine.submit(r));
  }
  const uint64_t resumed = engine.submit(greedy(q, false, snap));
  for (uint64_t id : ids) engine.wait(id);
  EXPECT_EQ(engine.wait(resumed).tokens, expected) << "beside the churn";
  EXPECT_GT(engine.stats().total_preemptions, 0)
      << "the churn did not put the cache under pressure";

  // Another engine on the same model, sized and batched differently, same KV layout.
  EngineConfig other = make_config(DType::kF16, 4, 300);
  other.max_batched_tokens = 7;  // the restored request's new tokens come in small chunks
  Engine second(model_, other);
  EXPECT_EQ(second.model_fingerprint(), engine.model_fingerprint());
  EXPECT_EQ(run(second, greedy(q, false, snap)).tokens, expected) << "second engine";
  EXPECT_EQ(engine.stats().kv.used_blocks, 0);
  EXPECT_EQ(second.stats().kv.used_blocks, 0);
}

TEST_F(EngineSnapshot, SavedToAFileAndLoadedResumesIdentically) {
  Engine engine(model_, make_config());
  const Tokens p = prompt(5);
  RequestResult a;
  std::shared_ptr<ContextSnapshot> snap = keep(engine, p, &a);
  ASSERT_NE(snap, nullptr);
  const std::string path = test::temp_dir() + "/engine_snapshot.llmosctx";
  snap->save(path);
  auto loaded = std::make_shared<ContextSnapshot>(ContextSnapshot::load(path));
  EXPECT_EQ(loaded->tokens, snap->tokens);
  EXPECT_EQ(loaded->model_fingerprint, snap->model_fingerprint);
  EXPECT_EQ(loaded->kv.num_tokens, snap->kv.num_tokens);
  EXPECT_TRUE(loaded->kv.data == snap->kv.data);

  const Tokens q = continuation(" The end");
  const Tokens expected = fresh(concat(concat(p, a.tokens), q));
  EXPECT_EQ(run(engine, greedy(q, false, snap)).tokens, expected) << "in memory";
  EXPECT_EQ(run(engine, greedy(q, false, loaded)).tokens, expected) << "from the file";
  Engine second(model_, make_config(DType::kF16, 16, 40));
  EXPECT_EQ(run(second, greedy(q, false, loaded)).tokens, expected) << "file, second engine";
}

// ---- refusals ------------------------------------------------------------------------------

TEST_F(EngineSnapshot, SnapshotOfAnotherModelOrLayoutIsRefusedAtSubmit) {
  Engine engine(model_, make_config());
  std::shared_ptr<ContextSnapshot> snap = keep(engine, prompt(1));
  ASSERT_NE(snap, nullptr);
  const Tokens q = continuation(" and");

  // Same geometry and vocabulary, other weights.
  const ModelConfig& mc = model_->config();
  RandomModelSpec spec;
  spec.dim = mc.dim;
  spec.num_layers = mc.num_layers;
  spec.num_heads = mc.num_heads;
  spec.num_kv_heads = mc.num_kv_heads;
  spec.ffn_dim = mc.ffn_dim;
  spec.context_length = mc.context_length;
  spec.seed = 4242;
  if (test::shared_file_exists("models/stories260K.gguf") && mc.vocab_size == 512)
    spec.vocab_from = test::shared_path("models/stories260K.gguf");
  const std::string path = test::temp_dir() + "/snapshot_other_model.gguf";
  write_random_model(spec, path);
  auto other_model = LlamaModel::load(path, create_backend({Device::cpu(), 2}));
  const KvCacheSpec mine = model_->kv_cache_spec(1, 16, DType::kF16);
  const KvCacheSpec theirs = other_model->kv_cache_spec(1, 16, DType::kF16);
  ASSERT_EQ(theirs.block_bytes(), mine.block_bytes()) << "the other model must share the KV layout";
  ASSERT_EQ(theirs.num_layers, mine.num_layers);
  Engine other(std::move(other_model), make_config());
  EXPECT_NE(other.model_fingerprint(), engine.model_fingerprint());
  expect_error([&] { other.submit(greedy(q, false, snap)); }, StatusCode::kInvalidArgument,
               "model");

  Engine blocks8(model_, make_config(DType::kF16, 8));
  expect_error([&] { blocks8.submit(greedy(q, false, snap)); }, StatusCode::kInvalidArgument,
               "layout");
  Engine f32(model_, make_config(DType::kF32));
  expect_error([&] { f32.submit(greedy(q, false, snap)); }, StatusCode::kInvalidArgument, "layout");

  // An inconsistent snapshot is refused too, naming what is wrong.
  auto broken = std::make_shared<ContextSnapshot>(*snap);
  broken->kv.data.resize(broken->kv.data.size() - 1);
  expect_error([&] { engine.submit(greedy(q, false, broken)); }, StatusCode::kInvalidArgument,
               "bytes");
  // Nothing was queued by the refusals.
  EXPECT_EQ(engine.stats().total_requests, 1);
  EXPECT_EQ(other.stats().total_requests, 0);
}

TEST_F(EngineSnapshot, TakeSnapshotNeedsAnEndedKeptRequestAndHandsItOverOnce) {
  Engine engine(model_, make_config());
  const RequestResult plain = run(engine, greedy(prompt(3)));
  expect_error([&] { engine.take_snapshot(plain.id); }, StatusCode::kNotFound, "keep_context");
  expect_error([&] { engine.take_snapshot(987654); }, StatusCode::kNotFound, "987654");

  const RequestResult kept = run(engine, greedy(prompt(3), /*keep=*/true));
  EXPECT_NE(engine.take_snapshot(kept.id), nullptr);
  expect_error([&] { engine.take_snapshot(kept.id); }, StatusCode::kNotFound, "already taken");
}

TEST_F(EngineSnapshot, NoSnapshotBeforeTheRequestEnds) {
  // The engine thread is held inside the first token's callback. (Everything the callback
  // touches is declared before the engine, which joins its thread first when destroyed.)
  std::promise<void> first_token, release, ended;
  std::shared_future<void> release_f = release.get_future().share();
  bool first = true;
  Engine engine(model_, make_config());
  EngineRequest r = greedy(prompt(3), /*keep=*/true);
  r.on_event = [&](const TokenEvent& ev) {
    if (ev.finished) {
      ended.set_value();
      return;
    }
    if (first) {
      first = false;
      first_token.set_value();
      release_f.wait();
    }
  };
  const uint64_t id = engine.submit(std::move(r));
  first_token.get_future().wait();
  expect_error([&] { engine.take_snapshot(id); }, StatusCode::kNotFound, "not ended yet");
  release.set_value();
  ASSERT_EQ(ended.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
}

// A kept request cancelled mid-generation leaves the context it had reached, and it resumes
// like any other (however many tokens it got before the cancel landed).
TEST_F(EngineSnapshot, CancelledKeptRequestLeavesAResumableContext) {
  Engine engine(model_, make_config());
  EngineRequest r = greedy(prompt(4), /*keep=*/true);
  r.max_tokens = 200;
  const uint64_t id = engine.submit(r);
  for (int got = 0; got < 5;) {
    std::optional<TokenEvent> ev = engine.next_event(id, std::chrono::seconds(60));
    ASSERT_TRUE(ev.has_value());
    ASSERT_FALSE(ev->finished);
    ++got;
  }
  EXPECT_TRUE(engine.cancel(id));
  const RequestResult res = engine.wait(id);
  ASSERT_EQ(res.finish_reason, RequestFinishReason::kCancelled);
  ASSERT_GE(res.tokens.size(), 5u);
  std::shared_ptr<ContextSnapshot> snap = engine.take_snapshot(id);
  ASSERT_NE(snap, nullptr);
  EXPECT_EQ(snap->tokens, concat(prompt(4), res.tokens));
  EXPECT_EQ(snap->kv.num_tokens, static_cast<int64_t>(snap->tokens.size()) - 1);
  const Tokens q = continuation(" The sun");
  EXPECT_EQ(run(engine, greedy(q, false, snap)).tokens, fresh(concat(snap->tokens, q)));
  EXPECT_EQ(engine.stats().cancelled_requests, 1);
  EXPECT_EQ(engine.stats().kv.used_blocks, 0);
}

// The continuations above match only if the restored K/V are really used: with the snapshot's
// K/V bytes zeroed the same resume must go differently (and no prompt token is recomputed).
TEST_F(EngineSnapshot, RestoredKvIsReallyUsed) {
  Engine engine(model_, make_config());
  const Tokens p = prompt(0);
  RequestResult a;
  std::shared_ptr<ContextSnapshot> snap = keep(engine, p, &a);
  ASSERT_NE(snap, nullptr);
  const Tokens q = continuation(" Then");
  auto zeroed = std::make_shared<ContextSnapshot>(*snap);
  std::fill(zeroed->kv.data.begin(), zeroed->kv.data.end(), std::byte{0});
  const RequestResult b = run(engine, greedy(q, false, zeroed));
  EXPECT_EQ(b.num_cached_prompt_tokens, snap->kv.num_tokens);
  EXPECT_NE(b.tokens, fresh(concat(concat(p, a.tokens), q)))
      << "zeroed K/V gave the same continuation: the comparisons prove nothing";
  EXPECT_EQ(engine.stats().prompt_tokens_computed, static_cast<int64_t>(p.size() + q.size() + 1))
      << "A's prompt, then only the snapshot's last token and the new ones";

  // K/V that came from outside never reach other requests through the prefix cache: on an
  // engine that has seen nothing but the zeroed snapshot, a fresh request over the same
  // history computes everything itself and gets the true continuation.
  Engine other(model_, make_config());
  const RequestResult poisoned = run(other, greedy(q, false, zeroed));
  EXPECT_EQ(poisoned.tokens, b.tokens);
  const Tokens history = concat(concat(concat(p, a.tokens), q), poisoned.tokens);
  const RequestResult clean = run(other, greedy(history));
  EXPECT_EQ(clean.num_cached_prompt_tokens, 0) << "served restored K/V as a prefix hit";
  EXPECT_EQ(clean.tokens, fresh(history));
}

// A restored context that cannot fit in the KV cache even alone ends with an error instead of
// waiting for room forever.
TEST_F(EngineSnapshot, RestoredContextTooBigForThePoolFails) {
  Engine roomy(model_, make_config());
  std::shared_ptr<ContextSnapshot> snap = keep(roomy, prompt(0));
  ASSERT_NE(snap, nullptr);
  ASSERT_GT(snap->kv.num_tokens, 2 * 16);
  Engine small(model_, make_config(DType::kF16, 16, 2));  // 32 token slots
  const uint64_t id = small.submit(greedy(continuation(" Then"), false, snap));
  for (;;) {
    std::optional<TokenEvent> ev = small.next_event(id, std::chrono::seconds(60));
    if (!ev) {
      small.cancel(id);
      FAIL() << "the restored request neither ran nor failed within 60 s";
    }
    if (!ev->finished) continue;
    EXPECT_EQ(ev->finish_reason, RequestFinishReason::kError);
    EXPECT_NE(ev->error.find("does not fit"), std::string::npos) << ev->error;
    break;
  }
  EXPECT_EQ(small.stats().kv.used_blocks, 0);
  EXPECT_EQ(small.stats().swap_used_bytes, 0);
}

// A client streaming through on_event learns the end from the final event: the snapshot must
// be there by then (regression: it used to be stored only after the final callback returned).
TEST_F(EngineSnapshot, SnapshotIsAvailableWhenTheFinalCallbackRuns) {
  std::promise<bool> got;
  std::promise<uint64_t> id_p;
  std::shared_future<uint64_t> id_f = id_p.get_future().share();
  Engine engine(model_, make_config());  // after what its callback uses: destroyed first
  EngineRequest r = greedy(prompt(3), /*keep=*/true);
  uint64_t id = 0;
  r.on_event = [&](const TokenEvent& ev) {
    if (!ev.finished) return;
    try {
      got.set_value(engine.take_snapshot(id_f.get()) != nullptr);
    } catch (const Error&) {
      got.set_value(false);
    }
  };
  id = engine.submit(std::move(r));
  id_p.set_value(id);
  EXPECT_TRUE(got.get_future().get()) << "final event seen, snapshot not available";
}

// DISABLED: bug in src/engine/engine.cc Engine::submit(): a snapshot whose K/V cover its whole
// history (kv.num_tokens == tokens.size(), which ContextSnapshot::validate() and the file
// format allow) resumed with no new tokens passes submit, then
// Scheduler::add_swapped_request() throws on the step thread ("at least one new token must
// follow them") and the request ends with kError instead of a kInvalidArgument at submit.
// Fix: either check num_host_tokens < prompt size in submit, or restore only
// min(kv.num_tokens, prompt.size() - 1) tokens so the last one is recomputed (then it works).
TEST_F(EngineSnapshot, SnapshotCoveringItsWholeHistoryIsHandledAtSubmit) {
  Engine engine(model_, make_config());
  std::shared_ptr<ContextSnapshot> snap = keep(engine, prompt(1));
  ASSERT_NE(snap, nullptr);
  // Drop the last sampled token: now every history token has its K/V in the snapshot.
  auto full = std::make_shared<ContextSnapshot>(*snap);
  full->tokens.pop_back();
  ASSERT_EQ(full->kv.num_tokens, static_cast<int64_t>(full->tokens.size()));
  ASSERT_NO_THROW(full->validate());
  uint64_t id = 0;
  try {
    id = engine.submit(greedy({}, false, full));
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument) << e.what();
    return;
  }
  const RequestResult r = engine.wait(id);
  EXPECT_EQ(r.finish_reason, RequestFinishReason::kLength) << r.error;
  EXPECT_EQ(r.tokens, fresh(full->tokens));
}

// ---- preemption ----------------------------------------------------------------------------

struct PreemptCase {
  const char* name;
  int64_t swap_space_bytes;
};

class EngineSnapshotPreempt : public EngineSnapshot,
                              public ::testing::WithParamInterface<PreemptCase> {};

// Restored requests and fresh ones compete for a KV budget far too small for all of them,
// with swap preemption; with no swap space at all every swap falls back to recompute.
// Every request, restored or fresh, still gets exactly its solitary tokens, and requests kept
// while being preempted keep the right context.
TEST_P(EngineSnapshotPreempt, RestoredRequestsUnderSwapPreemption) {
  // Snapshots taken on a roomy engine with the tight engine's layout (block_size 4, f16).
  Engine roomy(model_, make_config(DType::kF16, 4, 400));
  const std::vector<Tokens> q{continuation(" Then"), continuation(" The bird said"), Tokens{}};
  struct Resume {
    std::shared_ptr<ContextSnapshot> snap;
    Tokens history;
  };
  std::vector<Resume> resumes;
  for (size_t i : {size_t{0}, size_t{1}, size_t{6}}) {
    RequestResult a;
    std::shared_ptr<ContextSnapshot> s = keep(roomy, prompt(i), &a);
    ASSERT_NE(s, nullptr);
    resumes.push_back({s, concat(concat(prompt(i), a.tokens), q[resumes.size()])});
  }

  EngineConfig tight = make_config(DType::kF16, 4, 40);  // ~160 token slots
  tight.watermark = 0.0;
  tight.preemption = PreemptionMode::kSwap;
  tight.swap_space_bytes = GetParam().swap_space_bytes;
  Engine engine(model_, tight);

  std::vector<uint64_t> resumed_ids, fresh_ids;
  std::vector<Tokens> fresh_prompts;
  for (size_t k = 0; k < resumes.size(); ++k)
    resumed_ids.push_back(engine.submit(greedy(q[k], /*keep=*/k == 0, resumes[k].snap)));
  for (size_t i : {size_t{2}, size_t{4}, size_t{5}, size_t{7}}) {
    fresh_prompts.push_back(prompt(i));
    fresh_ids.push_back(engine.submit(greedy(prompt(i), /*keep=*/i == 5)));
  }
  std::vector<RequestResult> resumed_results, fresh_results;
  for (uint64_t id : resumed_ids) resumed_results.push_back(engine.wait(id));
  for (uint64_t id : fresh_ids) fresh_results.push_back(engine.wait(id));

  for (size_t k = 0; k < resumes.size(); ++k) {
    SCOPED_TRACE(::testing::Message() << "resumed " << k);
    ASSERT_EQ(resumed_results[k].finish_reason, RequestFinishReason::kLength)
        << resumed_results[k].error;
    EXPECT_EQ(resumed_results[k].tokens, fresh(resumes[k].history));
  }
  for (size_t k = 0; k < fresh_prompts.size(); ++k) {
    SCOPED_TRACE(::testing::Message() << "fresh " << k);
    ASSERT_EQ(fresh_results[k].finish_reason, RequestFinishReason::kLength)
        << fresh_results[k].error;
    EXPECT_EQ(fresh_results[k].tokens, fresh(fresh_prompts[k]));
  }
  EngineStats st = engine.stats();
  EXPECT_GT(st.total_preemptions, 0) << "the KV budget did not force preemption";
  EXPECT_EQ(st.kv.used_blocks, 0);
  EXPECT_EQ(st.swap_used_bytes, 0);

  // Contexts kept by requests that went through preemption resume correctly too (on the roomy
  // engine: same layout).
  for (uint64_t id : {resumed_ids[0], fresh_ids[2]}) {
    std::shared_ptr<ContextSnapshot> s = engine.take_snapshot(id);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->kv.num_tokens, static_cast<int64_t>(s->tokens.size()) - 1);
    const Tokens q2 = continuation(" Later");
    EXPECT_EQ(run(roomy, greedy(q2, false, s)).tokens, fresh(concat(s->tokens, q2)))
        << "context kept by request " << id;
  }
}

INSTANTIATE_TEST_SUITE_P(SwapSpace, EngineSnapshotPreempt,
                         ::testing::Values(PreemptCase{"no_swap_space", 0},
                                           PreemptCase{"swap_space", int64_t{64} << 20}),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace llmos
