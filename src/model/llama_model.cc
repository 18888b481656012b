#include "model/llama_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "model/rope_table.h"

namespace llmos {

std::unique_ptr<LlamaModel> LlamaModel::load(const std::string& path, std::shared_ptr<Backend> backend) {
  return from_file(gguf::File::open(path), std::move(backend));
}

std::unique_ptr<LlamaModel> LlamaModel::from_file(gguf::File file, std::shared_ptr<Backend> backend) {
  LLMOS_CHECK_ARG(backend != nullptr, "LlamaModel: backend is null");
  return std::unique_ptr<LlamaModel>(new LlamaModel(std::move(file), std::move(backend)));
}

LlamaModel::LlamaModel(gguf::File file, std::shared_ptr<Backend> backend)
    : file_(std::move(file)), backend_(std::move(backend)) {
  config_ = ModelConfig::from_gguf(file_);
  weights_ = ModelWeights::from_gguf(file_, config_, *backend_);
  try {
    rope_ = make_rope_spec(config_, weights_.rope_freqs);
  } catch (const Error& e) {
    throw_error(StatusCode::kFormat, file_.path(), ": ", e.message());
  }
  tokenizer_ = Tokenizer::from_gguf(file_);
  if (static_cast<int64_t>(tokenizer_->vocab().size()) != config_.vocab_size) {
    throw_error(StatusCode::kFormat, file_.path(), ": tokenizer has ", tokenizer_->vocab().size(),
                " tokens but token_embd.weight has ", config_.vocab_size, " rows");
  }
}

KvCacheSpec LlamaModel::kv_cache_spec(int64_t num_blocks, int block_size, DType dtype) const {
  KvCacheSpec spec;
  spec.num_layers = static_cast<int>(config_.num_layers);
  spec.num_kv_heads = static_cast<int>(config_.num_kv_heads);
  spec.head_dim = static_cast<int>(config_.head_dim);
  spec.block_size = block_size;
  spec.num_blocks = num_blocks;
  spec.dtype = dtype;
  return spec;
}

void LlamaModel::ensure_workspace(int64_t tokens) {
  if (tokens <= ws_.capacity) return;
  Backend& b = *backend_;
  const int64_t n = std::max<int64_t>(tokens, 16);
  ws_.x = b.alloc({n, config_.dim}, DType::kF32);
  ws_.h = b.alloc({n, config_.dim}, DType::kF32);
  ws_.q = b.alloc({n, config_.q_dim()}, DType::kF32);
  ws_.k = b.alloc({n, config_.kv_dim()}, DType::kF32);
  ws_.v = b.alloc({n, config_.kv_dim()}, DType::kF32);
  ws_.attn = b.alloc({n, config_.q_dim()}, DType::kF32);
  ws_.proj = b.alloc({n, config_.dim}, DType::kF32);
  ws_.gate = b.alloc({n, config_.ffn_dim}, DType::kF32);
  ws_.up = b.alloc({n, config_.ffn_dim}, DType::kF32);
  ws_.capacity = n;
}

void LlamaModel::forward(const Batch& batch, KvCache& cache, Tensor& logits) {
  const KvCacheSpec& spec = cache.spec();
  LLMOS_CHECK_ARG(spec.num_layers == config_.num_layers && spec.num_kv_heads == config_.num_kv_heads &&
                      spec.head_dim == config_.head_dim,
                  "forward: KV cache shape does not match the model");
  batch.validate(spec.block_size, spec.num_blocks, static_cast<int32_t>(config_.vocab_size));
  const int64_t t = batch.num_tokens();
  const int64_t r = static_cast<int64_t>(batch.logits_rows.size());
  LLMOS_CHECK_ARG(logits.defined() && logits.dtype() == DType::kF32 && logits.ndim() == 2 &&
                      logits.dim(0) == r && logits.dim(1) == config_.vocab_size,
                  "forward: logits must be f32 [", r, ", ", config_.vocab_size, "]");
  if (t == 0) return;
  ensure_workspace(t);
  Backend& b = *backend_;
  Tensor x = ws_.x.slice_rows(0, t), h = ws_.h.slice_rows(0, t);
  Tensor q = ws_.q.slice_rows(0, t), k = ws_.k.slice_rows(0, t), v = ws_.v.slice_rows(0, t);
  Tensor attn = ws_.attn.slice_rows(0, t), proj = ws_.proj.slice_rows(0, t);
  Tensor gate = ws_.gate.slice_rows(0, t), up = ws_.up.slice_rows(0, t);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(config_.head_dim)));
  const int heads = static_cast<int>(config_.num_heads);

  b.embed(weights_.token_embd, batch.tokens, x);
  for (int layer = 0; layer < static_cast<int>(config_.num_layers); ++layer) {
    const LayerWeights& w = weights_.layers[static_cast<size_t>(layer)];
    // Attention block: x += Wo · attention(rope(Wq h), rope(Wk h), Wv h), h = rms_norm(x).
    const MatmulOutput qkv[] = {{&w.wq, w.bq.defined() ? &w.bq : nullptr, &q},
                                {&w.wk, w.bk.defined() ? &w.bk : nullptr, &k},
                                {&w.wv, w.bv.defined() ? &w.bv : nullptr, &v}};
    b.fused_matmul({.x = &x, .norm_weight = &w.attn_norm, .norm_eps = config_.norm_eps, .h = &h,
                    .outputs = qkv});
    b.rope_write_kv(cache, layer, q, heads, k, v, rope_, batch.positions, batch.slots);
    b.attention(q, cache, layer, batch, heads, scale, attn);
    const MatmulOutput wo[] = {{&w.wo, nullptr, &proj}};
    b.fused_matmul({.x = &attn, .outputs = wo, .epilogue = MatmulEpilogue::kAddTo, .residual = &x});
    // Feed-forward block: x += W_down · (silu(W_gate h) * W_up h), h = rms_norm(x).
    const MatmulOutput gate_up[] = {{&w.w_gate, nullptr, &gate}, {&w.w_up, nullptr, &up}};
    b.fused_matmul({.x = &x, .norm_weight = &w.ffn_norm, .norm_eps = config_.norm_eps, .h = &h,
                    .outputs = gate_up, .epilogue = MatmulEpilogue::kSwiglu});
    const MatmulOutput down[] = {{&w.w_down, nullptr, &proj}};
    b.fused_matmul({.x = &gate, .outputs = down, .epilogue = MatmulEpilogue::kAddTo, .residual = &x});
  }
  if (r == 0) return;
  Tensor rows = ws_.h.slice_rows(0, r);
  b.gather_rows(x, batch.logits_rows, rows);
  b.rms_norm(rows, weights_.output_norm, config_.norm_eps, rows);
  if (b.device().is_cpu()) {
    b.matmul(weights_.output, nullptr, rows, logits);
  } else {
    Tensor device_logits = b.alloc({r, config_.vocab_size}, DType::kF32);
    b.matmul(weights_.output, nullptr, rows, device_logits);
    Tensor host = b.download(device_logits);
    std::memcpy(logits.data(), host.data(), static_cast<size_t>(host.nbytes()));
  }
}

}  // namespace llmos
