#include "backend/cpu/cpu_matmul.h"

#include <algorithm>
#include <span>

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

int64_t CpuMatmul::granule(const Prepared& w) const {
  return w.kquant ? kc::kKquantPanel : kc::column_granule(w.generic);
}

bool CpuMatmul::can_pair(const Tensor& a, const Tensor& b) {
  const Prepared& pa = prepare(a);
  const Prepared& pb = prepare(b);
  return pa.dtype == pb.dtype && pa.n == pb.n && pa.k == pb.k && pa.kquant == pb.kquant &&
         granule(pa) == granule(pb);
}

void CpuMatmul::compute_columns(const Prepared& w, const Tensor* bias, const Tensor& x, Tensor& y,
                                const void* act, int thread, int64_t n_begin, int64_t n_end) {
  const float* bp = bias ? bias->data_as<const float>() : nullptr;
  float* yp = y.data_as<float>();
  const int64_t y_stride = row_stride_floats(y);
  if (w.kquant) {
    check(kc::kquant_matmul_packed_columns(isa_, w.dtype, w.packed.data(), w.n, w.k, bp, act,
                                           x.dim(0), yp, y_stride, n_begin, n_end),
          "kquant_matmul_packed_columns");
    return;
  }
  kc::MatmulArgs a;
  a.weight = &w.generic;
  a.bias = bp;
  a.x = x.data_as<const float>();
  a.x_stride = row_stride_floats(x);
  a.act = act;
  a.y = yp;
  a.y_stride = y_stride;
  a.m = x.dim(0);
  a.scratch = scratch_.empty() ? nullptr : scratch_[static_cast<size_t>(thread)].data();
  check(kc::matmul_columns(a, n_begin, n_end), "matmul_columns");
}

void CpuMatmul::run(const Tensor& weight, const Tensor* bias, const Tensor& x, Tensor& y) {
  const CpuMatmulJob job{&weight, bias, &y};
  run_many(std::span<const CpuMatmulJob>(&job, 1), x, nullptr, nullptr, false);
}

void CpuMatmul::run_many(std::span<const CpuMatmulJob> jobs, const Tensor& x, const RowHook& before,
                         const ColumnHook& after, bool paired) {
  constexpr size_t kMaxJobs = 4;
  LLMOS_ASSERT(!jobs.empty() && jobs.size() <= kMaxJobs && (!paired || jobs.size() == 2));
  const Prepared* w[kMaxJobs] = {};
  for (size_t j = 0; j < jobs.size(); ++j) w[j] = &prepare(*jobs[j].weight);
  const int64_t m = x.dim(0);
  const float* xp = x.data_as<const float>();
  const int64_t x_stride = row_stride_floats(x);
  const int threads = pool_.num_threads();

  // Activation formats: K-quants share one; the others' follow dtype, layout and ISA. A
  // weight uses the buffer of the first job with its format, so each format is quantized once.
  int format_of[kMaxJobs] = {};
  size_t first_job[kMaxJobs] = {};
  size_t format_bytes[kMaxJobs] = {};
  int num_formats = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    format_of[j] = -1;
    for (size_t i = 0; i < j; ++i) {
      const bool same_generic = w[i]->dtype == w[j]->dtype &&
                                w[i]->generic.layout == w[j]->generic.layout &&
                                w[i]->generic.isa == w[j]->generic.isa;
      if (w[i]->kquant == w[j]->kquant && (w[j]->kquant || same_generic)) {
        format_of[j] = format_of[i];
        break;
      }
    }
    if (format_of[j] < 0) {
      format_of[j] = num_formats;
      first_job[num_formats] = j;
      format_bytes[num_formats++] = w[j]->kquant ? kc::kquant_activation_bytes(m, w[j]->k)
                                                 : kc::activation_bytes(w[j]->generic, m);
    }
  }
  if (act_.size() < static_cast<size_t>(num_formats)) act_.resize(static_cast<size_t>(num_formats));
  bool any_act = false;
  for (int f = 0; f < num_formats; ++f) {
    HostBuffer& buf = act_[static_cast<size_t>(f)];
    if (format_bytes[f] > buf.size()) buf = HostBuffer(std::max(format_bytes[f], buf.size() * 2));
    any_act = any_act || format_bytes[f] > 0;
  }
  size_t scratch = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    if (!w[j]->kquant) scratch = std::max(scratch, kc::scratch_floats(w[j]->generic));
  }
  if (scratch > 0) {
    scratch_.resize(static_cast<size_t>(threads));
    for (auto& s : scratch_) {
      if (s.size() < scratch) s.resize(scratch);
    }
  }

  // Phase 1: rows split over the pool.
  if (any_act || before) {
    pool_.parallel_for(m, 4, [&](int, int64_t begin, int64_t end) {
      if (before) before(begin, end);
      for (int f = 0; f < num_formats; ++f) {
        if (format_bytes[f] == 0) continue;
        const Prepared& wf = *w[first_job[f]];
        void* act = act_[static_cast<size_t>(f)].data();
        if (wf.kquant) {
          check(kc::kquant_quantize_activations(isa_, xp, x_stride, begin, end, wf.k, act),
                "kquant_quantize_activations");
        } else {
          check(kc::quantize_activations(wf.generic, xp, x_stride, begin, end, act),
                "quantize_activations");
        }
      }
    });
  }
  auto act_of = [&](size_t j) -> const void* {
    const int f = format_of[j];
    return format_bytes[f] > 0 ? act_[static_cast<size_t>(f)].data() : nullptr;
  };

  // Phase 2: whole kernel column groups (panels) of every job, concatenated, split over the
  // pool. Enough columns per part that waking a thread pays: ~64K weight elements each.
  int64_t first_group[kMaxJobs + 1] = {};
  const size_t piece_jobs = paired ? 1 : jobs.size();
  for (size_t j = 0; j < piece_jobs; ++j) {
    const int64_t g = granule(*w[j]);
    first_group[j + 1] = first_group[j] + (w[j]->n + g - 1) / g;
  }
  const int64_t groups = first_group[piece_jobs];
  const int64_t k = w[0]->k;
  const int64_t grain =
      std::max<int64_t>(1, 65536 / std::max<int64_t>(1, k * granule(*w[0]) * (paired ? 2 : 1)));
  pool_.parallel_for(groups, grain, [&](int thread, int64_t begin, int64_t end) {
    for (size_t j = 0; j < piece_jobs; ++j) {
      const int64_t lo = std::max(begin, first_group[j]);
      const int64_t hi = std::min(end, first_group[j + 1]);
      if (lo >= hi) continue;
      const int64_t g = granule(*w[j]);
      const int64_t n_begin = (lo - first_group[j]) * g;
      const int64_t n_end = std::min(w[j]->n, (hi - first_group[j]) * g);
      compute_columns(*w[j], jobs[j].bias, x, *jobs[j].y, act_of(j), thread, n_begin, n_end);
      if (paired) {
        compute_columns(*w[1], jobs[1].bias, x, *jobs[1].y, act_of(1), thread, n_begin, n_end);
      }
      if (after) after(paired ? -1 : static_cast<int>(j), n_begin, n_end);
    }
  });
}

}  // namespace llmos
