// C API: models, model info and the tokenizer.
#include <string>
#include <vector>

#include "capi/capi_internal.h"
#include "core/logging.h"

using namespace llmos;
using namespace llmos::capi;

namespace {

BackendOptions backend_options_from(const llmos_model_params& p) {
  if (p.n_threads < 0)
    invalid("params->n_threads must be >= 0, got " + std::to_string(p.n_threads));
  BackendOptions o;
  o.num_threads = p.n_threads;
  o.device = (p.device == nullptr || *p.device == '\0') ? Device::cpu() : parse_device(p.device);
  o.reference_kernels = p.use_reference_kernels != 0;
  return o;
}

}  // namespace

extern "C" {

LLMOS_API llmos_model_params llmos_model_params_default(void) {
  llmos_model_params p;
  std::memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.n_threads = 0;
  p.device = nullptr;
  p.use_reference_kernels = 0;
  return p;
}

LLMOS_API llmos_status llmos_model_load(const char* path, const llmos_model_params* params,
                                        llmos_model** out) {
  return guarded("llmos_model_load", [&] {
    require(out != nullptr, "out is NULL");
    *out = nullptr;
    require(path != nullptr, "path is NULL");
    require(*path != '\0', "path is empty");
    const llmos_model_params p = read_params(params, llmos_model_params_default(), "params");
    auto m = std::make_shared<llmos_model>();
    m->backend_options = backend_options_from(p);
    std::shared_ptr<Backend> backend = create_backend(m->backend_options);
    m->model = LlamaModel::load(path, std::move(backend));
    const ModelConfig& c = m->model->config();
    log_message(LogLevel::kInfo, std::string("loaded model '") + path + "': " + c.architecture +
                                     ", " + std::to_string(c.num_layers) + " layers, vocab " +
                                     std::to_string(c.vocab_size) + ", backend " +
                                     m->model->backend().name());
    *out = models().add(std::move(m));
    return LLMOS_OK;
  });
}

LLMOS_API llmos_status llmos_model_free(llmos_model* model) {
  return guarded("llmos_model_free", [&] {
    if (model == nullptr) return LLMOS_OK;
    if (!models().take(model)) invalid("model is not a live llmos_model (freed or never created)");
    return LLMOS_OK;
  });
}

LLMOS_API llmos_status llmos_model_get_info(const llmos_model* model, llmos_model_info* info) {
  return guarded("llmos_model_get_info", [&] {
    std::shared_ptr<llmos_model> m = get_model(model);
    require(info != nullptr, "info is NULL");
    const ModelConfig& c = m->model->config();
    const Vocab& v = m->model->tokenizer().vocab();
    llmos_model_info r;
    std::memset(&r, 0, sizeof r);
    // The strings live as long as the model object (never reassigned after loading).
    r.architecture = c.architecture.c_str();
    r.name = c.name.c_str();
    r.vocab_size = c.vocab_size;
    r.context_length = c.context_length;
    r.n_layers = c.num_layers;
    r.n_heads = c.num_heads;
    r.n_kv_heads = c.num_kv_heads;
    r.dim = c.dim;
    r.bos = v.bos;
    r.eos = v.eos;
    r.add_bos = (v.add_bos && v.bos != kNoToken) ? 1 : 0;
    r.n_threads = m->model->backend().num_threads();
    write_output(info, r, "info");
    return LLMOS_OK;
  });
}

LLMOS_API llmos_status llmos_tokenize(const llmos_model* model, const char* text, size_t text_len,
                                      int add_bos, llmos_token* tokens_out, size_t capacity,
                                      size_t* n_out) {
  return guarded("llmos_tokenize", [&] {
    std::shared_ptr<llmos_model> m = get_model(model);
    require(n_out != nullptr, "n_out is NULL");
    *n_out = 0;
    require(text != nullptr || text_len == 0, "text is NULL while text_len is not 0");
    require(tokens_out != nullptr || capacity == 0, "tokens_out is NULL while capacity is not 0");
    const std::string_view view(text == nullptr ? "" : text, text_len);
    const std::vector<TokenId> ids = m->model->tokenizer().encode(view, add_bos != 0);
    *n_out = ids.size();
    if (ids.size() > capacity) {
      return fail(LLMOS_ERR_BUFFER_TOO_SMALL,
                  "llmos_tokenize: the text has " + std::to_string(ids.size()) +
                      " tokens, capacity is " + std::to_string(capacity));
    }
    if (!ids.empty()) std::memcpy(tokens_out, ids.data(), ids.size() * sizeof(llmos_token));
    return LLMOS_OK;
  });
}

LLMOS_API llmos_status llmos_detokenize(const llmos_model* model, const llmos_token* tokens,
                                        size_t n_tokens, char* text_out, size_t capacity,
                                        size_t* n_out) {
  return guarded("llmos_detokenize", [&] {
    std::shared_ptr<llmos_model> m = get_model(model);
    require(n_out != nullptr, "n_out is NULL");
    *n_out = 0;
    require(tokens != nullptr || n_tokens == 0, "tokens is NULL while n_tokens is not 0");
    require(text_out != nullptr || capacity == 0, "text_out is NULL while capacity is not 0");
    const Tokenizer& tok = m->model->tokenizer();
    const auto vocab = static_cast<int64_t>(tok.vocab().size());
    for (size_t i = 0; i < n_tokens; ++i) {
      if (tokens[i] < 0 || tokens[i] >= vocab) {
        invalid("tokens[" + std::to_string(i) + "] = " + std::to_string(tokens[i]) +
                " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
      }
    }
    const std::string text = tok.decode(std::vector<TokenId>(tokens, tokens + n_tokens));
    return copy_text(text, text_out, capacity, n_out, "llmos_detokenize");
  });
}

LLMOS_API llmos_status llmos_token_to_piece(const llmos_model* model, llmos_token token,
                                            char* text_out, size_t capacity, size_t* n_out) {
  return guarded("llmos_token_to_piece", [&] {
    std::shared_ptr<llmos_model> m = get_model(model);
    require(n_out != nullptr, "n_out is NULL");
    *n_out = 0;
    require(text_out != nullptr || capacity == 0, "text_out is NULL while capacity is not 0");
    const Tokenizer& tok = m->model->tokenizer();
    const auto vocab = static_cast<int64_t>(tok.vocab().size());
    if (token < 0 || token >= vocab) {
      invalid("token " + std::to_string(token) + " is outside the vocabulary [0, " +
              std::to_string(vocab) + ")");
    }
    return copy_text(tok.token_to_piece(token), text_out, capacity, n_out, "llmos_token_to_piece");
  });
}

}  // extern "C"
