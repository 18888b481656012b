#include "io/gguf_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <functional>

#include "core/error.h"
#include "io/gguf_reader.h"

namespace llmos::gguf {
namespace {

constexpr uint32_t kWriteVersion = 3;
constexpr const char* kAlignmentKey = "general.alignment";

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// Rejects values the reader would reject, so a written file always reads back.
void validate_value(const std::string& key, const Value& value, int depth) {
  const Array* arr = value.as_array();
  if (arr == nullptr) return;
  LLMOS_CHECK_ARG(depth + 1 <= kMaxArrayDepth, "gguf::Writer: key '", key, "': arrays nested ",
                  depth + 1, " deep; at most ", kMaxArrayDepth, " levels are supported");
  for (size_t i = 0; i < arr->items.size(); ++i) {
    const Value& item = arr->items[i];
    LLMOS_CHECK_ARG(item.type() == arr->element_type, "gguf::Writer: key '", key, "': item ", i,
                    " has type ", value_type_name(item.type()), " but the array holds ",
                    value_type_name(arr->element_type));
    validate_value(key, item, depth + 1);
  }
}

// Little-endian encoder over an arbitrary byte sink, so to_bytes() and write_file() share one
// layout and write_file() can stream tensor bytes without assembling the file in memory.
using Sink = std::function<void(const void*, size_t)>;

class Encoder {
 public:
  explicit Encoder(const Sink& sink) : sink_(sink) {}
  uint64_t pos() const { return pos_; }

  void bytes(const void* p, size_t n) {
    if (n == 0) return;
    sink_(p, n);
    pos_ += n;
  }
  void le(uint64_t v, int n) {
    uint8_t buf[8];
    for (int i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>(v >> (8 * i));
    bytes(buf, static_cast<size_t>(n));
  }
  void u32(uint32_t v) { le(v, 4); }
  void u64(uint64_t v) { le(v, 8); }
  void string(const std::string& s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
  void pad_to(uint64_t target) {
    static const uint8_t kZeros[256] = {};
    while (pos_ < target) {
      const uint64_t n = std::min<uint64_t>(target - pos_, sizeof(kZeros));
      bytes(kZeros, static_cast<size_t>(n));
    }
  }

  // The payload of a value (its type tag is written by the caller).
  void value(const Value& v) {
    std::visit(
        [this](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            string(x);
          } else if constexpr (std::is_same_v<T, Array>) {
            u32(static_cast<uint32_t>(x.element_type));
            u64(x.items.size());
            for (const Value& item : x.items) value(item);
          } else if constexpr (std::is_same_v<T, bool>) {
            le(x ? 1 : 0, 1);
          } else if constexpr (std::is_same_v<T, float>) {
            uint32_t bits;
            std::memcpy(&bits, &x, 4);
            u32(bits);
          } else if constexpr (std::is_same_v<T, double>) {
            uint64_t bits;
            std::memcpy(&bits, &x, 8);
            u64(bits);
          } else {
            le(static_cast<uint64_t>(x), static_cast<int>(sizeof(T)));
          }
        },
        v.storage());
  }

 private:
  const Sink& sink_;
  uint64_t pos_ = 0;
};

// A template only so that it need not name the private Writer::Entry.
template <typename Entry>
void emit(const Sink& sink, uint32_t alignment,
          const std::vector<std::pair<std::string, Value>>& metadata,
          const std::vector<Entry>& tensors) {
  Encoder e(sink);
  const bool write_alignment = alignment != kDefaultAlignment;
  e.u32(kMagic);
  e.u32(kWriteVersion);
  e.u64(tensors.size());
  e.u64(metadata.size() + (write_alignment ? 1 : 0));
  if (write_alignment) {
    e.string(kAlignmentKey);
    e.u32(static_cast<uint32_t>(ValueType::kUint32));
    e.u32(alignment);
  }
  for (const auto& [key, value] : metadata) {
    e.string(key);
    e.u32(static_cast<uint32_t>(value.type()));
    e.value(value);
  }
  uint64_t offset = 0;
  for (const Entry& t : tensors) {
    e.string(t.name);
    e.u32(static_cast<uint32_t>(t.shape.size()));
    for (size_t d = t.shape.size(); d-- > 0;) e.u64(static_cast<uint64_t>(t.shape[d]));
    e.u32(static_cast<uint32_t>(t.dtype));
    e.u64(offset);
    offset = align_up(offset + t.nbytes, alignment);
  }
  const uint64_t data_start = align_up(e.pos(), alignment);
  e.pad_to(data_start);
  for (const Entry& t : tensors) {
    const uint64_t begin = e.pos();
    if (t.producer) {
      // The producer's pieces go straight to the sink; a wrong total would shift every later
      // tensor, so it is caught here before the next tensor starts.
      uint64_t produced = 0;
      const ByteSink piece = [&](const void* p, size_t n) {
        produced += n;
        if (produced > t.nbytes) {
          throw_error(StatusCode::kInternal, "gguf::Writer: producer of tensor '", t.name,
                      "' wrote more than its ", t.nbytes, " bytes");
        }
        e.bytes(p, n);
      };
      t.producer(piece);
      if (produced != t.nbytes) {
        throw_error(StatusCode::kInternal, "gguf::Writer: producer of tensor '", t.name, "' wrote ",
                    produced, " bytes, expected ", t.nbytes);
      }
    } else {
      e.bytes(t.tensor.data(), static_cast<size_t>(t.nbytes));
    }
    LLMOS_ASSERT(e.pos() - begin == t.nbytes);
    // Pad every tensor, the last included, so the section is a whole number of alignments.
    e.pad_to(data_start + align_up(e.pos() - data_start, alignment));
  }
}

[[noreturn]] void throw_io(const std::string& path, const char* what, int err) {
  throw_error(StatusCode::kIo, path, ": ", what, " failed: ", std::strerror(err));
}

}  // namespace

void Writer::set(std::string key, Value value) {
  LLMOS_CHECK_ARG(!key.empty(), "gguf::Writer::set: metadata key is empty");
  if (key == kAlignmentKey) {
    // general.alignment is derived from set_alignment() so the two can never disagree.
    const uint32_t* a = value.as<uint32_t>();
    LLMOS_CHECK_ARG(a != nullptr, "gguf::Writer::set: '", kAlignmentKey, "' must be a uint32, got ",
                    value_type_name(value.type()));
    set_alignment(*a);
    return;
  }
  validate_value(key, value, 0);
  for (auto& entry : metadata_) {
    if (entry.first == key) {
      entry.second = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
}

void Writer::check_new_name(const std::string& name) const {
  LLMOS_CHECK_ARG(!name.empty(), "gguf::Writer::add_tensor: tensor name is empty");
  for (const auto& entry : tensors_) {
    LLMOS_CHECK_ARG(entry.name != name, "gguf::Writer::add_tensor: duplicate tensor name '", name,
                    "'");
  }
}

void Writer::add_tensor(std::string name, Tensor tensor) {
  check_new_name(name);
  LLMOS_CHECK_ARG(tensor.defined(), "gguf::Writer::add_tensor: tensor '", name, "' is undefined");
  LLMOS_CHECK_ARG(tensor.device().is_cpu(), "gguf::Writer::add_tensor: tensor '", name, "' is on ",
                  device_name(tensor.device()), "; only host tensors can be written");
  LLMOS_CHECK_ARG(tensor.is_contiguous(), "gguf::Writer::add_tensor: tensor '", name,
                  "' is not contiguous");
  LLMOS_CHECK_ARG(tensor.ndim() >= 1 && tensor.ndim() <= kMaxDims,
                  "gguf::Writer::add_tensor: tensor '", name, "' has rank ", tensor.ndim(),
                  "; GGUF stores 1 to ", kMaxDims, " dimensions");
  for (int d = 0; d < tensor.ndim(); ++d) {
    LLMOS_CHECK_ARG(tensor.dim(d) > 0, "gguf::Writer::add_tensor: tensor '", name,
                    "' has an empty dimension ", d, " (", tensor.describe(), ")");
  }
  Entry entry;
  entry.name = std::move(name);
  entry.shape = tensor.shape();
  entry.dtype = tensor.dtype();
  entry.nbytes = static_cast<uint64_t>(tensor.nbytes());
  entry.tensor = std::move(tensor);
  tensors_.push_back(std::move(entry));
}

void Writer::add_tensor(std::string name, std::vector<int64_t> shape, DType dtype,
                        TensorProducer producer) {
  check_new_name(name);
  LLMOS_CHECK_ARG(static_cast<bool>(producer), "gguf::Writer::add_tensor: tensor '", name,
                  "' has no producer");
  LLMOS_CHECK_ARG(dtype_from_ggml_id(static_cast<uint32_t>(dtype)).has_value(),
                  "gguf::Writer::add_tensor: tensor '", name, "' has unknown dtype id ",
                  static_cast<uint32_t>(dtype));
  LLMOS_CHECK_ARG(!shape.empty() && shape.size() <= static_cast<size_t>(kMaxDims),
                  "gguf::Writer::add_tensor: tensor '", name, "' has rank ", shape.size(),
                  "; GGUF stores 1 to ", kMaxDims, " dimensions");
  // The reader requires the element count and the byte size to fit in int64; so does this.
  int64_t elements = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    LLMOS_CHECK_ARG(shape[d] > 0, "gguf::Writer::add_tensor: tensor '", name,
                    "' has an empty or negative dimension ", d, " (", shape[d], ")");
    LLMOS_CHECK_ARG(elements <= INT64_MAX / shape[d], "gguf::Writer::add_tensor: tensor '", name,
                    "': the element count overflows int64");
    elements *= shape[d];
  }
  const int64_t rows = elements / shape.back();
  const int64_t block = dtype_block_size(dtype);
  LLMOS_CHECK_ARG(shape.back() % block == 0, "gguf::Writer::add_tensor: tensor '", name,
                  "': row length ", shape.back(), " is not a multiple of the ", dtype_name(dtype),
                  " block size ", block);
  const int64_t row_bytes = dtype_row_bytes(dtype, shape.back());
  LLMOS_CHECK_ARG(rows <= INT64_MAX / row_bytes, "gguf::Writer::add_tensor: tensor '", name,
                  "': the byte size overflows int64");
  Entry entry;
  entry.name = std::move(name);
  entry.shape = std::move(shape);
  entry.dtype = dtype;
  entry.nbytes = static_cast<uint64_t>(rows * row_bytes);
  entry.producer = std::move(producer);
  tensors_.push_back(std::move(entry));
}

void Writer::set_alignment(uint32_t alignment) {
  LLMOS_CHECK_ARG(is_power_of_two(alignment), "gguf::Writer::set_alignment: alignment ", alignment,
                  " is not a non-zero power of two");
  alignment_ = alignment;
}

std::vector<uint8_t> Writer::to_bytes() const {
  std::vector<uint8_t> out;
  const Sink sink = [&out](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  };
  emit(sink, alignment_, metadata_, tensors_);
  return out;
}

void Writer::write_file(const std::string& path) const {
  LLMOS_CHECK_ARG(!path.empty(), "gguf::Writer::write_file: path is empty");
  // The temporary sits in the destination directory so rename() never crosses filesystems.
  std::string tmp = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw_io(path, "creating a temporary file", errno);
  auto cleanup = [&] {
    ::close(fd);
    ::unlink(tmp.c_str());
  };
  try {
    // A buffer batches the many small header writes; tensor payloads bypass it.
    std::vector<uint8_t> buffer;
    buffer.reserve(1 << 16);
    auto write_all = [&](const void* p, size_t n) {
      const auto* b = static_cast<const uint8_t*>(p);
      while (n > 0) {
        const ssize_t w = ::write(fd, b, n);
        if (w < 0) {
          if (errno == EINTR) continue;
          throw_io(path, "write", errno);
        }
        b += w;
        n -= static_cast<size_t>(w);
      }
    };
    const Sink sink = [&](const void* p, size_t n) {
      if (n >= buffer.capacity() - buffer.size()) {
        write_all(buffer.data(), buffer.size());
        buffer.clear();
        if (n >= buffer.capacity()) {
          write_all(p, n);
          return;
        }
      }
      const auto* b = static_cast<const uint8_t*>(p);
      buffer.insert(buffer.end(), b, b + n);
    };
    emit(sink, alignment_, metadata_, tensors_);
    write_all(buffer.data(), buffer.size());
    // mkstemp creates 0600; a model file is ordinary data.
    if (::fchmod(fd, 0644) != 0) throw_io(path, "fchmod", errno);
    if (::fsync(fd) != 0) throw_io(path, "fsync", errno);
  } catch (...) {
    cleanup();
    throw;
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_io(path, "close", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_io(path, "rename", err);
  }
}

}  // namespace llmos::gguf
