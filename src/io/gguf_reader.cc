#include "io/gguf_reader.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "io/mmap_file.h"

namespace llmos::gguf {
namespace {

// Smallest encoding of one value of `type`, used to reject counts that the remaining bytes
// cannot possibly hold before anything is reserved.
uint64_t min_encoded_size(ValueType type) {
  switch (type) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool:
      return 1;
    case ValueType::kUint16:
    case ValueType::kInt16:
      return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32:
      return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
    case ValueType::kString:  // u64 length
      return 8;
    case ValueType::kArray:  // u32 element type + u64 count
      return 12;
  }
  return 1;
}

constexpr uint32_t kLastValueType = static_cast<uint32_t>(ValueType::kFloat64);
// A key (u64 length) + u32 type + the smallest value.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
// A name (u64 length) + u32 n_dims + one u64 dim + u32 type + u64 offset.
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

// Reads one GGUF image front to back. Every read is bounds-checked against the image, and
// every count is checked against the bytes left before it drives a loop or an allocation.
class Parser {
 public:
  Parser(File& file) : f_(file) {}  // NOLINT

  void run() {
    read_header();
    read_metadata();
    resolve_alignment();
    read_tensor_infos();
    check_tensor_data();
  }

 private:
  File& f_;
  uint64_t pos_ = 0;
  uint64_t tensor_count_ = 0;
  uint64_t kv_count_ = 0;
  std::vector<uint64_t> key_offsets_;  // file offset of each metadata entry, for messages
  uint64_t array_elements_ = 0;        // metadata array elements read so far (all arrays)

  uint64_t remaining() const { return f_.size_ - pos_; }

  template <typename... Args>
  [[noreturn]] void fail(uint64_t offset, const Args&... args) const {
    throw_error(StatusCode::kFormat, f_.path_, ": ", args..., " (at byte offset ", offset, ")");
  }

  // Ensures n more bytes exist for `field`; the message says how many were missing.
  template <typename... Field>
  void need(uint64_t n, const Field&... field) const {
    if (n > remaining()) {
      throw_error(StatusCode::kFormat, f_.path_, ": truncated file: ", field..., " at byte offset ",
                  pos_, " needs ", n, " bytes but only ", remaining(), " remain (file size ",
                  f_.size_, ")");
    }
  }

  uint64_t read_le(int bytes) {
    uint64_t v = 0;
    const uint8_t* p = f_.base_ + pos_;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
    pos_ += static_cast<uint64_t>(bytes);
    return v;
  }

  template <typename... Field>
  uint32_t read_u32(const Field&... field) {
    need(4, field...);
    return static_cast<uint32_t>(read_le(4));
  }

  template <typename... Field>
  uint64_t read_u64(const Field&... field) {
    need(8, field...);
    return read_le(8);
  }

  template <typename... Field>
  std::string read_string(const Field&... field) {
    const uint64_t at = pos_;
    const uint64_t len = read_u64(field..., " length");
    if (len > remaining()) {
      fail(at, field..., ": string length ", len, " exceeds the ", remaining(),
           " bytes left in the file");
    }
    std::string s(reinterpret_cast<const char*>(f_.base_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return s;
  }

  template <typename... Field>
  ValueType read_value_type(const Field&... field) {
    const uint64_t at = pos_;
    const uint32_t t = read_u32(field...);
    if (t > kLastValueType) fail(at, field..., ": unknown value type ", t);
    return static_cast<ValueType>(t);
  }

  // A fixed-size integer or float value; the bytes are reinterpreted, not converted.
  template <typename T>
  Value read_scalar(const std::string& key) {
    need(sizeof(T), "value of key '", key, "'");
    const uint64_t bits = read_le(sizeof(T));
    T v;
    if constexpr (sizeof(T) == 8) {
      std::memcpy(&v, &bits, 8);
    } else if constexpr (sizeof(T) == 4) {
      const uint32_t b = static_cast<uint32_t>(bits);
      std::memcpy(&v, &b, 4);
    } else if constexpr (sizeof(T) == 2) {
      const uint16_t b = static_cast<uint16_t>(bits);
      std::memcpy(&v, &b, 2);
    } else {
      const uint8_t b = static_cast<uint8_t>(bits);
      std::memcpy(&v, &b, 1);
    }
    return v;
  }

  // Reads a value of `type`; `depth` is the number of arrays already entered.
  Value read_value(ValueType type, const std::string& key, int depth) {
    const uint64_t at = pos_;
    switch (type) {
      case ValueType::kUint8:
        return read_scalar<uint8_t>(key);
      case ValueType::kInt8:
        return read_scalar<int8_t>(key);
      case ValueType::kUint16:
        return read_scalar<uint16_t>(key);
      case ValueType::kInt16:
        return read_scalar<int16_t>(key);
      case ValueType::kUint32:
        return read_scalar<uint32_t>(key);
      case ValueType::kInt32:
        return read_scalar<int32_t>(key);
      case ValueType::kUint64:
        return read_scalar<uint64_t>(key);
      case ValueType::kInt64:
        return read_scalar<int64_t>(key);
      case ValueType::kFloat32:
        return read_scalar<float>(key);
      case ValueType::kFloat64:
        return read_scalar<double>(key);
      case ValueType::kBool: {
        need(1, "value of key '", key, "'");
        const uint64_t b = read_le(1);
        if (b > 1) fail(at, "bool value of key '", key, "' is ", b, ", expected 0 or 1");
        return b == 1;
      }
      case ValueType::kString:
        return read_string("string value of key '", key, "'");
      case ValueType::kArray:
        return read_array(key, depth + 1);
    }
    fail(at, "value of key '", key, "': unknown value type");
  }

  Value read_array(const std::string& key, int depth) {
    const uint64_t at = pos_;
    if (depth > kMaxArrayDepth) {
      fail(at, "array in key '", key, "' is nested ", depth, " deep; at most ", kMaxArrayDepth,
           " levels are supported");
    }
    Array arr;
    arr.element_type = read_value_type("array element type of key '", key, "'");
    const uint64_t count_at = pos_;
    const uint64_t count = read_u64("array element count of key '", key, "'");
    const uint64_t min_size = min_encoded_size(arr.element_type);
    if (count > remaining() / min_size) {
      fail(count_at, "array element count ", count, " of key '", key, "' needs at least ", min_size,
           " bytes per ", value_type_name(arr.element_type), " element but only ", remaining(),
           " bytes remain");
    }
    // Each element becomes an in-memory Value, several times its encoded size: a budget on the
    // total keeps a small file from demanding gigabytes.
    if (count > kMaxMetadataArrayElements - array_elements_) {
      fail(count_at, "array element count ", count, " of key '", key, "' takes the metadata past ",
           kMaxMetadataArrayElements, " array elements in total, more than any model needs");
    }
    array_elements_ += count;
    arr.items.reserve(static_cast<size_t>(count));
    // Tokenizer vocabularies hold 100k+ strings or scalars: the common element types get a
    // tight loop (bounds were checked once above for scalars, per string for strings).
    switch (arr.element_type) {
      case ValueType::kString:
        for (uint64_t i = 0; i < count; ++i) {
          const uint64_t len_at = pos_;
          const uint64_t len = read_u64("string value of key '", key, "' length");
          if (len > remaining()) {
            fail(len_at, "string value of key '", key, "': string length ", len, " exceeds the ",
                 remaining(), " bytes left in the file");
          }
          const char* text = reinterpret_cast<const char*>(f_.base_ + pos_);
          arr.items.emplace_back(std::string(text, static_cast<size_t>(len)));
          pos_ += len;
        }
        break;
      case ValueType::kFloat32:
        read_scalars<float, uint32_t>(arr, count);
        break;
      case ValueType::kInt32:
        read_scalars<int32_t, uint32_t>(arr, count);
        break;
      case ValueType::kUint32:
        read_scalars<uint32_t, uint32_t>(arr, count);
        break;
      default:
        for (uint64_t i = 0; i < count; ++i) {
          arr.items.push_back(read_value(arr.element_type, key, depth));
        }
    }
    return arr;
  }

  // `count` elements of a 4-byte scalar type; the caller checked they fit in the image.
  template <typename T, typename Bits>
  void read_scalars(Array& arr, uint64_t count) {
    static_assert(sizeof(T) == sizeof(Bits));
    for (uint64_t i = 0; i < count; ++i) {
      const Bits bits = static_cast<Bits>(read_le(sizeof(Bits)));
      T v;
      std::memcpy(&v, &bits, sizeof(T));
      arr.items.emplace_back(v);
    }
  }

  void read_header() {
    need(4, "header magic");
    const uint32_t magic = static_cast<uint32_t>(read_le(4));
    if (magic != kMagic) {
      char shown[5] = {};
      for (int i = 0; i < 4; ++i) {
        const char c = static_cast<char>((magic >> (8 * i)) & 0xff);
        shown[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
      }
      char hex[16];
      std::snprintf(hex, sizeof(hex), "0x%08x", magic);
      fail(0, "header magic: bad magic \"", shown, "\" (", hex,
           " little-endian), expected \"GGUF\": not a GGUF file");
    }
    const uint64_t version_at = pos_;
    const uint32_t version = read_u32("header version");
    if (version == 1) {
      fail(version_at,
           "GGUF version 1 is not supported (it predates 64-bit counts); "
           "re-convert the model with a current converter");
    }
    if (version < kMinVersion || version > kMaxVersion) {
      // A big-endian file has its version byte-swapped.
      if (version > 0xffffff && (version >> 24) >= kMinVersion && (version >> 24) <= kMaxVersion) {
        fail(version_at, "header version: big-endian GGUF files are not supported");
      }
      fail(version_at, "header version ", version, " is not supported (supported: ", kMinVersion,
           " and ", kMaxVersion, ")");
    }
    f_.version_ = version;
    const uint64_t tc_at = pos_;
    tensor_count_ = read_u64("header tensor_count");
    const uint64_t kv_at = pos_;
    kv_count_ = read_u64("header kv_count");
    if (tensor_count_ > remaining() / kMinTensorInfoBytes) {
      fail(tc_at, "header tensor_count ", tensor_count_, " is impossible: each tensor entry needs",
           " at least ", kMinTensorInfoBytes, " bytes and only ", remaining(), " remain");
    }
    const uint64_t left = remaining() - tensor_count_ * kMinTensorInfoBytes;
    if (kv_count_ > left / kMinKvBytes) {
      fail(kv_at, "header kv_count ", kv_count_, " is impossible: each key/value pair needs at",
           " least ", kMinKvBytes, " bytes and only ", left, " remain besides the tensor entries");
    }
  }

  void read_metadata() {
    f_.metadata_.reserve(static_cast<size_t>(kv_count_));
    key_offsets_.reserve(static_cast<size_t>(kv_count_));
    for (uint64_t i = 0; i < kv_count_; ++i) {
      const uint64_t at = pos_;
      std::string key = read_string("metadata key #", i);
      if (key.empty()) fail(at, "metadata key #", i, " is empty");
      if (auto it = f_.metadata_index_.find(key); it != f_.metadata_index_.end()) {
        fail(at, "duplicate metadata key '", key, "' (first defined at byte offset ",
             key_offsets_[it->second], ")");
      }
      const ValueType type = read_value_type("value type of key '", key, "'");
      Value value = read_value(type, key, 0);
      f_.metadata_index_.emplace(key, f_.metadata_.size());
      key_offsets_.push_back(at);
      f_.metadata_.emplace_back(std::move(key), std::move(value));
    }
  }

  void resolve_alignment() {
    auto it = f_.metadata_index_.find("general.alignment");
    if (it == f_.metadata_index_.end()) return;
    const Value* v = &f_.metadata_[it->second].second;
    const uint64_t at = key_offsets_[it->second];
    const uint32_t* a = v->as<uint32_t>();
    if (a == nullptr) {
      fail(at, "metadata key 'general.alignment' has type ", value_type_name(v->type()),
           ", expected uint32");
    }
    if (!is_power_of_two(*a)) {
      fail(at, "metadata key 'general.alignment' is ", *a, ", expected a non-zero power of two");
    }
    f_.alignment_ = *a;
  }

  void read_tensor_infos() {
    f_.tensors_.reserve(static_cast<size_t>(tensor_count_));
    for (uint64_t i = 0; i < tensor_count_; ++i) {
      TensorInfo info;
      info.info_offset = pos_;
      info.name = read_string("name of tensor #", i);
      if (info.name.empty()) fail(info.info_offset, "name of tensor #", i, " is empty");
      if (auto it = f_.tensor_index_.find(info.name); it != f_.tensor_index_.end()) {
        fail(info.info_offset, "duplicate tensor name '", info.name,
             "' (first entry at byte offset ", f_.tensors_[it->second].info_offset, ")");
      }
      const std::string& name = info.name;
      const uint64_t ndims_at = pos_;
      const uint32_t n_dims = read_u32("n_dims of tensor '", name, "'");
      if (n_dims < 1 || n_dims > static_cast<uint32_t>(kMaxDims)) {
        fail(ndims_at, "tensor '", name, "' n_dims is ", n_dims, ", expected 1 to ", kMaxDims);
      }
      uint64_t ne[kMaxDims] = {};
      uint64_t ne_at[kMaxDims] = {};
      int64_t numel = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        ne_at[d] = pos_;
        ne[d] = read_u64("ne[", d, "] of tensor '", name, "'");
        if (ne[d] == 0) fail(ne_at[d], "tensor '", name, "' ne[", d, "] is 0");
        if (ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          fail(ne_at[d], "tensor '", name, "' ne[", d, "] = ", ne[d],
               " is negative or too large as a signed 64-bit dimension");
        }
        const int64_t dim = static_cast<int64_t>(ne[d]);
        if (numel > std::numeric_limits<int64_t>::max() / dim) {
          fail(ne_at[d], "tensor '", name, "' element count overflows int64 at ne[", d,
               "] = ", ne[d]);
        }
        numel *= dim;
      }
      const uint64_t type_at = pos_;
      const uint32_t type_id = read_u32("type of tensor '", name, "'");
      const std::optional<DType> dtype = dtype_from_ggml_id(type_id);
      if (!dtype) fail(type_at, "tensor '", name, "' has unknown ggml type id ", type_id);
      info.dtype = *dtype;
      const DTypeInfo& di = dtype_info(info.dtype);
      const int64_t ne0 = static_cast<int64_t>(ne[0]);
      if (ne0 % di.block_size != 0) {
        fail(ne_at[0], "tensor '", name, "' row length ne[0] = ", ne0, " is not a multiple of the ",
             di.name, " block size ", di.block_size);
      }
      const int64_t blocks_per_row = ne0 / di.block_size;
      if (blocks_per_row > std::numeric_limits<int64_t>::max() / di.block_bytes) {
        fail(ne_at[0], "tensor '", name, "' row byte size overflows int64");
      }
      int64_t nbytes = blocks_per_row * di.block_bytes;
      for (uint32_t d = 1; d < n_dims; ++d) {
        const int64_t dim = static_cast<int64_t>(ne[d]);
        if (nbytes > std::numeric_limits<int64_t>::max() / dim) {
          fail(ne_at[d], "tensor '", name, "' byte size overflows int64 at ne[", d, "] = ", ne[d]);
        }
        nbytes *= dim;
      }
      info.nbytes = static_cast<uint64_t>(nbytes);
      info.shape.assign(ne, ne + n_dims);
      std::reverse(info.shape.begin(), info.shape.end());
      const uint64_t offset_at = pos_;
      info.data_offset = read_u64("data offset of tensor '", name, "'");
      if (info.data_offset % f_.alignment_ != 0) {
        fail(offset_at, "tensor '", name, "' data offset ", info.data_offset,
             " is not a multiple of the alignment ", f_.alignment_);
      }
      f_.tensor_index_.emplace(info.name, f_.tensors_.size());
      f_.tensors_.push_back(std::move(info));
    }
  }

  void check_tensor_data() {
    // The data section starts at the first alignment boundary after the tensor table.
    const uint64_t a = f_.alignment_;
    f_.data_offset_ = (pos_ + a - 1) / a * a;
    if (f_.tensors_.empty()) return;
    if (f_.data_offset_ > f_.size_) {
      fail(pos_, "tensor data section starts at byte offset ", f_.data_offset_, " (alignment ", a,
           "), past the end of the file (", f_.size_, " bytes)");
    }
    const uint64_t section = f_.size_ - f_.data_offset_;
    for (const TensorInfo& t : f_.tensors_) {
      if (t.data_offset > section || t.nbytes > section - t.data_offset) {
        fail(t.info_offset, "tensor '", t.name, "' data [", t.data_offset, ", ",
             // Printed without overflowing even for absurd offsets.
             t.data_offset > std::numeric_limits<uint64_t>::max() - t.nbytes
                 ? std::string("overflow")
                 : std::to_string(t.data_offset + t.nbytes),
             ") of the data section at byte offset ", f_.data_offset_,
             " extends past the end of the file (", f_.size_, " bytes)");
      }
    }
    std::vector<const TensorInfo*> order;
    order.reserve(f_.tensors_.size());
    for (const TensorInfo& t : f_.tensors_) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](const TensorInfo* x, const TensorInfo* y) {
      return x->data_offset < y->data_offset;
    });
    for (size_t i = 1; i < order.size(); ++i) {
      const TensorInfo& prev = *order[i - 1];
      const TensorInfo& cur = *order[i];
      if (prev.data_offset + prev.nbytes > cur.data_offset) {
        fail(cur.info_offset, "tensor '", cur.name, "' data [", cur.data_offset, ", ",
             cur.data_offset + cur.nbytes, ") overlaps tensor '", prev.name, "' data [",
             prev.data_offset, ", ", prev.data_offset + prev.nbytes, ")");
      }
    }
  }
};

File File::open(const std::string& path) {
  std::shared_ptr<MmapFile> mapped = MmapFile::open(path);
  const uint8_t* data = mapped->data();
  const size_t size = mapped->size();
  return parse(std::move(mapped), data, size, path);
}

File File::parse(std::shared_ptr<const void> owner, const uint8_t* data, size_t size,
                 std::string display_name) {
  File f;
  f.owner_ = std::move(owner);
  f.base_ = data;
  f.size_ = data == nullptr ? 0 : size;
  f.path_ = std::move(display_name);
  Parser(f).run();
  return f;
}

const Value* File::find(std::string_view key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

namespace {

[[noreturn]] void throw_missing(const std::string& path, std::string_view key) {
  throw_error(StatusCode::kFormat, path, ": missing required key '", key, "'");
}

[[noreturn]] void throw_type(const std::string& path, std::string_view key, const Value& v,
                             std::string_view expected) {
  throw_error(StatusCode::kFormat, path, ": key '", key, "' has type ", value_type_name(v.type()),
              ", expected ", expected);
}

}  // namespace

int64_t File::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) throw_missing(path_, key);
  if (!v->is_integer()) throw_type(path_, key, *v, "an integer");
  int64_t out = 0;
  if (!v->to_int64(&out)) {
    throw_error(StatusCode::kFormat, path_, ": key '", key, "' value ", v->to_display_string(),
                " does not fit in int64");
  }
  return out;
}

double File::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) throw_missing(path_, key);
  double out = 0;
  if (!v->to_double(&out)) throw_type(path_, key, *v, "a number");
  return out;
}

const std::string& File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) throw_missing(path_, key);
  const std::string* s = v->as_string();
  if (s == nullptr) throw_type(path_, key, *v, "string");
  return *s;
}

const Array& File::get_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) throw_missing(path_, key);
  const Array* a = v->as_array();
  if (a == nullptr) throw_type(path_, key, *v, "array");
  return *a;
}

bool File::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) throw_missing(path_, key);
  const bool* b = v->as_bool();
  if (b == nullptr) throw_type(path_, key, *v, "bool");
  return *b;
}

int64_t File::get_int_or(std::string_view key, int64_t fallback) const {
  return find(key) == nullptr ? fallback : get_int(key);
}

double File::get_float_or(std::string_view key, double fallback) const {
  return find(key) == nullptr ? fallback : get_float(key);
}

std::string File::get_string_or(std::string_view key, std::string fallback) const {
  return find(key) == nullptr ? std::move(fallback) : get_string(key);
}

bool File::get_bool_or(std::string_view key, bool fallback) const {
  return find(key) == nullptr ? fallback : get_bool(key);
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Tensor File::tensor(std::string_view name) const {
  const TensorInfo* info = find_tensor(name);
  if (info == nullptr) {
    throw_error(StatusCode::kNotFound, path_, ": no tensor named '", name, "'");
  }
  return tensor(*info);
}

Tensor File::tensor(const TensorInfo& info) const {
  // The mapping is read-only; Tensor has no const flavour, so consumers must treat file-backed
  // weights as immutable (writing would fault).
  void* data = const_cast<uint8_t*>(tensor_data(info));
  return Tensor::borrow(data, info.shape, info.dtype, owner_);
}

}  // namespace llmos::gguf
