// Conversions between Python objects and llmos types, and the tokenizer calls shared by
// Model and Engine.
#include <Python.h>

#include <limits>
#include <string>

#include "bindings.h"
#include "core/error.h"

namespace llmos::python {
namespace {

// The buffer's format string names a 4-byte signed integer ('i', with an optional byte-order
// or alignment prefix; 'l' when long is 4 bytes).
bool is_int32_format(const std::string& format, py::ssize_t itemsize) {
  if (itemsize != 4 || format.empty()) return false;
  std::string f = format;
  if (f.size() == 2 && (f[0] == '@' || f[0] == '=' || f[0] == '<' || f[0] == '!' || f[0] == '>'))
    f = f.substr(1);
  return f == "i" || (f == "l" && sizeof(long) == 4);
}

}  // namespace

std::vector<int32_t> tokens_from_python(const py::handle& obj, const char* what) {
  if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj)) {
    throw py::type_error(std::string(what) + ": expected token ids (a sequence of int or an int32 "
                         "array), got " + type_name(obj));
  }
  if (PyObject_CheckBuffer(obj.ptr())) {
    py::buffer_info info = py::reinterpret_borrow<py::buffer>(obj).request();
    if (info.ndim != 1) {
      throw_error(StatusCode::kInvalidArgument, what, ": expected a 1-D array of token ids, got ",
                  info.ndim, " dimensions");
    }
    if (!is_int32_format(info.format, info.itemsize)) {
      std::string dtype = info.format;
      if (py::hasattr(obj, "dtype")) dtype = py::str(obj.attr("dtype"));
      throw py::type_error(std::string(what) + ": token arrays must be int32, got " + dtype +
                           " (convert explicitly, e.g. numpy.asarray(ids, dtype=numpy.int32))");
    }
    if (info.shape[0] > 1 && info.strides[0] != 4) {
      throw_error(StatusCode::kInvalidArgument, what, ": the token array must be contiguous (stride ",
                  info.strides[0], " bytes, expected 4)");
    }
    const auto* data = static_cast<const int32_t*>(info.ptr);
    return std::vector<int32_t>(data, data + info.shape[0]);
  }
  if (!py::isinstance<py::sequence>(obj)) {
    throw py::type_error(std::string(what) + ": expected token ids (a sequence of int or an int32 "
                         "array), got " + type_name(obj));
  }
  const auto seq = py::reinterpret_borrow<py::sequence>(obj);
  std::vector<int32_t> out;
  out.reserve(seq.size());
  for (size_t i = 0; i < seq.size(); ++i) {
    py::object item = seq[i];
    if (!PyLong_Check(item.ptr()) || PyBool_Check(item.ptr())) {
      throw py::type_error(std::string(what) + "[" + std::to_string(i) + "]: expected int, got " +
                           type_name(item));
    }
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(item.ptr(), &overflow);
    if (overflow != 0 || v < std::numeric_limits<int32_t>::min() ||
        v > std::numeric_limits<int32_t>::max()) {
      throw_error(StatusCode::kInvalidArgument, what, "[", i, "]: ", std::string(py::str(item)),
                  " is not a token id");
    }
    out.push_back(static_cast<int32_t>(v));
  }
  return out;
}

py::str to_str(std::string_view utf8) {
  PyObject* s = PyUnicode_DecodeUTF8(utf8.data(), static_cast<Py_ssize_t>(utf8.size()), "replace");
  if (s == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(s);
}

py::array tensor_to_numpy(Tensor tensor) {
  LLMOS_ASSERT(tensor.dtype() == DType::kF32 && tensor.device().is_cpu() && tensor.is_contiguous());
  std::vector<py::ssize_t> shape;
  std::vector<py::ssize_t> strides;
  for (int i = 0; i < tensor.ndim(); ++i) {
    shape.push_back(static_cast<py::ssize_t>(tensor.dim(i)));
    strides.push_back(static_cast<py::ssize_t>(tensor.stride_bytes(i)));
  }
  auto* owner = new Tensor(std::move(tensor));
  // The capsule owns the tensor's storage: numpy frees it with the last array that uses it.
  py::capsule keep(owner, [](void* p) { delete static_cast<Tensor*>(p); });
  return py::array(py::dtype::of<float>(), shape, strides, owner->data(), keep);
}

py::list tokenize(const Tokenizer& tokenizer, const py::handle& text, bool add_bos,
                  bool parse_special) {
  std::string bytes;
  if (py::isinstance<py::str>(text)) {
    bytes = text.cast<std::string>();
  } else if (py::isinstance<py::bytes>(text)) {
    bytes = std::string(py::reinterpret_borrow<py::bytes>(text));
  } else {
    throw py::type_error("tokenize: text must be str or bytes, got " +
                         type_name(text));
  }
  std::vector<TokenId> ids;
  {
    py::gil_scoped_release release;
    ids = tokenizer.encode(bytes, add_bos, parse_special);
  }
  py::list out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) out[i] = py::int_(ids[i]);
  return out;
}

py::str detokenize(const Tokenizer& tokenizer, const py::handle& tokens, bool special) {
  const std::vector<int32_t> ids = tokens_from_python(tokens, "detokenize: tokens");
  const auto vocab = static_cast<int64_t>(tokenizer.vocab().size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      throw_error(StatusCode::kInvalidArgument, "detokenize: tokens[", i, "] = ", ids[i],
                  " is outside the vocabulary of ", vocab);
    }
  }
  std::string text;
  {
    py::gil_scoped_release release;
    text = tokenizer.decode(ids, special);
  }
  return to_str(text);
}

}  // namespace llmos::python
