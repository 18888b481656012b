// The `_llmos` extension module. The `llmos` package (bindings/python/llmos) re-exports it and
// adds the pure-Python parts (Engine.stream).
#include "bindings.h"

PYBIND11_MODULE(_llmos, m) {
  namespace py = pybind11;
  m.doc() = "llmos: LLM inference runtime (extension module; use the llmos package)";
  m.attr("__version__") = LLMOS_PYTHON_VERSION;
  llmos::python::register_errors(m);
  llmos::python::register_model(m);
  llmos::python::register_engine(m);
}
