// Planning, ISA dispatch and the scalar path of the CPU attention kernel; KV-cache writes.
#include "kernels/cpu/attention_cpu.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention_cpu_driver.h"

namespace llmos::kernels::cpu {
namespace {

float scalar_load(const uint8_t* row, DType dtype, int d) {
  switch (dtype) {
    case DType::kF16: {
      uint16_t h;
      std::memcpy(&h, row + 2 * d, 2);
      return f16_to_f32(h);
    }
    case DType::kBF16: {
      uint16_t h;
      std::memcpy(&h, row + 2 * d, 2);
      return bf16_to_f32(h);
    }
    default: {
      float f;
      std::memcpy(&f, row + 4 * d, 4);
      return f;
    }
  }
}

// Plain C++: any head_dim, K kept in row layout, dot products summed in order.
struct ScalarKernel {
  static void load_rows(const uint8_t* const* rows, int n, int head_dim, DType dtype, float* buf) {
    for (int t = 0; t < n; ++t) {
      for (int d = 0; d < head_dim; ++d) buf[t * head_dim + d] = scalar_load(rows[t], dtype, d);
    }
  }
  static void begin_tile(const AttnTile&, int, float*) {}

  static void softmax_rows(const AttnTile& tile, const float*, int rb, int re, const uint8_t* const* k_rows,
                           DType dtype, float* k, float scale, int n, int ctx0, float* m, float* l, float* p,
                           float* alpha) {
    const int head_dim = tile.head_dim;
    load_rows(k_rows, n, head_dim, dtype, k);
    for (int r = rb; r < re; ++r) {
      const float* q = tile.q_row(r);
      const int valid = std::min(n, ctx0 + r / tile.group);
      float s[kAttentionChunk];
      float chunk_max = -std::numeric_limits<float>::infinity();
      for (int t = 0; t < valid; ++t) {
        float dot = 0.0f;
        for (int d = 0; d < head_dim; ++d) dot += q[d] * k[t * head_dim + d];
        s[t] = dot * scale;
        chunk_max = std::max(chunk_max, s[t]);
      }
      const float m_old = m[r];
      const float m_new = std::max(m_old, chunk_max);
      float sum = 0.0f;
      for (int t = 0; t < kAttentionChunk; ++t) {
        const float e = t < valid ? std::exp(s[t] - m_new) : 0.0f;
        p[r * kAttentionChunk + t] = e;
        sum += e;
      }
      const float a = m_old == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(m_old - m_new);
      alpha[r] = a;
      l[r] = l[r] * a + sum;
      m[r] = m_new;
    }
  }

  static void pv_rows(const float* p, const float* alpha, const uint8_t* const* v_rows, DType dtype,
                      int n, int head_dim, float* v, float* acc, int rb, int re,
                      const AttnNextChunk& next) {
    attn_prefetch_chunk(next);
    load_rows(v_rows, n, head_dim, dtype, v);
    for (int r = rb; r < re; ++r) {
      float* a = acc + static_cast<int64_t>(r) * head_dim;
      for (int d = 0; d < head_dim; ++d) a[d] *= alpha[r];
      for (int t = 0; t < n; ++t) {
        const float pt = p[r * kAttentionChunk + t];
        for (int d = 0; d < head_dim; ++d) a[d] += pt * v[t * head_dim + d];
      }
    }
  }

  static void merge(float* m, float* l, float* acc, float m2, float l2, const float* acc2,
                    int head_dim) {
    const float mn = std::max(*m, m2);
    const float a = std::exp(*m - mn);
    const float b = std::exp(m2 - mn);
    *l = *l * a + l2 * b;
    for (int d = 0; d < head_dim; ++d) acc[d] = acc[d] * a + acc2[d] * b;
    *m = mn;
  }

  static void finalize(const float* acc, float l, int head_dim, float* out) {
    for (int d = 0; d < head_dim; ++d) out[d] = acc[d] / l + 0.0f;
  }
};

bool is_kv_dtype(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

// Tokens of sequence s's n_new queries, summed over their context lengths (pos + 1).
int64_t causal_cost(int64_t first_pos, int64_t count) {
  return count * (first_pos + 1) + count * (count - 1) / 2;
}

using ItemsFn = void (*)(const PagedAttentionParams&, const AttentionPlan&, const AttentionWorkItem*,
                         int64_t, float*, int, const AttentionWorkItem*);
using CombineFn = void (*)(const PagedAttentionParams&, const AttentionPlan&,
                           const AttentionCombineItem*, int64_t, float*);
using StoreRowFn = void (*)(const float*, void*, DType, int);

struct AttentionFns {
  ItemsFn items;
  CombineFn combine;
};

StatusCode attention_fns(Isa isa, int head_dim, AttentionFns* fns) {
  if (!isa_supported(isa)) return StatusCode::kUnsupported;
  if (has_fast_attention(isa, head_dim)) {
    if (isa == Isa::kAvx512) {
      *fns = {detail::attention_items_avx512, detail::attention_combine_avx512};
      return StatusCode::kOk;
    }
    if (isa == Isa::kAvx2) {
      *fns = {detail::attention_items_avx2, detail::attention_combine_avx2};
      return StatusCode::kOk;
    }
  }
  *fns = {detail::attention_items_scalar, detail::attention_combine_scalar};
  return StatusCode::kOk;
}

StatusCode store_row_fn(Isa isa, StoreRowFn* fn) {
  if (!isa_supported(isa)) return StatusCode::kUnsupported;
  switch (isa) {
    case Isa::kAvx512: *fn = detail::kv_store_row_avx512; break;
    case Isa::kAvx2: *fn = detail::kv_store_row_avx2; break;
    default: *fn = detail::kv_store_row_scalar; break;
  }
  return StatusCode::kOk;
}

// The checks attention_run and attention_combine share: the plan was made for this shape.
bool plan_matches(const PagedAttentionParams& p, const AttentionPlan& plan, const void* workspace) {
  return workspace != nullptr && p.q != nullptr && p.out != nullptr && p.k_pool != nullptr &&
         p.v_pool != nullptr && is_kv_dtype(p.kv_dtype) && p.block_size > 0 &&
         p.num_heads == plan.num_heads && p.num_kv_heads == plan.num_kv_heads &&
         p.head_dim == plan.head_dim && p.num_seqs == plan.num_seqs;
}

}  // namespace

namespace detail {

void attention_items_scalar(const PagedAttentionParams& p, const AttentionPlan& plan,
                            const AttentionWorkItem* items, int64_t count, float* workspace,
                            int thread, const AttentionWorkItem* following) {
  attn_run_items<ScalarKernel>(p, plan, items, count, workspace, thread, following);
}

void attention_combine_scalar(const PagedAttentionParams& p, const AttentionPlan&,
                              const AttentionCombineItem* items, int64_t count, float* workspace) {
  attn_run_combines<ScalarKernel>(p, items, count, workspace);
}

void kv_store_row_scalar(const float* src, void* dst, DType dtype, int n) {
  switch (dtype) {
    case DType::kF16:
      for (int i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(src[i]);
      break;
    case DType::kBF16:
      for (int i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(src[i]);
      break;
    default: std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n)); break;
  }
}

}  // namespace detail

int64_t attention_partial_floats(int rows, int head_dim) { return attn_partial_floats(rows, head_dim); }

bool has_fast_attention(Isa isa, int head_dim) {
  return isa != Isa::kScalar && head_dim > 0 && head_dim % 16 == 0;
}

StatusCode attention_plan(const PagedAttentionParams& p, int num_threads, AttentionPlan* plan) {
  if (plan == nullptr || num_threads < 1 || num_threads > 4096) return StatusCode::kInvalidArgument;
  if (p.num_heads <= 0 || p.num_kv_heads <= 0 || p.head_dim <= 0 || p.head_dim > 65536 ||
      p.num_heads % p.num_kv_heads != 0 || p.num_seqs < 0 || p.block_size <= 0)
    return StatusCode::kInvalidArgument;
  if (p.num_seqs > 0 && (p.query_start == nullptr || p.kv_len == nullptr)) return StatusCode::kInvalidArgument;
  if (p.num_seqs > 0 && p.query_start[0] != 0) return StatusCode::kInvalidArgument;
  const int group = p.num_heads / p.num_kv_heads;
  const int tile_tokens = std::max(1, kAttentionTileRows / group);

  int64_t total_cost = 0;
  for (int s = 0; s < p.num_seqs; ++s) {
    const int64_t n_new = static_cast<int64_t>(p.query_start[s + 1]) - p.query_start[s];
    if (n_new < 0 || p.kv_len[s] < n_new) return StatusCode::kInvalidArgument;
    total_cost += causal_cost(p.kv_len[s] - n_new, n_new) * group * p.num_kv_heads;
  }
  // A tile is split into partitions when it is a large share of the step: then the partitions
  // spread it over the threads. The split never changes results, only who computes what.
  const int64_t split_above =
      num_threads > 1 ? total_cost / (4 * num_threads) : std::numeric_limits<int64_t>::max();

  plan->items.clear();
  plan->combines.clear();
  int max_rows = 0;
  int64_t partial = 0;
  for (int s = 0; s < p.num_seqs; ++s) {
    const int32_t q0 = p.query_start[s];
    const int32_t n_new = p.query_start[s + 1] - q0;
    for (int32_t j0 = 0; j0 < n_new; j0 += tile_tokens) {
      const int32_t count = std::min(tile_tokens, n_new - j0);
      const int64_t first_pos = static_cast<int64_t>(p.kv_len[s]) - n_new + j0;
      const int64_t tile_end = first_pos + count;
      const int32_t parts = static_cast<int32_t>((tile_end + kAttentionPartition - 1) / kAttentionPartition);
      const int rows = count * group;
      const int64_t cost = causal_cost(first_pos, count) * group;
      max_rows = std::max(max_rows, rows);
      for (int h = 0; h < p.num_kv_heads; ++h) {
        AttentionWorkItem item;
        item.seq = s;
        item.kv_head = h;
        item.q_begin = q0 + j0;
        item.q_count = count;
        if (parts > 1 && cost > split_above) {
          const int64_t block = attn_partial_floats(rows, p.head_dim);
          AttentionCombineItem c;
          c.seq = s;
          c.kv_head = h;
          c.q_begin = item.q_begin;
          c.q_count = count;
          c.num_parts = parts;
          c.partial = partial;
          plan->combines.push_back(c);
          for (int32_t k = 0; k < parts; ++k) {
            item.part_begin = k;
            item.part_end = k + 1;
            item.partial = partial + k * block;
            const int64_t tokens = std::min<int64_t>(kAttentionPartition, tile_end - int64_t{k} * kAttentionPartition);
            item.cost = tokens * rows;
            plan->items.push_back(item);
          }
          partial += parts * block;
        } else {
          item.part_begin = 0;
          item.part_end = parts;
          item.partial = -1;
          item.cost = cost;
          plan->items.push_back(item);
        }
      }
    }
  }
  // Largest first: with items handed out dynamically the threads finish close together.
  std::stable_sort(plan->items.begin(), plan->items.end(),
                   [](const AttentionWorkItem& a, const AttentionWorkItem& b) { return a.cost > b.cost; });
  plan->num_heads = p.num_heads;
  plan->num_kv_heads = p.num_kv_heads;
  plan->head_dim = p.head_dim;
  plan->num_seqs = p.num_seqs;
  plan->num_threads = num_threads;
  plan->max_rows = max_rows;
  plan->partial_floats = partial;
  plan->scratch_floats = attn_scratch_floats(max_rows, p.head_dim);
  return StatusCode::kOk;
}

size_t attention_workspace_bytes(const AttentionPlan& plan) {
  return sizeof(float) *
         static_cast<size_t>(plan.partial_floats + int64_t{plan.num_threads} * plan.scratch_floats);
}

StatusCode attention_run(Isa isa, const PagedAttentionParams& p, const AttentionPlan& plan,
                         int64_t item_begin, int64_t item_end, void* workspace, int thread,
                         int64_t prefetch_item) {
  const int64_t items = static_cast<int64_t>(plan.items.size());
  if (!plan_matches(p, plan, workspace) || thread < 0 || thread >= plan.num_threads ||
      item_begin < 0 || item_end < item_begin || item_end > items || prefetch_item < -1 ||
      prefetch_item >= items)
    return StatusCode::kInvalidArgument;
  AttentionFns fns;
  if (const StatusCode st = attention_fns(isa, p.head_dim, &fns); st != StatusCode::kOk) return st;
  const AttentionWorkItem* following =
      prefetch_item >= 0 ? &plan.items[static_cast<size_t>(prefetch_item)] : nullptr;
  fns.items(p, plan, plan.items.data() + item_begin, item_end - item_begin, static_cast<float*>(workspace),
            thread, following);
  return StatusCode::kOk;
}

StatusCode attention_combine(Isa isa, const PagedAttentionParams& p, const AttentionPlan& plan,
                             int64_t begin, int64_t end, void* workspace) {
  if (!plan_matches(p, plan, workspace) || begin < 0 || end < begin ||
      end > static_cast<int64_t>(plan.combines.size()))
    return StatusCode::kInvalidArgument;
  AttentionFns fns;
  if (const StatusCode st = attention_fns(isa, p.head_dim, &fns); st != StatusCode::kOk) return st;
  fns.combine(p, plan, plan.combines.data() + begin, end - begin, static_cast<float*>(workspace));
  return StatusCode::kOk;
}

StatusCode attention_forward(ThreadPool& pool, Isa isa, const PagedAttentionParams& p,
                             const AttentionPlan& plan, void* workspace) {
  struct Shared {
    Isa isa;
    const PagedAttentionParams* p;
    const AttentionPlan* plan;
    void* workspace;
    std::atomic<int64_t> next{0};
    std::atomic<int> status{0};
  } shared{isa, &p, &plan, workspace};
  Shared* sh = &shared;  // one pointer captured: the std::function stays allocation-free
  const int threads = std::min(pool.num_threads(), plan.num_threads);
  pool.parallel_for(threads, 1, [sh](int thread, int64_t, int64_t) {
    const int64_t n = static_cast<int64_t>(sh->plan->items.size());
    // Items are claimed one ahead, so the next one's first K/V chunk is prefetched while the
    // current one ends (which thread runs an item never changes its result).
    int64_t i = sh->next.fetch_add(1, std::memory_order_relaxed);
    while (i < n) {
      const int64_t following = sh->next.fetch_add(1, std::memory_order_relaxed);
      const StatusCode st = attention_run(sh->isa, *sh->p, *sh->plan, i, i + 1, sh->workspace, thread,
                                          following < n ? following : -1);
      i = following;
      if (st != StatusCode::kOk) {
        int expected = 0;
        sh->status.compare_exchange_strong(expected, static_cast<int>(st));
        break;
      }
    }
  });
  if (shared.status.load() != 0) return static_cast<StatusCode>(shared.status.load());
  const int64_t combines = static_cast<int64_t>(plan.combines.size());
  if (combines == 0) return StatusCode::kOk;
  pool.parallel_for(combines, 1, [sh](int, int64_t begin, int64_t end) {
    const StatusCode st = attention_combine(sh->isa, *sh->p, *sh->plan, begin, end, sh->workspace);
    if (st != StatusCode::kOk) {
      int expected = 0;
      sh->status.compare_exchange_strong(expected, static_cast<int>(st));
    }
  });
  return static_cast<StatusCode>(shared.status.load());
}

// ---- KV-cache writes -----------------------------------------------------------------------

namespace {

bool write_kv_args_ok(const WriteKvParams& p, int64_t token_begin, int64_t token_end) {
  return p.k != nullptr && p.v != nullptr && p.k_pool != nullptr && p.v_pool != nullptr &&
         p.slots != nullptr && is_kv_dtype(p.kv_dtype) && p.block_size > 0 && p.num_kv_heads > 0 &&
         p.head_dim > 0 && p.num_blocks >= 0 && token_begin >= 0 && token_begin <= token_end &&
         token_end <= p.num_tokens;
}

// Byte offset of (slot, kv head) in a pool, or -1 when the slot is outside it.
int64_t slot_offset(const WriteKvParams& p, int64_t slot, int h) {
  if (slot < 0 || slot / p.block_size >= p.num_blocks) return -1;
  const int64_t block = slot / p.block_size;
  const int64_t offset = slot % p.block_size;
  const int64_t elem = p.kv_dtype == DType::kF32 ? 4 : 2;
  return ((block * p.num_kv_heads + h) * p.block_size + offset) * p.head_dim * elem;
}

void cos_sin_row(const KvRope& rope, int64_t t, double* cs) {
  const double pos = rope.positions[t];
  for (int i = 0; i < rope.rot_dim / 2; ++i) {
    const double theta = pos * rope.inv_freq[i];
    cs[2 * i] = std::cos(theta) * rope.attn_factor;
    cs[2 * i + 1] = std::sin(theta) * rope.attn_factor;
  }
}

// Dims [0, rot_dim) of one head's K row, rotated as rope_ref does (double arithmetic, then
// rounded to float); the pairs cover every one of those dims.
void rotate_row(const KvRope& rope, const double* cs, const float* src, float* dst) {
  const int half = rope.rot_dim / 2;
  for (int i = 0; i < half; ++i) {
    const int a = rope.neox ? i : 2 * i;
    const int b = rope.neox ? i + half : 2 * i + 1;
    const double x0 = src[a];
    const double x1 = src[b];
    dst[a] = static_cast<float>(x0 * cs[2 * i] - x1 * cs[2 * i + 1]);
    dst[b] = static_cast<float>(x0 * cs[2 * i + 1] + x1 * cs[2 * i]);
  }
}

StatusCode write_kv_impl(Isa isa, const WriteKvParams& p, const KvRope* rope, int64_t token_begin,
                         int64_t token_end) {
  if (!write_kv_args_ok(p, token_begin, token_end)) return StatusCode::kInvalidArgument;
  if (rope != nullptr) {
    if (rope->positions == nullptr || (rope->inv_freq == nullptr && rope->cos_sin == nullptr) ||
        rope->rot_dim <= 0 || rope->rot_dim % 2 != 0 || rope->rot_dim > p.head_dim ||
        rope->rot_dim > kMaxRopeDim || p.head_dim > 65536)
      return StatusCode::kInvalidArgument;
  }
  StoreRowFn store;
  if (const StatusCode st = store_row_fn(isa, &store); st != StatusCode::kOk) return st;
  uint8_t* k_pool = static_cast<uint8_t*>(p.k_pool);
  uint8_t* v_pool = static_cast<uint8_t*>(p.v_pool);
  double cs_local[kMaxRopeDim];
  float rotated[kMaxRopeDim];
  for (int64_t t = token_begin; t < token_end; ++t) {
    const int64_t slot = p.slots[t];
    if (slot_offset(p, slot, 0) < 0) return StatusCode::kInvalidArgument;
    const double* cs = nullptr;
    if (rope != nullptr) {
      if (rope->cos_sin != nullptr) {
        cs = rope->cos_sin + t * rope->rot_dim;
      } else {
        cos_sin_row(*rope, t, cs_local);
        cs = cs_local;
      }
    }
    for (int h = 0; h < p.num_kv_heads; ++h) {
      const int64_t dst = slot_offset(p, slot, h);
      const float* k = p.k + t * p.kv_stride + static_cast<int64_t>(h) * p.head_dim;
      const float* v = p.v + t * p.kv_stride + static_cast<int64_t>(h) * p.head_dim;
      const int64_t elem = p.kv_dtype == DType::kF32 ? 4 : 2;
      if (rope == nullptr) {
        store(k, k_pool + dst, p.kv_dtype, p.head_dim);
      } else {
        // Dims [0, rot_dim) rotate through a stack buffer; the rest are stored as they are.
        rotate_row(*rope, cs, k, rotated);
        store(rotated, k_pool + dst, p.kv_dtype, rope->rot_dim);
        if (rope->rot_dim < p.head_dim) {
          store(k + rope->rot_dim, k_pool + dst + rope->rot_dim * elem, p.kv_dtype,
                p.head_dim - rope->rot_dim);
        }
      }
      store(v, v_pool + dst, p.kv_dtype, p.head_dim);
    }
  }
  return StatusCode::kOk;
}

}  // namespace

StatusCode write_kv_cpu(Isa isa, const WriteKvParams& p, int64_t token_begin, int64_t token_end) {
  return write_kv_impl(isa, p, nullptr, token_begin, token_end);
}

StatusCode write_kv_rope_cpu(Isa isa, const WriteKvParams& p, const KvRope& rope,
                             int64_t token_begin, int64_t token_end) {
  return write_kv_impl(isa, p, &rope, token_begin, token_end);
}

StatusCode rope_cos_sin_table(const KvRope& rope, int64_t row_begin, int64_t row_end, double* table) {
  if (table == nullptr || rope.positions == nullptr || rope.inv_freq == nullptr || rope.rot_dim <= 0 ||
      rope.rot_dim % 2 != 0 || row_begin < 0 || row_end < row_begin)
    return StatusCode::kInvalidArgument;
  for (int64_t t = row_begin; t < row_end; ++t) cos_sin_row(rope, t, table + t * rope.rot_dim);
  return StatusCode::kOk;
}

}  // namespace llmos::kernels::cpu
