#include "model/weights.h"

#include <cstdint>
#include <string>

#include "core/error.h"

namespace llmos {
namespace {

class Binder {
 public:
  Binder(const gguf::File& file, Backend& backend) : file_(file), backend_(backend) {}

  Tensor required(const std::string& name, std::vector<int64_t> shape, bool f32_only) {
    const gguf::TensorInfo* info = file_.find_tensor(name);
    if (info == nullptr) throw_error(StatusCode::kFormat, file_.path(), ": missing tensor '", name, "'");
    return bind(*info, std::move(shape), f32_only);
  }

  Tensor optional(const std::string& name, std::vector<int64_t> shape, bool f32_only) {
    const gguf::TensorInfo* info = file_.find_tensor(name);
    return info == nullptr ? Tensor() : bind(*info, std::move(shape), f32_only);
  }

 private:
  Tensor bind(const gguf::TensorInfo& info, std::vector<int64_t> shape, bool f32_only) {
    // A 1-D tensor may be stored as [n] or [1, n]; compare element counts for those.
    std::vector<int64_t> got = info.shape;
    while (got.size() > shape.size() && got.front() == 1) got.erase(got.begin());
    if (got != shape) {
      std::string want, have;
      for (int64_t d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
      for (int64_t d : info.shape) have += (have.empty() ? "" : ", ") + std::to_string(d);
      throw_error(StatusCode::kFormat, file_.path(), ": tensor '", info.name, "' has shape [", have,
                  "], expected [", want, "]");
    }
    if (f32_only && info.dtype != DType::kF32) {
      throw_error(StatusCode::kFormat, file_.path(), ": tensor '", info.name, "' must be f32, got ",
                  dtype_name(info.dtype));
    }
    if (!f32_only && (info.dtype == DType::kI8 || info.dtype == DType::kI16 || info.dtype == DType::kI32)) {
      throw_error(StatusCode::kUnsupported, file_.path(), ": tensor '", info.name,
                  "' has integer dtype ", dtype_name(info.dtype), ", which is not a weight format");
    }
    Tensor view = file_.tensor(info).reshape(shape);
    // GGUF allows general.alignment as small as 1, so a tensor's bytes may sit at an address
    // that is not a multiple of its element size. Kernels read plain f32/f16/bf16 tensors
    // through typed pointers; such a tensor is copied once into aligned memory instead.
    const auto address = reinterpret_cast<uintptr_t>(view.data());
    if (!dtype_is_quantized(info.dtype) && address % static_cast<uintptr_t>(dtype_block_bytes(info.dtype)) != 0) {
      view = view.clone();
    }
    return backend_.upload(view);
  }

  const gguf::File& file_;
  Backend& backend_;
};

}  // namespace

ModelWeights ModelWeights::from_gguf(const gguf::File& file, const ModelConfig& c, Backend& backend) {
  Binder bind(file, backend);
  ModelWeights w;
  w.token_embd = bind.required("token_embd.weight", {c.vocab_size, c.dim}, false);
  w.output_norm = bind.required("output_norm.weight", {c.dim}, true);
  w.output = bind.optional("output.weight", {c.vocab_size, c.dim}, false);
  if (!w.output.defined()) {
    w.output = w.token_embd;
    w.tied_output = true;
  }
  w.rope_freqs = bind.optional("rope_freqs.weight", {c.rope_dim / 2}, true);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights layer;
    layer.attn_norm = bind.required(p + "attn_norm.weight", {c.dim}, true);
    layer.wq = bind.required(p + "attn_q.weight", {c.q_dim(), c.dim}, false);
    layer.wk = bind.required(p + "attn_k.weight", {c.kv_dim(), c.dim}, false);
    layer.wv = bind.required(p + "attn_v.weight", {c.kv_dim(), c.dim}, false);
    layer.wo = bind.required(p + "attn_output.weight", {c.dim, c.q_dim()}, false);
    if (c.attention_bias) {
      layer.bq = bind.required(p + "attn_q.bias", {c.q_dim()}, true);
      layer.bk = bind.required(p + "attn_k.bias", {c.kv_dim()}, true);
      layer.bv = bind.required(p + "attn_v.bias", {c.kv_dim()}, true);
    } else {
      // Biases are all-or-nothing: one found only in a later layer would otherwise be ignored.
      for (const char* bias : {"attn_q.bias", "attn_k.bias", "attn_v.bias"}) {
        if (file.find_tensor(p + bias) != nullptr) {
          throw_error(StatusCode::kFormat, file.path(), ": tensor '", p, bias,
                      "' is present but layer 0 has no attention biases");
        }
      }
    }
    layer.ffn_norm = bind.required(p + "ffn_norm.weight", {c.dim}, true);
    layer.w_gate = bind.required(p + "ffn_gate.weight", {c.ffn_dim, c.dim}, false);
    layer.w_up = bind.required(p + "ffn_up.weight", {c.ffn_dim, c.dim}, false);
    layer.w_down = bind.required(p + "ffn_down.weight", {c.dim, c.ffn_dim}, false);
    w.layers.push_back(std::move(layer));
  }
  return w;
}

int64_t ModelWeights::total_bytes() const {
  int64_t total = token_embd.nbytes() + output_norm.nbytes() + (tied_output ? 0 : output.nbytes());
  for (const auto& l : layers) {
    for (const Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv,
                            &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) {
      if (t->defined()) total += t->nbytes();
    }
  }
  return total;
}

}  // namespace llmos
