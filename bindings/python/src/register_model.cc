// llmos.Model: a GGUF model loaded on a backend, its tokenizer, and logits as numpy arrays.
#include <algorithm>
#include <filesystem>
#include <numeric>

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "bindings.h"
#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/batch.h"

namespace llmos::python {
namespace {

constexpr int kLogitsBlockSize = 16;
constexpr int64_t kLogitsChunk = 512;  // tokens per forward step, as the generator prefills

DType parse_kv_dtype(const std::string& name, const char* what) {
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    if (name == dtype_name(d)) return d;
  }
  throw_error(StatusCode::kInvalidArgument, what, ": must be 'f32', 'f16' or 'bf16', got '", name,
              "'");
}

// One sequence through the forward pass with a private KV cache: logits of every position
// (or of the last one only). Runs with the GIL released and forward_mu held.
Tensor compute_logits(LlamaModel& model, const std::vector<int32_t>& tokens, bool last_only,
                      DType kv_dtype) {
  const int64_t vocab = model.config().vocab_size;
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t num_blocks = (n + kLogitsBlockSize - 1) / kLogitsBlockSize;
  KvCache cache(model.kv_cache_spec(num_blocks, kLogitsBlockSize, kv_dtype), model.backend());
  std::vector<int32_t> block_table(static_cast<size_t>(num_blocks));
  std::iota(block_table.begin(), block_table.end(), 0);
  Tensor out = Tensor::empty({last_only ? 1 : n, vocab}, DType::kF32);
  Batch batch;
  for (int64_t done = 0; done < n;) {
    const int64_t k = std::min(n - done, kLogitsChunk);
    const bool last = done + k == n;
    batch.clear();
    batch.add_sequence(std::span<const int32_t>(tokens.data() + done, static_cast<size_t>(k)),
                       static_cast<int32_t>(done), block_table, kLogitsBlockSize,
                       last_only ? (last ? Batch::Logits::kLast : Batch::Logits::kNone)
                                 : Batch::Logits::kAll);
    Tensor rows = last_only ? (last ? out : Tensor::empty({0, vocab}, DType::kF32))
                            : out.slice_rows(done, done + k);
    model.forward(batch, cache, rows);
    done += k;
  }
  return out;
}

py::array model_logits(PyModel& self, const py::handle& tokens, bool last_only,
                       const std::string& kv_dtype) {
  std::shared_ptr<ModelState> st = self.state("Model.logits");
  const std::vector<int32_t> ids = tokens_from_python(tokens, "Model.logits: tokens");
  const ModelConfig& mc = st->model->config();
  LLMOS_CHECK_ARG(!ids.empty(), "Model.logits: tokens is empty");
  LLMOS_CHECK_ARG(static_cast<int64_t>(ids.size()) <= mc.context_length, "Model.logits: ",
                  ids.size(), " tokens exceed the context length ", mc.context_length);
  for (size_t i = 0; i < ids.size(); ++i) {
    LLMOS_CHECK_ARG(ids[i] >= 0 && ids[i] < mc.vocab_size, "Model.logits: tokens[", i, "] = ",
                    ids[i], " is outside the vocabulary of ", mc.vocab_size);
  }
  const DType dtype = parse_kv_dtype(kv_dtype, "Model.logits: kv_dtype");
  Tensor out;
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lk(st->forward_mu);
    if (st->open_engines > 0) {
      throw_error(StatusCode::kBusy, "Model.logits: ", st->open_engines,
                  " open engine(s) share this model's forward pass; close them first (an "
                  "Engine created with its own threads= does not count)");
    }
    out = compute_logits(*st->model, ids, last_only, dtype);
  }
  return tensor_to_numpy(std::move(out));
}

py::object optional_token(TokenId id) {
  return id == kNoToken ? py::object(py::none()) : py::object(py::int_(id));
}

}  // namespace

PyModel::PyModel(const std::string& path, int threads, const std::string& device,
                 bool reference_kernels) {
  LLMOS_CHECK_ARG(threads >= 0, "Model: threads must be positive (or None for all cores), got ",
                  threads);
  auto st = std::make_shared<ModelState>();
  st->path = path;
  st->backend_options.num_threads = threads;
  st->backend_options.device = parse_device(device);
  st->backend_options.reference_kernels = reference_kernels;
  {
    py::gil_scoped_release release;
    st->backend = create_backend(st->backend_options);
    st->model = load_file(path, [&] { return LlamaModel::load(path, st->backend); });
  }
  state_ = std::move(st);
}

std::shared_ptr<ModelState> PyModel::state(const char* what) const {
  if (!state_) throw ClosedError(std::string(what) + ": the model is closed");
  return state_;
}

void register_model(py::module_& m) {
  py::class_<PyModel>(m, "Model", "A GGUF model loaded for inference (weights memory-mapped).")
      .def(py::init([](const std::filesystem::path& path, std::optional<int> threads,
                       const std::string& device, bool reference_kernels) {
             if (threads && *threads <= 0) {
               throw_error(StatusCode::kInvalidArgument,
                           "Model: threads must be positive (or None for all cores), got ",
                           *threads);
             }
             return std::make_unique<PyModel>(path.string(), threads.value_or(0), device,
                                              reference_kernels);
           }),
           py::arg("path"), py::arg("threads") = py::none(), py::kw_only(),
           py::arg("device") = "cpu", py::arg("reference_kernels") = false)
      .def("close", &PyModel::close, "Releases the model (engines built on it keep their own reference).")
      .def_property_readonly("closed", &PyModel::closed)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyModel& self, const py::args&) { self.close(); })
      .def_property_readonly("path", [](const PyModel& s) { return s.state("Model.path")->path; })
      .def_property_readonly("vocab_size", [](const PyModel& s) {
        return s.state("Model.vocab_size")->model->config().vocab_size;
      })
      .def_property_readonly("context_length", [](const PyModel& s) {
        return s.state("Model.context_length")->model->config().context_length;
      })
      .def_property_readonly("embedding_length", [](const PyModel& s) {
        return s.state("Model.embedding_length")->model->config().dim;
      })
      .def_property_readonly("num_layers", [](const PyModel& s) {
        return s.state("Model.num_layers")->model->config().num_layers;
      })
      .def_property_readonly("architecture", [](const PyModel& s) {
        return s.state("Model.architecture")->model->config().architecture;
      })
      .def_property_readonly("name", [](const PyModel& s) {
        return s.state("Model.name")->model->config().name;
      })
      .def_property_readonly("bos", [](const PyModel& s) {
        return optional_token(s.state("Model.bos")->model->tokenizer().vocab().bos);
      })
      .def_property_readonly("eos", [](const PyModel& s) {
        return optional_token(s.state("Model.eos")->model->tokenizer().vocab().eos);
      })
      .def_property_readonly("add_bos", [](const PyModel& s) {
        return s.state("Model.add_bos")->model->tokenizer().vocab().add_bos;
      })
      .def_property_readonly("threads", [](const PyModel& s) {
        return s.state("Model.threads")->backend->num_threads();
      })
      .def_property_readonly("backend", [](const PyModel& s) {
        return s.state("Model.backend")->backend->name();
      })
      .def("is_eog", [](const PyModel& s, int32_t token) {
        return s.state("Model.is_eog")->model->tokenizer().is_eog(token);
      }, py::arg("token"))
      .def("tokenize", [](const PyModel& s, const py::handle& text, bool add_bos, bool parse_special) {
        return tokenize(s.state("Model.tokenize")->model->tokenizer(), text, add_bos, parse_special);
      }, py::arg("text"), py::arg("add_bos") = true, py::arg("parse_special") = false)
      .def("detokenize", [](const PyModel& s, const py::handle& tokens, bool special) {
        return detokenize(s.state("Model.detokenize")->model->tokenizer(), tokens, special);
      }, py::arg("tokens"), py::arg("special") = false)
      .def("logits", &model_logits, py::arg("tokens"), py::kw_only(),
           py::arg("last_only") = false, py::arg("kv_dtype") = "f32")
      .def("__repr__", [](const PyModel& s) {
        if (s.closed()) return std::string("<llmos.Model (closed)>");
        const auto st = s.state("Model.__repr__");
        const ModelConfig& c = st->model->config();
        return "<llmos.Model '" + st->path + "' " + c.architecture + ", " +
               std::to_string(c.num_layers) + " layers, vocab " + std::to_string(c.vocab_size) +
               ", " + st->backend->name() + ">";
      });
}

}  // namespace llmos::python
