#include "backend/cpu/cpu_backend.h"

#include "backend/kernel_params.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/cpu/elementwise_cpu.h"
#include "kernels/cpu/rope_cpu.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "kv/kv_cache.h"
#include "model/batch.h"
#include "quant/quant.h"

namespace llmos {
namespace {

// Kernels report a status instead of throwing; after the front end's checks a failure here
// means llmos itself is inconsistent.
void check_kernel(StatusCode status, const char* kernel) {
  if (status != StatusCode::kOk) {
    throw_error(StatusCode::kInternal, "kernel ", kernel, " failed: ", status_code_name(status));
  }
}

}  // namespace

CpuBackend::CpuBackend(int num_threads, bool reference_kernels)
    : pool_(num_threads),
      reference_(reference_kernels),
      isa_(kernels::cpu::active_isa()),
      matmul_(pool_, isa_),
      f32_scratch_(static_cast<size_t>(pool_.num_threads())),
      f64_scratch_(static_cast<size_t>(pool_.num_threads())) {}

void CpuBackend::reserve_scratch(size_t f32_count, size_t f64_count) {
  // Called before a parallel section, on the calling thread only.
  for (auto& s : f32_scratch_) {
    if (s.size() < f32_count) s.resize(f32_count);
  }
  for (auto& s : f64_scratch_) {
    if (s.size() < f64_count) s.resize(f64_count);
  }
}

float* CpuBackend::f32_scratch(int thread, size_t count) {
  LLMOS_ASSERT(f32_scratch_[static_cast<size_t>(thread)].size() >= count);
  return f32_scratch_[static_cast<size_t>(thread)].data();
}

double* CpuBackend::f64_scratch(int thread, size_t count) {
  LLMOS_ASSERT(f64_scratch_[static_cast<size_t>(thread)].size() >= count);
  return f64_scratch_[static_cast<size_t>(thread)].data();
}

std::string CpuBackend::name() const {
  const std::string kernels =
      reference_ ? "reference kernels" : std::string(kernels::cpu::isa_name(isa_)) + " kernels";
  return "cpu (" + kernels + ", " + std::to_string(pool_.num_threads()) + " threads)";
}

Tensor CpuBackend::alloc(const std::vector<int64_t>& shape, DType dtype) { return Tensor::empty(shape, dtype); }

Tensor CpuBackend::upload(const Tensor& host) {
  LLMOS_CHECK_ARG(host.device().is_cpu(), "upload: tensor is not on the host");
  return host;
}

Tensor CpuBackend::download(const Tensor& tensor) { return tensor; }

void CpuBackend::embed_impl(const Tensor& table, std::span<const int32_t> tokens, Tensor& out) {
  const int64_t dim = table.dim(1);
  pool_.parallel_for(static_cast<int64_t>(tokens.size()), 16, [&](int, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      dequantize_row(table.dtype(), table.row(tokens[i]), static_cast<float*>(out.row(i)), dim);
    }
  });
}

void CpuBackend::matmul_impl(const Tensor& weight, const Tensor* bias, const Tensor& x, Tensor& y) {
  if (!reference_) {
    matmul_.run(weight, bias, x, y);
    return;
  }
  kernels::MatmulParams p;
  p.weight = weight.data();
  p.weight_dtype = weight.dtype();
  p.weight_row_bytes = weight.stride_bytes(0);
  p.bias = bias ? bias->data_as<const float>() : nullptr;
  p.x = x.data_as<const float>();
  p.x_stride = row_stride_floats(x);
  p.y = y.data_as<float>();
  p.y_stride = row_stride_floats(y);
  p.m = x.dim(0);
  p.n = weight.dim(0);
  p.k = weight.dim(1);
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(p.k, 1));
  reserve_scratch(static_cast<size_t>(p.k), 0);
  pool_.parallel_for(p.n, grain, [&](int thread, int64_t begin, int64_t end) {
    float* scratch = f32_scratch(thread, static_cast<size_t>(p.k));
    check_kernel(kernels::matmul_ref(p, begin, end, scratch), "matmul_ref");
  });
}

void CpuBackend::rms_norm_impl(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
  const kernels::RmsNormParams p = rms_norm_params(x, weight, eps, y);
  if (!reference_) {
    pool_.parallel_for(p.rows, 4, [&](int, int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        kernels::cpu::rms_norm_row_cpu(isa_, p.x + r * p.x_stride, p.weight, p.y + r * p.y_stride,
                                       p.dim, eps);
      }
    });
    return;
  }
  pool_.parallel_for(p.rows, 8, [&](int, int64_t begin, int64_t end) {
    check_kernel(kernels::rms_norm_ref(p, begin, end), "rms_norm_ref");
  });
}

void CpuBackend::rope_impl(Tensor& x, int heads, int head_dim, const RopeSpec& rope,
                           std::span<const int32_t> positions) {
  const kernels::RopeParams p = rope_params(x, heads, head_dim, rope, positions);
  if (!reference_) {
    const double* table = rope_table(rope, positions);
    pool_.parallel_for(p.rows, 4, [&](int, int64_t begin, int64_t end) {
      check_kernel(kernels::cpu::rope_rows_cpu(p, table, begin, end), "rope_rows_cpu");
    });
    return;
  }
  pool_.parallel_for(p.rows, 4, [&](int, int64_t begin, int64_t end) {
    check_kernel(kernels::rope_ref(p, begin, end), "rope_ref");
  });
}

const double* CpuBackend::rope_table(const RopeSpec& rope, std::span<const int32_t> positions) {
  RopeTable& t = rope_table_;
  const bool same = t.attn_factor == rope.attn_factor && t.inv_freq == rope.inv_freq &&
                    std::equal(positions.begin(), positions.end(), t.positions.begin(),
                               t.positions.end());
  if (same) return t.cos_sin.data();
  t.positions.assign(positions.begin(), positions.end());
  t.inv_freq = rope.inv_freq;
  t.attn_factor = rope.attn_factor;
  t.cos_sin.resize(positions.size() * static_cast<size_t>(rope.rot_dim));
  kernels::cpu::KvRope kr;
  kr.positions = t.positions.data();
  kr.inv_freq = t.inv_freq.data();
  kr.rot_dim = rope.rot_dim;
  kr.attn_factor = rope.attn_factor;
  pool_.parallel_for(static_cast<int64_t>(positions.size()), 16, [&](int, int64_t begin, int64_t end) {
    check_kernel(kernels::cpu::rope_cos_sin_table(kr, begin, end, t.cos_sin.data()),
                 "rope_cos_sin_table");
  });
  return t.cos_sin.data();
}

void CpuBackend::write_kv_impl(KvCache& cache, int layer, const Tensor& k, const Tensor& v,
                               std::span<const int64_t> slots) {
  const kernels::WriteKvParams p = write_kv_params(cache, layer, k, v, slots);
  if (reference_) {
    check_kernel(kernels::write_kv_ref(p), "write_kv_ref");
    return;
  }
  pool_.parallel_for(p.num_tokens, 16, [&](int, int64_t begin, int64_t end) {
    check_kernel(kernels::cpu::write_kv_cpu(isa_, p, begin, end), "write_kv_cpu");
  });
}

void CpuBackend::attention_impl(const Tensor& q, const KvCache& cache, int layer, const Batch& batch,
                                int num_heads, float scale, Tensor& out) {
  const KvCacheSpec& spec = cache.spec();
  const kernels::PagedAttentionParams p =
      paged_attention_params(q, cache, layer, batch, num_heads, scale, out);
  if (kernels::validate_paged_attention(p, spec.num_blocks) != StatusCode::kOk) {
    throw_error(StatusCode::kInvalidArgument, "attention: inconsistent batch description");
  }
  if (!reference_) {
    attention_fast(p, out);
    return;
  }
  int32_t max_kv = 0;
  for (int32_t len : batch.kv_len) max_kv = std::max(max_kv, len);
  const int64_t items = batch.num_tokens() * num_heads;
  const size_t scratch_count = static_cast<size_t>(std::max(max_kv, 1));
  reserve_scratch(0, scratch_count);
  pool_.parallel_for(items, 1, [&](int thread, int64_t begin, int64_t end) {
    check_kernel(kernels::paged_attention_ref(p, begin, end, f64_scratch(thread, scratch_count)),
                 "paged_attention_ref");
  });
}

void CpuBackend::attention_fast(const kernels::PagedAttentionParams& p, Tensor& out) {
  (void)out;
  // The plan depends only on the batch; its vectors keep their capacity between calls.
  check_kernel(kernels::cpu::attention_plan(p, pool_.num_threads(), &attention_plan_),
               "attention_plan");
  const size_t bytes = kernels::cpu::attention_workspace_bytes(attention_plan_);
  if (bytes > attention_workspace_.size()) {
    attention_workspace_ = HostBuffer(std::max(bytes, attention_workspace_.size() * 2));
  }
  check_kernel(kernels::cpu::attention_forward(pool_, isa_, p, attention_plan_,
                                               attention_workspace_.data()),
               "attention_forward");
}

void CpuBackend::swiglu_impl(const Tensor& gate, const Tensor& up, Tensor& out) {
  const int64_t cols = gate.dim(1);
  if (!reference_) {
    pool_.parallel_for(gate.dim(0), 1, [&](int, int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        kernels::cpu::swiglu_cpu(isa_, static_cast<const float*>(gate.row(r)),
                                 static_cast<const float*>(up.row(r)), static_cast<float*>(out.row(r)),
                                 cols);
      }
    });
    return;
  }
  pool_.parallel_for(gate.dim(0), 1, [&](int, int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      check_kernel(kernels::swiglu_ref(static_cast<const float*>(gate.row(r)),
                                       static_cast<const float*>(up.row(r)),
                                       static_cast<float*>(out.row(r)), 0, cols),
                   "swiglu_ref");
    }
  });
}

void CpuBackend::add_impl(Tensor& y, const Tensor& x) {
  const int64_t cols = y.dim(1);
  if (!reference_) {
    for (int64_t r = 0; r < y.dim(0); ++r) {
      kernels::cpu::add_cpu(isa_, static_cast<float*>(y.row(r)), static_cast<const float*>(x.row(r)),
                            cols);
    }
    return;
  }
  for (int64_t r = 0; r < y.dim(0); ++r) {
    check_kernel(kernels::add_inplace_ref(static_cast<float*>(y.row(r)),
                                          static_cast<const float*>(x.row(r)), 0, cols),
                 "add_inplace_ref");
  }
}

void CpuBackend::gather_rows_impl(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) {
  const size_t bytes = static_cast<size_t>(src.dim(1)) * sizeof(float);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(dst.row(static_cast<int64_t>(i)), src.row(rows[i]), bytes);
  }
}

void CpuBackend::fused_matmul_impl(const FusedMatmul& op) {
  if (reference_ || op.outputs.size() > 4) {
    Backend::fused_matmul_impl(op);
    return;
  }
  const Tensor* input = op.x;
  CpuMatmul::RowHook before;
  if (op.norm_weight != nullptr) {
    input = op.h;
    const float* x = op.x->data_as<const float>();
    const int64_t x_stride = row_stride_floats(*op.x);
    float* h = op.h->data_as<float>();
    const int64_t h_stride = row_stride_floats(*op.h);
    const float* weight = op.norm_weight->data_as<const float>();
    const int64_t dim = op.x->dim(1);
    const float eps = op.norm_eps;
    before = [=, this](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        kernels::cpu::rms_norm_row_cpu(isa_, x + r * x_stride, weight, h + r * h_stride, dim, eps);
      }
    };
  }
  CpuMatmulJob jobs[4];
  for (size_t j = 0; j < op.outputs.size(); ++j) {
    jobs[j] = CpuMatmulJob{op.outputs[j].weight, op.outputs[j].bias, op.outputs[j].y};
  }
  const std::span<const CpuMatmulJob> job_span(jobs, op.outputs.size());
  const int64_t rows = input->dim(0);
  CpuMatmul::ColumnHook after;
  bool paired = false;
  if (op.epilogue == MatmulEpilogue::kSwiglu) {
    paired = matmul_.can_pair(*op.outputs[0].weight, *op.outputs[1].weight);
    if (!paired) {  // different formats: the matmuls together, then SwiGLU over whole rows
      matmul_.run_many(job_span, *input, before, nullptr, false);
      swiglu_impl(*op.outputs[0].y, *op.outputs[1].y, *op.outputs[0].y);
      return;
    }
    Tensor& gate = *op.outputs[0].y;
    const Tensor& up = *op.outputs[1].y;
    after = [&](int, int64_t begin, int64_t end) {
      for (int64_t r = 0; r < rows; ++r) {
        float* g = static_cast<float*>(gate.row(r)) + begin;
        kernels::cpu::swiglu_cpu(isa_, g, static_cast<const float*>(up.row(r)) + begin, g,
                                 end - begin);
      }
    };
  } else if (op.epilogue == MatmulEpilogue::kAddTo) {
    Tensor& residual = *op.residual;
    const Tensor& y = *op.outputs[0].y;
    after = [&](int, int64_t begin, int64_t end) {
      for (int64_t r = 0; r < rows; ++r) {
        kernels::cpu::add_cpu(isa_, static_cast<float*>(residual.row(r)) + begin,
                              static_cast<const float*>(y.row(r)) + begin, end - begin);
      }
    };
  }
  matmul_.run_many(job_span, *input, before, after, paired);
}

void CpuBackend::rope_write_kv_impl(KvCache& cache, int layer, Tensor& q, int num_heads, Tensor& k,
                                    const Tensor& v, const RopeSpec& rope,
                                    std::span<const int32_t> positions,
                                    std::span<const int64_t> slots) {
  if (reference_) {
    Backend::rope_write_kv_impl(cache, layer, q, num_heads, k, v, rope, positions, slots);
    return;
  }
  const double* table = rope_table(rope, positions);
  const kernels::RopeParams qp = rope_params(q, num_heads, cache.spec().head_dim, rope, positions);
  const kernels::WriteKvParams wp = write_kv_params(cache, layer, k, v, slots);
  kernels::cpu::KvRope kr;
  kr.positions = positions.data();
  kr.inv_freq = rope.inv_freq.data();
  kr.rot_dim = rope.rot_dim;
  kr.attn_factor = rope.attn_factor;
  kr.neox = rope.neox;
  kr.cos_sin = table;
  pool_.parallel_for(qp.rows, 4, [&](int, int64_t begin, int64_t end) {
    check_kernel(kernels::cpu::rope_rows_cpu(qp, table, begin, end), "rope_rows_cpu");
    check_kernel(kernels::cpu::write_kv_rope_cpu(isa_, wp, kr, begin, end), "write_kv_rope_cpu");
  });
}

}  // namespace llmos
