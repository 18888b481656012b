#include "kv/context_snapshot.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>

#include "core/error.h"
#include "core/hash.h"

namespace llmos {
namespace {

constexpr char kMagic[8] = {'L', 'L', 'M', 'O', 'S', 'C', 'T', 'X'};
constexpr uint32_t kVersion = 1;


// Writes through stdio, hashing everything written.
class Writer {
 public:
  explicit Writer(const std::string& path) : path_(path), f_(std::fopen(path.c_str(), "wb")) {
    if (!f_) throw_error(StatusCode::kIo, "context snapshot ", path, ": cannot open for writing");
  }
  ~Writer() {
    if (f_) std::fclose(f_);
  }
  void put(const void* p, size_t n) {
    hash_ = fnv1a(hash_, p, n);
    if (n != 0 && std::fwrite(p, 1, n, f_) != n) {
      throw_error(StatusCode::kIo, "context snapshot ", path_, ": write failed");
    }
  }
  template <typename T>
  void put(T v) {
    put(&v, sizeof v);
  }
  void finish() {
    const uint64_t h = hash_;
    put(h);
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) throw_error(StatusCode::kIo, "context snapshot ", path_, ": close failed");
  }

 private:
  std::string path_;
  FILE* f_;
  uint64_t hash_ = kFnv1aOffset;
};

// Reads a whole file and walks it with bounds checks.
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) throw_error(StatusCode::kIo, "context snapshot ", path, ": cannot open");
    struct stat st {};
    if (fstat(fileno(f.get()), &st) != 0 || !S_ISREG(st.st_mode)) {
      throw_error(StatusCode::kIo, "context snapshot ", path, ": not a regular file");
    }
    bytes_.resize(static_cast<size_t>(st.st_size));
    if (!bytes_.empty() && std::fread(bytes_.data(), 1, bytes_.size(), f.get()) != bytes_.size()) {
      throw_error(StatusCode::kIo, "context snapshot ", path, ": read failed");
    }
  }
  size_t remaining() const { return bytes_.size() - pos_; }
  size_t pos() const { return pos_; }
  [[noreturn]] void fail(std::string_view field, std::string_view what) const {
    throw_error(StatusCode::kFormat, "context snapshot ", path_, ": ", field, " at offset ", pos_,
                ": ", what);
  }
  void get(void* out, size_t n, std::string_view field) {
    if (n > remaining()) fail(field, "file truncated");
    if (n == 0) return;
    std::memcpy(out, bytes_.data() + pos_, n);
    pos_ += n;
  }
  template <typename T>
  T get(std::string_view field) {
    T v;
    get(&v, sizeof v, field);
    return v;
  }
  // A count of `elem`-byte items that must fit in what is left of the file.
  int64_t count(std::string_view field, size_t elem) {
    const size_t at = pos_;
    const auto n = get<int64_t>(field);
    if (n < 0 || static_cast<uint64_t>(n) > remaining() / elem) {
      pos_ = at;
      fail(field, "count " + std::to_string(n) + " exceeds the file");
    }
    return n;
  }
  uint64_t hash_so_far() const { return fnv1a(kFnv1aOffset, bytes_.data(), pos_); }

 private:
  std::string path_;
  std::vector<unsigned char> bytes_;
  size_t pos_ = 0;
};

}  // namespace

void ContextSnapshot::validate() const {
  KvCacheSpec spec = layout;
  spec.num_blocks = 1;  // not part of a snapshot's layout
  spec.validate();
  for (size_t i = 0; i < tokens.size(); ++i) {
    LLMOS_CHECK_ARG(tokens[i] >= 0, "context snapshot: token ", i, " is negative (", tokens[i], ")");
  }
  LLMOS_CHECK_ARG(kv.num_tokens >= 0 && kv.num_tokens <= static_cast<int64_t>(tokens.size()),
                  "context snapshot: ", kv.num_tokens, " K/V tokens for a history of ",
                  tokens.size());
  LLMOS_CHECK_ARG(kv.block_bytes == spec.block_bytes(), "context snapshot: blocks of ",
                  kv.block_bytes, " bytes, the layout needs ", spec.block_bytes());
  const int64_t blocks = (kv.num_tokens + spec.block_size - 1) / spec.block_size;
  LLMOS_CHECK_ARG(static_cast<int64_t>(kv.data.size()) == blocks * kv.block_bytes,
                  "context snapshot: ", kv.data.size(), " bytes of K/V, ", kv.num_tokens,
                  " tokens need ", blocks * kv.block_bytes);
}

void ContextSnapshot::save(const std::string& path) const {
  validate();
  Writer w(path);
  w.put(kMagic, sizeof kMagic);
  w.put(kVersion);
  w.put(model_fingerprint);
  w.put<int32_t>(layout.num_layers);
  w.put<int32_t>(layout.num_kv_heads);
  w.put<int32_t>(layout.head_dim);
  w.put<int32_t>(layout.block_size);
  w.put<int32_t>(static_cast<int32_t>(layout.dtype));
  w.put<int64_t>(static_cast<int64_t>(tokens.size()));
  w.put(tokens.data(), tokens.size() * sizeof(int32_t));
  w.put<int64_t>(kv.num_tokens);
  w.put<int64_t>(kv.block_bytes);
  w.put<int64_t>(kv.num_blocks());
  w.put(kv.data.data(), kv.data.size());
  w.finish();
}

ContextSnapshot ContextSnapshot::load(const std::string& path) {
  Reader r(path);
  char magic[8];
  r.get(magic, sizeof magic, "magic");
  if (std::memcmp(magic, kMagic, sizeof kMagic) != 0) {
    throw_error(StatusCode::kFormat, "context snapshot ", path,
                ": magic at offset 0: not an llmos context snapshot");
  }
  const auto version = r.get<uint32_t>("version");
  if (version != kVersion) r.fail("version", "unsupported version " + std::to_string(version));
  ContextSnapshot s;
  s.model_fingerprint = r.get<uint64_t>("model fingerprint");
  s.layout.num_layers = r.get<int32_t>("num_layers");
  s.layout.num_kv_heads = r.get<int32_t>("num_kv_heads");
  s.layout.head_dim = r.get<int32_t>("head_dim");
  s.layout.block_size = r.get<int32_t>("block_size");
  const auto dtype = r.get<int32_t>("dtype");
  if (dtype != static_cast<int32_t>(DType::kF32) && dtype != static_cast<int32_t>(DType::kF16) &&
      dtype != static_cast<int32_t>(DType::kBF16)) {
    r.fail("dtype", "KV dtype id " + std::to_string(dtype) + " is not f32, f16 or bf16");
  }
  s.layout.dtype = static_cast<DType>(dtype);
  s.layout.num_blocks = 1;
  try {
    s.layout.validate();
  } catch (const Error& e) {
    r.fail("layout", e.what());
  }
  const int64_t n_tokens = r.count("n_tokens", sizeof(int32_t));
  s.tokens.resize(static_cast<size_t>(n_tokens));
  r.get(s.tokens.data(), s.tokens.size() * sizeof(int32_t), "tokens");
  for (size_t i = 0; i < s.tokens.size(); ++i) {
    if (s.tokens[i] < 0) r.fail("tokens", "token " + std::to_string(i) + " is negative");
  }
  s.kv.num_tokens = r.get<int64_t>("n_kv_tokens");
  if (s.kv.num_tokens < 0 || s.kv.num_tokens > n_tokens) {
    r.fail("n_kv_tokens", std::to_string(s.kv.num_tokens) + " outside [0, n_tokens]");
  }
  s.kv.block_bytes = r.get<int64_t>("block_bytes");
  if (s.kv.block_bytes != s.layout.block_bytes()) {
    r.fail("block_bytes", std::to_string(s.kv.block_bytes) + " does not match the layout's " +
                              std::to_string(s.layout.block_bytes()));
  }
  const int64_t n_blocks = r.count("n_blocks", static_cast<size_t>(s.kv.block_bytes));
  const int64_t bs = s.layout.block_size;
  if (n_blocks != (s.kv.num_tokens + bs - 1) / bs) {
    r.fail("n_blocks",
           std::to_string(n_blocks) + " blocks for " + std::to_string(s.kv.num_tokens) + " tokens");
  }
  s.kv.data.resize(static_cast<size_t>(n_blocks * s.kv.block_bytes));
  r.get(s.kv.data.data(), s.kv.data.size(), "K/V data");
  const uint64_t expect = r.hash_so_far();
  const auto stored = r.get<uint64_t>("checksum");
  if (stored != expect) r.fail("checksum", "does not match the contents (corrupted file)");
  if (r.remaining() != 0) r.fail("end", std::to_string(r.remaining()) + " trailing bytes");
  return s;
}

}  // namespace llmos
