// The one place where llmos errors become Python exceptions. Every llmos::Error turns into
// an llmos.LlmosError subclass chosen by its StatusCode; the message is the C++ message,
// unchanged, and `code` names the status. Each subclass also derives from the standard
// exception a Python caller would expect (ValueError for bad arguments, OSError for I/O,
// MemoryError, LookupError, ...), so `except ValueError` works too.
#include <Python.h>

#include <array>
#include <cerrno>

#include "bindings.h"
#include "core/error.h"

namespace llmos::python {
namespace {

struct ErrorClass {
  StatusCode code;
  const char* name;     // the Python class name, in the llmos package
  const char* code_id;  // the value of the exception's `code` attribute
  PyObject* standard;   // the standard exception it also derives from (or null)
  const char* doc;
};

// Created once at import and kept for the life of the process (exception classes are never
// freed by CPython before finalization either).
PyObject* g_base = nullptr;
PyObject* g_classes[10] = {};  // by StatusCode
const char* g_code_ids[10] = {};
PyObject* g_closed = nullptr;
PyObject* g_no_such_file = nullptr;

PyObject* new_class(const char* name, const char* doc, PyObject* bases, PyObject* dict = nullptr) {
  const std::string qualified = std::string("llmos.") + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases, dict);
  if (cls == nullptr) throw py::error_already_set();
  return cls;
}

PyObject* tuple_of(PyObject* a, PyObject* b) {
  PyObject* t = b != nullptr ? PyTuple_Pack(2, a, b) : PyTuple_Pack(1, a);
  if (t == nullptr) throw py::error_already_set();
  return t;
}

// Raises `cls(message)` with `code` (and `filename` when given) set on the instance.
void raise(PyObject* cls, const std::string& message, const char* code_id,
           const std::string* filename = nullptr) {
  py::object instance = py::reinterpret_steal<py::object>(
      PyObject_CallFunctionObjArgs(cls, to_str(message).ptr(), nullptr));
  if (!instance) return;  // constructing it failed: that error is set instead
  instance.attr("code") = py::str(code_id);
  if (filename != nullptr) {
    instance.attr("filename") = py::str(*filename);
    instance.attr("errno") = py::int_(ENOENT);
  }
  PyErr_SetObject(cls, instance.ptr());
}

}  // namespace

void register_errors(py::module_& m) {
  g_base = new_class("LlmosError",
                     "Base class of every llmos error. `code` names the status "
                     "(e.g. 'invalid_argument'); str() is the library's message.",
                     PyExc_Exception);
  const std::array<ErrorClass, 9> table{{
      {StatusCode::kInvalidArgument, "InvalidArgumentError", "invalid_argument", PyExc_ValueError,
       "An argument or parameter is invalid (also a ValueError)."},
      {StatusCode::kIo, "IoError", "io", PyExc_OSError,
       "Reading or writing a file failed (also an OSError)."},
      {StatusCode::kFormat, "FormatError", "format", PyExc_ValueError,
       "A file is malformed; the message names the file, field and offset (also a ValueError)."},
      {StatusCode::kUnsupported, "UnsupportedError", "unsupported", PyExc_NotImplementedError,
       "The model, tokenizer, device or option is not supported by this build."},
      {StatusCode::kOutOfMemory, "OutOfMemoryError", "out_of_memory", PyExc_MemoryError,
       "Not enough memory (also a MemoryError)."},
      {StatusCode::kCancelled, "CancelledError", "cancelled", nullptr,
       "The request was cancelled (for example by closing its engine)."},
      {StatusCode::kNotFound, "NotFoundError", "not_found", PyExc_LookupError,
       "A request id is unknown or already released (also a LookupError)."},
      {StatusCode::kBusy, "BusyError", "busy", PyExc_RuntimeError,
       "A limit was reached or the resource is in use; retry later."},
      {StatusCode::kInternal, "InternalError", "internal", PyExc_RuntimeError,
       "A bug in llmos: an internal check failed."},
  }};
  m.attr("LlmosError") = py::handle(g_base);
  for (const ErrorClass& e : table) {
    PyObject* bases = tuple_of(g_base, e.standard);
    PyObject* cls = new_class(e.name, e.doc, bases);
    Py_DECREF(bases);
    g_classes[static_cast<int>(e.code)] = cls;
    g_code_ids[static_cast<int>(e.code)] = e.code_id;
    m.attr(e.name) = py::handle(cls);
  }
  PyObject* io = g_classes[static_cast<int>(StatusCode::kIo)];
  PyObject* nsf_bases = tuple_of(io, PyExc_FileNotFoundError);
  // str() stays the library's message (OSError's own __str__ would rebuild it from errno and
  // filename).
  py::dict nsf_dict;
  nsf_dict["__str__"] = py::handle(PyExc_BaseException).attr("__str__");
  g_no_such_file = new_class("NoSuchFileError",
                             "A path does not exist (an IoError and a FileNotFoundError); "
                             "`filename` is the path.",
                             nsf_bases, nsf_dict.ptr());
  Py_DECREF(nsf_bases);
  m.attr("NoSuchFileError") = py::handle(g_no_such_file);
  PyObject* closed_bases = tuple_of(g_base, PyExc_ValueError);
  g_closed = new_class("ClosedError", "The Model or Engine was closed (also a ValueError).",
                       closed_bases);
  Py_DECREF(closed_bases);
  m.attr("ClosedError") = py::handle(g_closed);

  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    try {
      std::rethrow_exception(p);
    } catch (const Error& e) {
      const int code = static_cast<int>(e.code());
      const bool known = code > 0 && code < 10 && g_classes[code] != nullptr;
      raise(known ? g_classes[code] : g_base, e.message(), known ? g_code_ids[code] : "unknown");
    } catch (const NoSuchFileError& e) {
      raise(g_no_such_file, e.what(), "io", &e.path());
    } catch (const ClosedError& e) {
      raise(g_closed, e.what(), "closed");
    }
  });
}

}  // namespace llmos::python
