#include "backend/cpu/cpu_matmul.h"

#include <algorithm>

#include "core/error.h"
#include "core/hash.h"
#include "kernels/cpu/matmul_kquant.h"

namespace llmos {
namespace {

namespace kc = kernels::cpu;

void check(StatusCode status, const char* what) {
  if (status != StatusCode::kOk) {
    throw_error(StatusCode::kInternal, "CPU matmul kernel ", what, " failed: ",
                status_code_name(status));
  }
}

}  // namespace

// Weights are keyed by address; a model freed and another loaded at the same address must not
// reuse the old copy, so a sample of the bytes (start, middle, end of the matrix) is compared.
uint64_t CpuMatmul::sample_bytes(const Tensor& weight) {
  const auto* base = static_cast<const unsigned char*>(weight.data());
  const size_t total = static_cast<size_t>(weight.stride_bytes(0) * (weight.dim(0) - 1)) +
                       static_cast<size_t>(dtype_row_bytes(weight.dtype(), weight.dim(1)));
  const size_t take = std::min<size_t>(total, 64);
  uint64_t h = kFnv1aOffset;
  for (size_t at : {size_t{0}, (total - take) / 2, total - take}) h = fnv1a(h, base + at, take);
  return h;
}

const CpuMatmul::Prepared& CpuMatmul::prepare(const Tensor& weight) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t sample = sample_bytes(weight);
  auto it = prepared_.find(weight.data());
  if (it != prepared_.end() && it->second->n == weight.dim(0) && it->second->k == weight.dim(1) &&
      it->second->dtype == weight.dtype() && it->second->sample == sample) {
    return *it->second;
  }
  auto p = std::make_unique<Prepared>();
  p->sample = sample;
  p->dtype = weight.dtype();
  p->n = weight.dim(0);
  p->k = weight.dim(1);
  if (kc::kquant_weight_supported(p->dtype) && kc::kquant_isa_usable(isa_)) {
    p->kquant = true;
    p->packed = HostBuffer(kc::kquant_packed_bytes(p->dtype, p->n, p->k));
    const int64_t panels = kc::kquant_panel_count(p->n);
    const auto* w = weight.data();
    const int64_t row_bytes = weight.stride_bytes(0);
    pool_.parallel_for(panels, 16, [&](int, int64_t begin, int64_t end) {
      check(kc::kquant_pack(p->dtype, w, row_bytes, p->n, p->k, p->packed.data(), begin, end),
            "kquant_pack");
    });
  } else {
    p->generic = kc::pack_weight(isa_, p->dtype, weight.data(), p->n, p->k, weight.stride_bytes(0));
  }
  const Prepared& out = *p;
  prepared_[weight.data()] = std::move(p);
  return out;
}

size_t CpuMatmul::packed_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t total = 0;
  for (const auto& [ptr, p] : prepared_) total += p->kquant ? p->packed.size() : p->generic.owned_bytes;
  return total;
}

void CpuMatmul::run(const Tensor& weight, const Tensor* bias, const Tensor& x, Tensor& y) {
  const Prepared& w = prepare(weight);
  const int64_t m = x.dim(0);
  const int64_t n = w.n;
  const float* xp = x.data_as<const float>();
  const int64_t x_stride = row_stride_floats(x);
  float* yp = y.data_as<float>();
  const int64_t y_stride = row_stride_floats(y);
  const float* bp = bias ? bias->data_as<const float>() : nullptr;
  const int threads = pool_.num_threads();

  // Phase 1: activations, rows split over the pool.
  const size_t act_bytes =
      w.kquant ? kc::kquant_activation_bytes(m, w.k) : kc::activation_bytes(w.generic, m);
  if (act_bytes > act_.size()) act_ = HostBuffer(std::max(act_bytes, act_.size() * 2));
  void* act = act_bytes > 0 ? act_.data() : nullptr;
  if (act_bytes > 0) {
    pool_.parallel_for(m, 4, [&](int, int64_t begin, int64_t end) {
      if (w.kquant) {
        check(kc::kquant_quantize_activations(isa_, xp, x_stride, begin, end, w.k, act),
              "kquant_quantize_activations");
      } else {
        check(kc::quantize_activations(w.generic, xp, x_stride, begin, end, act),
              "quantize_activations");
      }
    });
  }

  // Phase 2: output columns in whole kernel groups (panels), split over the pool.
  const int64_t granule = w.kquant ? kc::kKquantPanel : kc::column_granule(w.generic);
  const int64_t groups = (n + granule - 1) / granule;
  // Enough columns per part that waking a thread pays: ~64K weight elements each.
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, w.k * granule));
  const size_t scratch = w.kquant ? 0 : kc::scratch_floats(w.generic);
  if (scratch > 0) {
    scratch_.resize(static_cast<size_t>(threads));
    for (auto& s : scratch_) {
      if (s.size() < scratch) s.resize(scratch);
    }
  }
  pool_.parallel_for(groups, grain, [&](int thread, int64_t begin, int64_t end) {
    const int64_t n_begin = begin * granule;
    const int64_t n_end = std::min(n, end * granule);
    if (w.kquant) {
      check(kc::kquant_matmul_packed_columns(isa_, w.dtype, w.packed.data(), n, w.k, bp, act, m,
                                             yp, y_stride, n_begin, n_end),
            "kquant_matmul_packed_columns");
    } else {
      kc::MatmulArgs a;
      a.weight = &w.generic;
      a.bias = bp;
      a.x = xp;
      a.x_stride = x_stride;
      a.act = act;
      a.y = yp;
      a.y_stride = y_stride;
      a.m = m;
      a.scratch = scratch > 0 ? scratch_[static_cast<size_t>(thread)].data() : nullptr;
      check(kc::matmul_columns(a, n_begin, n_end), "matmul_columns");
    }
  });
}

}  // namespace llmos
