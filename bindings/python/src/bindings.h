// Shared pieces of the `_llmos` extension module: the model state that Model objects and the
// engines made from them share, conversions between Python objects and llmos types, and the
// register_<thing>() functions module.cc calls.
//
// Threading rules for every binding: the GIL is released around compute and blocking waits
// (tokenizing, loading, forward passes, submit, waits on the engine), and code that runs on
// an engine thread takes the GIL only to call into Python. Nothing holds an engine or model
// lock while waiting for the GIL, so the two never wait on each other.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "model/llama_model.h"

namespace llmos::python {

namespace py = pybind11;

// A loaded model. Python's Model holds one; every Engine built on it holds another, so
// closing the Model never pulls the weights from under a running engine.
struct ModelState {
  std::string path;
  BackendOptions backend_options;
  std::shared_ptr<Backend> backend;
  std::shared_ptr<LlamaModel> model;

  // The forward pass and the backend's scratch are single-threaded: Model.logits() and the
  // engines that share this model must not run at once. logits() holds forward_mu for its
  // pass and refuses to run while open_engines > 0; an engine counts itself in on creation
  // and out once its step thread has stopped.
  std::mutex forward_mu;
  int open_engines = 0;  // guarded by forward_mu
};

// Raised as llmos.ClosedError: a method was called on a closed Model or Engine.
class ClosedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Raised as llmos.NoSuchFileError (an OSError and FileNotFoundError): a file path (model,
// snapshot) that does not exist. Carries the C++ message and the path.
class NoSuchFileError : public std::runtime_error {
 public:
  NoSuchFileError(const std::string& message, std::string path)
      : std::runtime_error(message), path_(std::move(path)) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Returns load(), which reads the file at `path`; its I/O error for a path that does not exist
// becomes NoSuchFileError.
template <typename Load>
auto load_file(const std::string& path, Load&& load) -> decltype(load()) {
  try {
    return load();
  } catch (const Error& e) {
    std::error_code ec;
    if (e.code() == StatusCode::kIo && !std::filesystem::exists(path, ec)) throw NoSuchFileError(e.message(), path);
    throw;
  }
}

// Python's Model: the loaded model until close().
class PyModel {
 public:
  PyModel(const std::string& path, int threads, const std::string& device, bool reference_kernels);
  // The state, or ClosedError naming `what` (the method called).
  std::shared_ptr<ModelState> state(const char* what) const;
  bool closed() const { return state_ == nullptr; }
  void close() { state_.reset(); }

 private:
  std::shared_ptr<ModelState> state_;
};

// Token ids from a Python sequence of ints or a 1-D contiguous int32 buffer (numpy array,
// array.array('i'), memoryview). Other dtypes and layouts are refused, never converted.
// `what` names the argument in error messages.
std::vector<int32_t> tokens_from_python(const py::handle& obj, const char* what);
// The name of obj's type, for error messages.
inline std::string type_name(const py::handle& obj) { return Py_TYPE(obj.ptr())->tp_name; }
// UTF-8 bytes to str; invalid sequences (a generation can stop inside a character) become
// U+FFFD instead of failing.
py::str to_str(std::string_view utf8);
// A host f32 tensor as a numpy array that shares its memory (the array keeps it alive).
py::array tensor_to_numpy(Tensor tensor);

// Text <-> ids with a model's tokenizer; the GIL is released while they run.
py::list tokenize(const Tokenizer& tokenizer, const py::handle& text, bool add_bos,
                  bool parse_special);
py::str detokenize(const Tokenizer& tokenizer, const py::handle& tokens, bool special);

void register_errors(py::module_& m);
void register_model(py::module_& m);
void register_engine(py::module_& m);

}  // namespace llmos::python
