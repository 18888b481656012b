// ContextSnapshot files: save/load round trips, and loading hostile input —
// every truncation, hundreds of random byte flips and hand-made malformed
// headers must end in an llmos::Error (kFormat or kIo) naming the bad field,
// never in a crash, a huge allocation or a snapshot whose checksum does not
// match. validate() must reject inconsistent in-memory snapshots.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "kv/context_snapshot.h"
#include "support/test_paths.h"

// ---- allocation guard ----------------------------------------------------------------------
// "Never a huge allocation on bad input" needs a way to see allocations: this test binary
// replaces the global operator new/delete (every form a replaced new's memory can reach) and,
// while a guard is armed, refuses any single request above its limit with std::bad_alloc and
// records it. Without this, a length read from a corrupt file could allocate gigabytes and
// still "pass" in Debug.
namespace {
std::atomic<size_t> g_alloc_limit{0};  // 0: unlimited
std::atomic<size_t> g_alloc_refused{0};

void* guarded_alloc(size_t n) {
  const size_t limit = g_alloc_limit.load(std::memory_order_relaxed);
  if (limit != 0 && n > limit) {
    g_alloc_refused.store(n, std::memory_order_relaxed);
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace

// GCC 12 flags a replaced sized delete that calls free() under some sanitizer builds.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t n) { return guarded_alloc(n); }
void* operator new[](size_t n) { return guarded_alloc(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  try {
    return guarded_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  try {
    return guarded_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace llmos {
namespace {

// Arms the allocation guard for a scope.
class AllocLimit {
 public:
  explicit AllocLimit(size_t limit) {
    g_alloc_refused = 0;
    g_alloc_limit = limit;
  }
  ~AllocLimit() { g_alloc_limit = 0; }
  AllocLimit(const AllocLimit&) = delete;
  AllocLimit& operator=(const AllocLimit&) = delete;
};

using Bytes = std::vector<unsigned char>;

std::string path_for(const std::string& name) { return test::temp_dir() + "/" + name; }

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

KvCacheSpec small_layout(DType dtype = DType::kF32) {
  KvCacheSpec l;
  l.num_layers = 2;
  l.num_kv_heads = 1;
  l.head_dim = 2;
  l.block_size = 2;
  l.num_blocks = 0;  // not part of a snapshot
  l.dtype = dtype;
  return l;
}

// A consistent snapshot with random tokens and random K/V bytes.
ContextSnapshot random_snapshot(std::mt19937& rng, const KvCacheSpec& layout, int64_t n_tokens,
                                int64_t n_kv) {
  ContextSnapshot s;
  s.model_fingerprint = (uint64_t{rng()} << 32) | rng();
  s.layout = layout;
  std::uniform_int_distribution<int32_t> tok(0, 100000);
  for (int64_t i = 0; i < n_tokens; ++i) s.tokens.push_back(tok(rng));
  s.kv.num_tokens = n_kv;
  s.kv.block_bytes = layout.block_bytes();
  const int64_t blocks = (n_kv + layout.block_size - 1) / layout.block_size;
  s.kv.data.resize(static_cast<size_t>(blocks * s.kv.block_bytes));
  for (std::byte& b : s.kv.data) b = static_cast<std::byte>(rng() & 0xFF);
  return s;
}

void expect_same(const ContextSnapshot& a, const ContextSnapshot& b) {
  EXPECT_EQ(a.model_fingerprint, b.model_fingerprint);
  EXPECT_EQ(a.layout.num_layers, b.layout.num_layers);
  EXPECT_EQ(a.layout.num_kv_heads, b.layout.num_kv_heads);
  EXPECT_EQ(a.layout.head_dim, b.layout.head_dim);
  EXPECT_EQ(a.layout.block_size, b.layout.block_size);
  EXPECT_EQ(a.layout.dtype, b.layout.dtype);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.kv.num_tokens, b.kv.num_tokens);
  EXPECT_EQ(a.kv.block_bytes, b.kv.block_bytes);
  EXPECT_TRUE(a.kv.data == b.kv.data) << "K/V bytes differ";
}

// Runs `f`, expecting an llmos::Error with one of `codes` whose message contains every needle.
void expect_error(const std::function<void()>& f, std::initializer_list<StatusCode> codes,
                  std::initializer_list<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    bool code_ok = false;
    for (StatusCode c : codes) code_ok = code_ok || e.code() == c;
    EXPECT_TRUE(code_ok) << "code " << status_code_name(e.code()) << ": " << e.what();
    for (const std::string& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "message lacks '" << n << "': " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an llmos::Error: " << e.what()
                  << (g_alloc_refused ? " (refused allocation of " +
                                            std::to_string(g_alloc_refused.load()) + " bytes)"
                                      : std::string());
  }
}

// Loads a corrupt file: it must throw kFormat/kIo, or (only possible when several bytes
// changed) return a snapshot that saves back to exactly the same bytes, i.e. one whose
// checksum really matches.
void expect_rejected_or_faithful(const std::string& path, const Bytes& bytes, bool must_throw) {
  write_file(path, bytes);
  std::optional<ContextSnapshot> loaded;
  {
    AllocLimit guard(bytes.size() + 4096);  // nothing may need more than the file itself
    try {
      loaded = ContextSnapshot::load(path);
    } catch (const Error& e) {
      EXPECT_TRUE(e.code() == StatusCode::kFormat || e.code() == StatusCode::kIo)
          << status_code_name(e.code()) << ": " << e.what();
      return;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not an llmos::Error: " << e.what() << " (refused allocation of "
                    << g_alloc_refused.load() << " bytes)";
      return;
    }
  }
  EXPECT_FALSE(must_throw) << "a corrupt file loaded";
  const std::string again = path + ".resaved";
  loaded->save(again);
  EXPECT_TRUE(read_file(again) == bytes) << "loaded a snapshot whose checksum does not match";
}

// ---- hand-made files -----------------------------------------------------------------------

// Every field of a version-1 file, so a test can corrupt one and keep the checksum right.
struct RawFile {
  std::string magic = "LLMOSCTX";
  uint32_t version = 1;
  uint64_t fingerprint = 0x1234;
  int32_t layers = 2, heads = 1, head_dim = 2, block_size = 2;
  int32_t dtype = 0;  // f32
  int64_t n_tokens = 3;
  std::vector<int32_t> tokens{5, 6, 7};
  int64_t n_kv_tokens = 2;
  int64_t block_bytes = 2 * 2 * 1 * 2 * 2 * 4;  // 2 * layers * heads * bs * head_dim * 4
  int64_t n_blocks = 1;
  Bytes kv = Bytes(64, 0xAB);
  bool fix_checksum = true;
  uint64_t checksum = 0;
  Bytes trailing;

  Bytes build() const {
    Bytes out;
    auto put = [&](const void* p, size_t n) {
      const auto* b = static_cast<const unsigned char*>(p);
      out.insert(out.end(), b, b + n);
    };
    put(magic.data(), magic.size());
    put(&version, 4);
    put(&fingerprint, 8);
    for (int32_t v : {layers, heads, head_dim, block_size, dtype}) put(&v, 4);
    put(&n_tokens, 8);
    put(tokens.data(), tokens.size() * 4);
    put(&n_kv_tokens, 8);
    put(&block_bytes, 8);
    put(&n_blocks, 8);
    put(kv.data(), kv.size());
    uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64 of everything before
    for (unsigned char c : out) h = (h ^ c) * 0x100000001b3ULL;
    const uint64_t sum = fix_checksum ? h : checksum;
    put(&sum, 8);
    out.insert(out.end(), trailing.begin(), trailing.end());
    return out;
  }
};

void expect_load_error(const RawFile& raw, const std::string& name,
                       std::initializer_list<std::string> needles,
                       StatusCode code = StatusCode::kFormat) {
  SCOPED_TRACE(name);
  const std::string path = path_for("malformed_" + name + ".llmosctx");
  write_file(path, raw.build());
  AllocLimit guard(1 << 20);
  expect_error([&] { ContextSnapshot::load(path); }, {code}, needles);
}

// ---- tests ---------------------------------------------------------------------------------

TEST(ContextSnapshotFile, RoundTripKeepsEveryField) {
  std::mt19937 rng(11);
  const std::string path = path_for("roundtrip.llmosctx");
  int cases = 0;
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (int bs : {1, 3, 16}) {
      for (int64_t n_tokens : {1, 2, 7, 33}) {
        // n_kv == 0: see EmptySectionsRoundTrip.
        for (int64_t n_kv : {n_tokens - 1, n_tokens}) {
          if (n_kv <= 0) continue;
          KvCacheSpec layout = small_layout(dtype);
          layout.block_size = bs;
          layout.num_kv_heads = 2;
          layout.head_dim = 3;
          const ContextSnapshot s = random_snapshot(rng, layout, n_tokens, n_kv);
          ASSERT_NO_THROW(s.validate());
          s.save(path);
          const ContextSnapshot back = ContextSnapshot::load(path);
          SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " bs " << bs << " tokens "
                                            << n_tokens << " kv " << n_kv);
          expect_same(s, back);
          EXPECT_EQ(back.kv.num_blocks(), (n_kv + bs - 1) / bs);
          // Saving what was loaded reproduces the file byte for byte.
          back.save(path + ".2");
          EXPECT_TRUE(read_file(path) == read_file(path + ".2"));
          ++cases;
        }
      }
    }
  }
  EXPECT_GT(cases, 60);
}

// DISABLED: bug in src/kv/context_snapshot.cc Reader::get() (line 83): for an empty section
// (no K/V tokens, or an empty history) it calls memcpy(vector.data() == nullptr, ..., 0), which
// is undefined behaviour; the -fsanitize=undefined build aborts ("null pointer passed as
// argument 1"). A valid snapshot with 0 K/V tokens therefore cannot be loaded in that build.
// Fix: skip the memcpy when n == 0.
TEST(ContextSnapshotFile, EmptySectionsRoundTrip) {
  std::mt19937 rng(3);
  const std::string path = path_for("empty.llmosctx");
  for (int64_t n_tokens : {0, 1, 5}) {
    SCOPED_TRACE(n_tokens);
    const ContextSnapshot s = random_snapshot(rng, small_layout(), n_tokens, 0);
    s.save(path);
    expect_same(s, ContextSnapshot::load(path));
  }
}

TEST(ContextSnapshotFile, EveryTruncationIsAnError) {
  std::mt19937 rng(5);
  const ContextSnapshot s = random_snapshot(rng, small_layout(), 5, 3);  // 2 blocks of 64 bytes
  const std::string path = path_for("full.llmosctx");
  s.save(path);
  const Bytes full = read_file(path);
  ASSERT_GT(full.size(), 100u);
  const std::string cut = path_for("truncated.llmosctx");
  for (size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE(::testing::Message() << "truncated to " << n << " of " << full.size());
    expect_rejected_or_faithful(cut, Bytes(full.begin(), full.begin() + static_cast<long>(n)),
                                /*must_throw=*/true);
    if (::testing::Test::HasFailure()) break;
  }
}

TEST(ContextSnapshotFile, RandomByteFlipsAreErrors) {
  std::mt19937 rng(21);
  const ContextSnapshot s = random_snapshot(rng, small_layout(DType::kF16), 9, 8);
  const std::string path = path_for("flip_src.llmosctx");
  s.save(path);
  const Bytes good = read_file(path);
  const std::string bad = path_for("flipped.llmosctx");
  std::uniform_int_distribution<size_t> at(0, good.size() - 1);
  std::uniform_int_distribution<int> mask(1, 255);
  for (int trial = 0; trial < 600; ++trial) {
    Bytes b = good;
    // Mostly single flips (FNV-1a detects every one of those), some multi-byte damage, some
    // of it aimed at the header's counts where big values do the most harm.
    const int flips = trial % 4 == 0 ? 1 + static_cast<int>(rng() % 6) : 1;
    for (int f = 0; f < flips; ++f) {
      const size_t pos = trial % 3 == 0 ? at(rng) % 80 : at(rng);
      b[pos] = static_cast<unsigned char>(b[pos] ^ mask(rng));
    }
    if (b == good) continue;
    SCOPED_TRACE(::testing::Message() << "trial " << trial << ", " << flips << " flips");
    expect_rejected_or_faithful(bad, b, /*must_throw=*/flips == 1);
    if (::testing::Test::HasFailure()) break;
  }
}

TEST(ContextSnapshotFile, HugeCountsInTheHeaderAllocateNothingBig) {
  // Each count set to values that would allocate gigabytes if trusted; the checksum is made
  // right so only the count checks stand between the file and the allocation.
  for (int64_t big : {int64_t{1} << 30, int64_t{1} << 40, std::numeric_limits<int64_t>::max(),
                      std::numeric_limits<int64_t>::min()}) {
    SCOPED_TRACE(big);
    RawFile a;
    a.n_tokens = big;
    expect_load_error(a, "huge_n_tokens", {"n_tokens"});
    RawFile b;
    b.n_blocks = big;
    expect_load_error(b, "huge_n_blocks", {"n_blocks"});
    RawFile c;
    c.n_kv_tokens = big;
    expect_load_error(c, "huge_n_kv_tokens", {"n_kv_tokens"});
  }
}

TEST(ContextSnapshotFile, MalformedHeadersNameTheField) {
  {
    RawFile r;
    ASSERT_NO_THROW({
      write_file(path_for("wellformed.llmosctx"), r.build());
      ContextSnapshot::load(path_for("wellformed.llmosctx")).validate();
    }) << "the hand-made baseline file must load";
  }
  {
    RawFile r;
    r.magic = "LLMOSCTY";
    expect_load_error(r, "magic", {"magic", "malformed_magic"});
  }
  {
    RawFile r;
    r.version = 2;
    expect_load_error(r, "version", {"version", "2"});
  }
  {
    RawFile r;
    r.dtype = static_cast<int32_t>(DType::kQ4_0);
    expect_load_error(r, "dtype_q4_0", {"dtype"});
  }
  {
    RawFile r;
    r.dtype = -1;
    expect_load_error(r, "dtype_negative", {"dtype"});
  }
  {
    RawFile r;
    r.layers = 0;
    expect_load_error(r, "layers_zero", {"num_layers"});
  }
  {
    RawFile r;
    r.block_size = -4;
    expect_load_error(r, "block_size_negative", {"block_size"});
  }
  {
    RawFile r;
    r.n_tokens = -1;
    expect_load_error(r, "negative_n_tokens", {"n_tokens", "-1"});
  }
  {
    RawFile r;
    r.n_tokens = 1000;  // the file holds far fewer bytes
    expect_load_error(r, "n_tokens_beyond_file", {"n_tokens", "1000"});
  }
  {
    RawFile r;
    r.tokens[1] = -7;
    expect_load_error(r, "negative_token", {"token"});
  }
  {
    RawFile r;
    r.n_kv_tokens = 4;  // more than the 3 tokens of the history
    expect_load_error(r, "n_kv_beyond_history", {"n_kv_tokens"});
  }
  {
    RawFile r;
    r.n_kv_tokens = -1;
    expect_load_error(r, "n_kv_negative", {"n_kv_tokens"});
  }
  {
    RawFile r;
    r.n_kv_tokens = 3;  // needs 2 blocks, the file says 1
    expect_load_error(r, "n_blocks_inconsistent", {"n_blocks"});
  }
  {
    RawFile r;
    r.n_blocks = 2;  // also inconsistent, and larger than the K/V bytes present
    r.kv.resize(128, 0xCD);
    expect_load_error(r, "n_blocks_too_many", {"n_blocks"});
  }
  {
    RawFile r;
    r.block_bytes = 32;  // the layout needs 64
    r.kv.resize(32);
    expect_load_error(r, "block_bytes", {"block_bytes", "64"});
  }
  {
    RawFile r;
    r.block_bytes = 0;
    r.kv.clear();
    expect_load_error(r, "block_bytes_zero", {"block_bytes"});
  }
  {
    RawFile r;
    r.fix_checksum = false;
    r.checksum = 42;
    expect_load_error(r, "checksum", {"checksum"});
  }
  {
    RawFile r;
    r.trailing = Bytes{1, 2, 3};
    expect_load_error(r, "trailing", {"3 trailing bytes"});
  }
}

// A header whose layout passes every per-field check but whose block size in bytes does not
// fit in 64 bits.
// DISABLED: bug in src/kv/kv_cache.cc KvCacheSpec::block_bytes(): the product
// 2 * layers * heads * block_size * head_dim * elem overflows int64 (signed overflow, UB; the
// -fsanitize=undefined build aborts here) because KvCacheSpec::validate() bounds each field but
// not their product, and ContextSnapshot::load calls block_bytes() on file data.
TEST(ContextSnapshotFile, LayoutWhoseBlockBytesOverflowIsAFormatError) {
  RawFile r;
  r.layers = std::numeric_limits<int32_t>::max();
  r.heads = std::numeric_limits<int32_t>::max();
  r.head_dim = std::numeric_limits<int32_t>::max();
  r.block_size = 1024;
  r.n_kv_tokens = 0;
  r.n_blocks = 0;
  r.kv.clear();
  expect_load_error(r, "block_bytes_overflow", {"layout"});
}

TEST(ContextSnapshotFile, MissingFileIsAnIoError) {
  expect_error([] { ContextSnapshot::load(path_for("does_not_exist.llmosctx")); },
               {StatusCode::kIo}, {"does_not_exist.llmosctx"});
}

// DISABLED: bug in src/kv/context_snapshot.cc Reader::Reader (the fseek/ftell size probe):
// on Linux a directory opens for reading and ftell after SEEK_END reports LLONG_MAX on ext4,
// so bytes_.resize() asks for ~9.2e18 bytes — std::bad_alloc in a plain build, an ASan abort
// (allocation-size-too-big) in the sanitizer build — instead of a kIo error. Fix: fstat the
// descriptor and reject anything that is not a regular file (or read to EOF in chunks rather
// than trusting ftell).
TEST(ContextSnapshotFile, LoadingADirectoryIsAnIoError) {
  AllocLimit guard(1 << 20);
  expect_error([] { ContextSnapshot::load(test::temp_dir()); },
               {StatusCode::kIo, StatusCode::kFormat}, {});
}

TEST(ContextSnapshotFile, SaveToUnwritablePathIsAnIoError) {
  std::mt19937 rng(9);
  const ContextSnapshot s = random_snapshot(rng, small_layout(), 4, 3);
  const std::string missing_dir = path_for("no/such/dir/x.llmosctx");
  expect_error([&] { s.save(missing_dir); }, {StatusCode::kIo}, {missing_dir});
  expect_error([&] { s.save(test::temp_dir()); }, {StatusCode::kIo}, {});  // a directory
  // A device that accepts the open but fails the write (ENOSPC on flush/close).
  if (std::FILE* f = std::fopen("/dev/full", "wb")) {
    std::fclose(f);
    expect_error([&] { s.save("/dev/full"); }, {StatusCode::kIo}, {"/dev/full"});
  }
}

TEST(ContextSnapshotFile, SaveRejectsAnInvalidSnapshotBeforeWriting) {
  std::mt19937 rng(4);
  ContextSnapshot s = random_snapshot(rng, small_layout(), 4, 3);
  s.kv.data.pop_back();
  const std::string path = path_for("never_written.llmosctx");
  expect_error([&] { s.save(path); }, {StatusCode::kInvalidArgument}, {});
  EXPECT_FALSE(std::ifstream(path).good()) << "an invalid snapshot left a file behind";
}

TEST(ContextSnapshotValidate, RejectsInconsistentSnapshots) {
  std::mt19937 rng(8);
  const ContextSnapshot good = random_snapshot(rng, small_layout(), 6, 5);  // 3 blocks
  ASSERT_NO_THROW(good.validate());
  {
    ContextSnapshot s = good;
    s.layout.num_blocks = 12345;  // ignored: not part of a snapshot's layout
    EXPECT_NO_THROW(s.validate());
  }
  struct Mutation {
    const char* name;
    std::function<void(ContextSnapshot&)> apply;
    const char* needle;
  };
  const std::vector<Mutation> mutations{
      {"kv tokens beyond history", [](ContextSnapshot& s) { s.kv.num_tokens = 7; }, "7"},
      {"negative kv tokens", [](ContextSnapshot& s) { s.kv.num_tokens = -1; }, "-1"},
      {"data one byte short", [](ContextSnapshot& s) { s.kv.data.pop_back(); }, "bytes"},
      {"data one block long", [](ContextSnapshot& s) { s.kv.data.resize(s.kv.data.size() + 32); },
       "bytes"},
      {"kv tokens need more blocks",
       [](ContextSnapshot& s) {
         s.tokens.push_back(1);
         s.kv.num_tokens = 7;
       },
       "7"},
      {"kv tokens need fewer blocks", [](ContextSnapshot& s) { s.kv.num_tokens = 2; }, "2"},
      {"block bytes off", [](ContextSnapshot& s) { s.kv.block_bytes = 16; }, "16"},
      {"layout block size changed", [](ContextSnapshot& s) { s.layout.block_size = 4; }, "bytes"},
      {"layout dtype changed", [](ContextSnapshot& s) { s.layout.dtype = DType::kF16; }, "bytes"},
      {"quantized dtype", [](ContextSnapshot& s) { s.layout.dtype = DType::kQ4_0; }, "dtype"},
      {"zero layers", [](ContextSnapshot& s) { s.layout.num_layers = 0; }, "num_layers"},
      {"zero heads", [](ContextSnapshot& s) { s.layout.num_kv_heads = 0; }, "num_kv_heads"},
      {"zero head dim", [](ContextSnapshot& s) { s.layout.head_dim = 0; }, "head_dim"},
      {"zero block size", [](ContextSnapshot& s) { s.layout.block_size = 0; }, "block_size"},
  };
  for (const Mutation& m : mutations) {
    SCOPED_TRACE(m.name);
    ContextSnapshot s = good;
    m.apply(s);
    expect_error([&] { s.validate(); }, {StatusCode::kInvalidArgument}, {m.needle});
  }
}

// DISABLED: bug in src/kv/context_snapshot.cc ContextSnapshot::validate(): it accepts negative
// token ids, so save() writes a file that load() then refuses ("token i is negative"). Fix:
// check tokens in validate() (as load does) so that anything save() accepts loads back.
TEST(ContextSnapshotValidate, WhatSaveAcceptsLoadsBack) {
  std::mt19937 rng(2);
  ContextSnapshot s = random_snapshot(rng, small_layout(), 4, 3);
  s.tokens[2] = -5;
  const std::string path = path_for("negative_token.llmosctx");
  bool saved = false;
  try {
    s.save(path);
    saved = true;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument) << e.what();
  }
  if (saved) {
    EXPECT_NO_THROW(ContextSnapshot::load(path));
  }
}

}  // namespace
}  // namespace llmos
