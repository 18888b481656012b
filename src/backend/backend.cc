// Front ends of the backend ops: every shape, dtype and device check lives here, once, so the
// device implementations can assume well-formed operands.
#include "backend/backend.h"

#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_probe.h"
#if LLMOS_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/batch.h"

namespace llmos {
namespace {

void check_activation(const Tensor& t, const char* op, const char* operand) {
  LLMOS_CHECK_ARG(t.defined(), op, ": ", operand, " is undefined");
  LLMOS_CHECK_ARG(t.dtype() == DType::kF32 && t.ndim() == 2, op, ": ", operand,
                  " must be a 2-D f32 tensor, got ", t.describe());
  LLMOS_CHECK_ARG(t.stride_bytes(1) == 4 && (t.dim(0) <= 1 || t.stride_bytes(0) % 4 == 0), op, ": ",
                  operand, " rows must be contiguous");
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* op) {
  LLMOS_CHECK_ARG(a.shape() == b.shape(), op, ": shape mismatch ", a.describe(), " vs ", b.describe());
}

// The rotation a RopeSpec describes fits heads of head_dim.
void check_rope_spec(const RopeSpec& rope, int head_dim, const char* op) {
  LLMOS_CHECK_ARG(rope.rot_dim > 0 && rope.rot_dim % 2 == 0 && rope.rot_dim <= head_dim, op,
                  ": rotated dimension count ", rope.rot_dim, " must be even and <= head_dim ",
                  head_dim);
  LLMOS_CHECK_ARG(static_cast<int>(rope.inv_freq.size()) == rope.rot_dim / 2, op, ": expected ",
                  rope.rot_dim / 2, " frequencies, got ", rope.inv_freq.size());
}

// K and V rows of `layer` fit the cache, one slot per row, every slot inside the cache.
void check_kv_write(const KvCacheSpec& spec, int layer, const Tensor& k, const Tensor& v,
                    std::span<const int64_t> slots, const char* op) {
  LLMOS_CHECK_ARG(layer >= 0 && layer < spec.num_layers, op, ": layer ", layer, " out of range");
  check_activation(k, op, "k");
  check_activation(v, op, "v");
  check_same_shape(k, v, op);
  LLMOS_CHECK_ARG(k.dim(1) == static_cast<int64_t>(spec.num_kv_heads) * spec.head_dim, op, ": k ",
                  k.describe(), " does not match ", spec.num_kv_heads, " KV heads of ",
                  spec.head_dim);
  LLMOS_CHECK_ARG(static_cast<int64_t>(slots.size()) == k.dim(0), op, ": ", slots.size(),
                  " slots for ", k.dim(0), " rows");
  for (int64_t s : slots) {
    LLMOS_CHECK_ARG(s >= 0 && s / spec.block_size < spec.num_blocks, op, ": slot ", s,
                    " is outside the cache");
  }
}

}  // namespace

Tensor Backend::alloc_zeros(const std::vector<int64_t>& shape, DType dtype) {
  Tensor t = alloc(shape, dtype);
  if (device().is_cpu()) std::memset(t.data(), 0, static_cast<size_t>(t.nbytes()));
  return t;
}

void Backend::embed(const Tensor& table, std::span<const int32_t> tokens, Tensor& out) {
  LLMOS_CHECK_ARG(table.ndim() == 2, "embed: table must be 2-D, got ", table.describe());
  check_activation(out, "embed", "out");
  LLMOS_CHECK_ARG(out.dim(0) == static_cast<int64_t>(tokens.size()) && out.dim(1) == table.dim(1),
                  "embed: out ", out.describe(), " does not fit ", tokens.size(), " rows of ",
                  table.dim(1));
  for (size_t i = 0; i < tokens.size(); ++i) {
    LLMOS_CHECK_ARG(tokens[i] >= 0 && tokens[i] < table.dim(0), "embed: token id ", tokens[i],
                    " is outside the vocabulary of ", table.dim(0));
  }
  embed_impl(table, tokens, out);
}

void Backend::matmul(const Tensor& weight, const Tensor* bias, const Tensor& x, Tensor& y) {
  LLMOS_CHECK_ARG(weight.ndim() == 2, "matmul: weight must be 2-D, got ", weight.describe());
  check_activation(x, "matmul", "x");
  check_activation(y, "matmul", "y");
  LLMOS_CHECK_ARG(x.dim(1) == weight.dim(1), "matmul: x ", x.describe(),
                  " has the wrong inner dimension for weight ", weight.describe());
  LLMOS_CHECK_ARG(y.dim(0) == x.dim(0) && y.dim(1) == weight.dim(0), "matmul: y ", y.describe(),
                  " must be [", x.dim(0), ", ", weight.dim(0), "]");
  if (bias != nullptr) {
    LLMOS_CHECK_ARG(bias->dtype() == DType::kF32 && bias->numel() == weight.dim(0),
                    "matmul: bias must be f32 [", weight.dim(0), "], got ", bias->describe());
  }
  matmul_impl(weight, bias, x, y);
}

void Backend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
  check_activation(x, "rms_norm", "x");
  check_activation(y, "rms_norm", "y");
  check_same_shape(x, y, "rms_norm");
  LLMOS_CHECK_ARG(weight.dtype() == DType::kF32 && weight.numel() == x.dim(1),
                  "rms_norm: weight must be f32 [", x.dim(1), "], got ", weight.describe());
  LLMOS_CHECK_ARG(eps > 0.0f, "rms_norm: eps must be positive, got ", eps);
  rms_norm_impl(x, weight, eps, y);
}

void Backend::rope(Tensor& x, int heads, int head_dim, const RopeSpec& rope,
                   std::span<const int32_t> positions) {
  check_activation(x, "rope", "x");
  LLMOS_CHECK_ARG(heads > 0 && head_dim > 0 && x.dim(1) == static_cast<int64_t>(heads) * head_dim,
                  "rope: x ", x.describe(), " is not [T, ", heads, " * ", head_dim, "]");
  check_rope_spec(rope, head_dim, "rope");
  LLMOS_CHECK_ARG(static_cast<int64_t>(positions.size()) == x.dim(0), "rope: ", positions.size(),
                  " positions for ", x.dim(0), " rows");
  rope_impl(x, heads, head_dim, rope, positions);
}

void Backend::write_kv(KvCache& cache, int layer, const Tensor& k, const Tensor& v,
                       std::span<const int64_t> slots) {
  check_kv_write(cache.spec(), layer, k, v, slots, "write_kv");
  write_kv_impl(cache, layer, k, v, slots);
}

void Backend::attention(const Tensor& q, const KvCache& cache, int layer, const Batch& batch,
                        int num_heads, float scale, Tensor& out) {
  const KvCacheSpec& spec = cache.spec();
  LLMOS_CHECK_ARG(layer >= 0 && layer < spec.num_layers, "attention: layer ", layer, " out of range");
  check_activation(q, "attention", "q");
  check_activation(out, "attention", "out");
  check_same_shape(q, out, "attention");
  LLMOS_CHECK_ARG(num_heads > 0 && num_heads % spec.num_kv_heads == 0, "attention: ", num_heads,
                  " query heads is not a multiple of ", spec.num_kv_heads, " KV heads");
  LLMOS_CHECK_ARG(q.dim(1) == static_cast<int64_t>(num_heads) * spec.head_dim, "attention: q ",
                  q.describe(), " is not [T, ", num_heads, " * ", spec.head_dim, "]");
  LLMOS_CHECK_ARG(q.dim(0) == batch.num_tokens(), "attention: q has ", q.dim(0),
                  " rows for a batch of ", batch.num_tokens(), " tokens");
  attention_impl(q, cache, layer, batch, num_heads, scale, out);
}

void Backend::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  check_activation(gate, "swiglu", "gate");
  check_activation(up, "swiglu", "up");
  check_activation(out, "swiglu", "out");
  check_same_shape(gate, up, "swiglu");
  check_same_shape(gate, out, "swiglu");
  swiglu_impl(gate, up, out);
}

void Backend::add(Tensor& y, const Tensor& x) {
  check_activation(y, "add", "y");
  check_activation(x, "add", "x");
  check_same_shape(y, x, "add");
  add_impl(y, x);
}

void Backend::fused_matmul(const FusedMatmul& op) {
  LLMOS_CHECK_ARG(op.x != nullptr, "fused_matmul: x is null");
  check_activation(*op.x, "fused_matmul", "x");
  const Tensor* input = op.x;
  if (op.norm_weight != nullptr) {
    LLMOS_CHECK_ARG(op.h != nullptr, "fused_matmul: a norm needs an output tensor h");
    check_activation(*op.h, "fused_matmul", "h");
    check_same_shape(*op.x, *op.h, "fused_matmul");
    LLMOS_CHECK_ARG(op.h->data() != op.x->data(), "fused_matmul: h must not alias x");
    LLMOS_CHECK_ARG(op.norm_weight->dtype() == DType::kF32 && op.norm_weight->numel() == op.x->dim(1),
                    "fused_matmul: norm weight must be f32 [", op.x->dim(1), "], got ",
                    op.norm_weight->describe());
    LLMOS_CHECK_ARG(op.norm_eps > 0.0f, "fused_matmul: eps must be positive, got ", op.norm_eps);
    input = op.h;
  }
  LLMOS_CHECK_ARG(!op.outputs.empty(), "fused_matmul: no outputs");
  for (const MatmulOutput& out : op.outputs) {
    LLMOS_CHECK_ARG(out.weight != nullptr && out.y != nullptr, "fused_matmul: an output has a null weight or y");
    const Tensor& w = *out.weight;
    LLMOS_CHECK_ARG(w.ndim() == 2, "fused_matmul: weight must be 2-D, got ", w.describe());
    check_activation(*out.y, "fused_matmul", "y");
    LLMOS_CHECK_ARG(input->dim(1) == w.dim(1), "fused_matmul: input ", input->describe(),
                    " has the wrong inner dimension for weight ", w.describe());
    LLMOS_CHECK_ARG(out.y->dim(0) == input->dim(0) && out.y->dim(1) == w.dim(0), "fused_matmul: y ",
                    out.y->describe(), " must be [", input->dim(0), ", ", w.dim(0), "]");
    LLMOS_CHECK_ARG(out.y->data() != input->data() && out.y->data() != op.x->data(),
                    "fused_matmul: y must not alias the input");
    if (out.bias != nullptr) {
      LLMOS_CHECK_ARG(out.bias->dtype() == DType::kF32 && out.bias->numel() == w.dim(0),
                      "fused_matmul: bias must be f32 [", w.dim(0), "], got ", out.bias->describe());
    }
  }
  switch (op.epilogue) {
    case MatmulEpilogue::kNone:
      break;
    case MatmulEpilogue::kSwiglu:
      LLMOS_CHECK_ARG(op.outputs.size() == 2, "fused_matmul: SwiGLU needs two outputs (gate, up)");
      check_same_shape(*op.outputs[0].y, *op.outputs[1].y, "fused_matmul (SwiGLU)");
      break;
    case MatmulEpilogue::kAddTo:
      LLMOS_CHECK_ARG(op.outputs.size() == 1 && op.residual != nullptr,
                      "fused_matmul: the residual add needs one output and a residual");
      check_activation(*op.residual, "fused_matmul", "residual");
      check_same_shape(*op.outputs[0].y, *op.residual, "fused_matmul (residual)");
      LLMOS_CHECK_ARG(op.residual->data() != op.x->data() && op.residual->data() != input->data(),
                      "fused_matmul: the residual must not be the matmul's input");
      break;
  }
  fused_matmul_impl(op);
}

void Backend::fused_matmul_impl(const FusedMatmul& op) {
  const Tensor* input = op.x;
  if (op.norm_weight != nullptr) {
    rms_norm_impl(*op.x, *op.norm_weight, op.norm_eps, *op.h);
    input = op.h;
  }
  for (const MatmulOutput& out : op.outputs) matmul_impl(*out.weight, out.bias, *input, *out.y);
  if (op.epilogue == MatmulEpilogue::kSwiglu) {
    swiglu_impl(*op.outputs[0].y, *op.outputs[1].y, *op.outputs[0].y);
  } else if (op.epilogue == MatmulEpilogue::kAddTo) {
    add_impl(*op.residual, *op.outputs[0].y);
  }
}

void Backend::rope_write_kv(KvCache& cache, int layer, Tensor& q, int num_heads, Tensor& k,
                            const Tensor& v, const RopeSpec& rope,
                            std::span<const int32_t> positions, std::span<const int64_t> slots) {
  const KvCacheSpec& spec = cache.spec();
  // The checks of rope() on q and k and of write_kv(), once each.
  LLMOS_CHECK_ARG(positions.size() == slots.size(), "rope_write_kv: ", positions.size(),
                  " positions for ", slots.size(), " slots");
  check_activation(q, "rope_write_kv", "q");
  LLMOS_CHECK_ARG(q.dim(0) == k.dim(0) && num_heads > 0 &&
                      q.dim(1) == static_cast<int64_t>(num_heads) * spec.head_dim,
                  "rope_write_kv: q ", q.describe(), " is not [", k.dim(0), ", ", num_heads, " * ",
                  spec.head_dim, "]");
  check_rope_spec(rope, spec.head_dim, "rope_write_kv");
  check_kv_write(spec, layer, k, v, slots, "rope_write_kv");
  rope_write_kv_impl(cache, layer, q, num_heads, k, v, rope, positions, slots);
}

void Backend::rope_write_kv_impl(KvCache& cache, int layer, Tensor& q, int num_heads, Tensor& k,
                                 const Tensor& v, const RopeSpec& rope,
                                 std::span<const int32_t> positions,
                                 std::span<const int64_t> slots) {
  const int head_dim = cache.spec().head_dim;
  rope_impl(q, num_heads, head_dim, rope, positions);
  rope_impl(k, cache.spec().num_kv_heads, head_dim, rope, positions);
  write_kv_impl(cache, layer, k, v, slots);
}

void Backend::gather_rows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) {
  check_activation(src, "gather_rows", "src");
  check_activation(dst, "gather_rows", "dst");
  LLMOS_CHECK_ARG(dst.dim(0) == static_cast<int64_t>(rows.size()) && dst.dim(1) == src.dim(1),
                  "gather_rows: dst ", dst.describe(), " does not fit ", rows.size(), " rows");
  for (int32_t r : rows) {
    LLMOS_CHECK_ARG(r >= 0 && r < src.dim(0), "gather_rows: row ", r, " out of range");
  }
  gather_rows_impl(src, rows, dst);
}

void Backend::copy_kv_block(KvCache&, int32_t, int32_t) {
  throw_error(StatusCode::kUnsupported, name(), ": KV block transfers in device memory are not implemented");
}

void Backend::read_kv_block(const KvCache&, int32_t, std::span<std::byte>) {
  throw_error(StatusCode::kUnsupported, name(), ": KV block transfers in device memory are not implemented");
}

void Backend::write_kv_block(KvCache&, int32_t, std::span<const std::byte>) {
  throw_error(StatusCode::kUnsupported, name(), ": KV block transfers in device memory are not implemented");
}

std::unique_ptr<Backend> create_backend(const BackendOptions& options) {
  if (options.device.is_cpu()) {
    return std::make_unique<CpuBackend>(options.num_threads, options.reference_kernels);
  }
  const CudaProbe probe = probe_cuda();
  if (!probe.compiled) throw_error(StatusCode::kUnsupported, "device ", device_name(options.device), ": ", probe.detail);
  if (options.device.index < 0 || options.device.index >= probe.device_count) {
    throw_error(StatusCode::kUnsupported, "device ", device_name(options.device), ": not available (",
                probe.detail, ")");
  }
#if LLMOS_HAVE_CUDA
  return std::make_unique<CudaBackend>(options.device.index);
#else
  throw_error(StatusCode::kInternal, "device ", device_name(options.device), ": CUDA probe without CUDA");
#endif
}

}  // namespace llmos
