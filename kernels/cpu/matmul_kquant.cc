// K-quant matmul front end: argument checks, dispatch by Isa, the repacker, and the portable
// (scalar) versions of both phases. The packed layouts are described in matmul_kquant.h.
#include "kernels/cpu/matmul_kquant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "quant/block_formats.h"
#include "quant/k_quant_search.h"

namespace llmos::kernels::cpu {

using kquant_detail::KqActMeta;
using kquant_detail::PackQ4K;
using kquant_detail::PackQ5K;
using kquant_detail::PackQ6K;
using kquant_detail::PanelArgs;

namespace kquant_detail {

int64_t pack_block_bytes(DType dtype) {
  switch (dtype) {
    case DType::kQ4_K: return PackQ4K::kBytes;
    case DType::kQ5_K: return PackQ5K::kBytes;
    case DType::kQ6_K: return PackQ6K::kBytes;
    default: return 0;
  }
}

namespace {

// Where code e (0..255) of column c lives in a packed block, for each format, written from the
// layout description. Only the scalar kernel reads through these; the packer below moves bytes
// by a different route, so the tests (scalar kernel vs GGUF-row reference) check one against
// the other.
int q4_qs_index(int c, int e) {  // byte; the nibble is (e / 32) % 2
  const int s = e / 32, l = e % 32;
  return PackQ4K::kQs + (((s / 2) * 8 + l / 4) * 16 + c) * 4 + l % 4;
}
int q5_qh_index(int c, int e) {  // byte; the bit is e / 32
  const int l = e % 32;
  return PackQ5K::kQh + ((l / 4) * 16 + c) * 4 + l % 4;
}
int q6_ql_index(int c, int e) {  // byte; the nibble is (e / 16) % 2
  const int s = e / 16, l = e % 16;
  return PackQ6K::kQl + (((s / 2) * 4 + l / 4) * 16 + c) * 4 + l % 4;
}
int q6_qh_index(int c, int e) {  // byte; the shift is q6_qh_shift(e)
  const int s = e / 16, l = e % 16;
  return PackQ6K::kQh + (((s / 4) * 4 + l / 4) * 16 + c) * 4 + l % 4;
}
int q6_qh_shift(int e) {
  const int s = e / 16;
  return 4 * ((s / 2) % 2) + 2 * (s % 2);
}

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// One packed column of one block, unpacked (the scalar kernel's view).
struct ColumnBlock {
  int q[256];
  int sc[16];
  int mn[8];
  float d, dmin;
};

void read_column(DType dtype, const uint8_t* pb, int c, ColumnBlock* out) {
  if (dtype == DType::kQ6_K) {
    out->d = f16_to_f32(load_u16(pb + PackQ6K::kD + 2 * c));
    out->dmin = 0.0f;
    for (int s = 0; s < 16; ++s) out->sc[s] = static_cast<int8_t>(pb[PackQ6K::kSc + 16 * s + c]);
    for (int e = 0; e < 256; ++e) {
      const int low = (pb[q6_ql_index(c, e)] >> (4 * ((e / 16) % 2))) & 0x0F;
      const int high = (pb[q6_qh_index(c, e)] >> q6_qh_shift(e)) & 3;
      out->q[e] = low | (high << 4);
    }
    return;
  }
  out->d = f16_to_f32(load_u16(pb + PackQ4K::kD + 2 * c));
  out->dmin = f16_to_f32(load_u16(pb + PackQ4K::kDmin + 2 * c));
  for (int s = 0; s < 8; ++s) {
    out->sc[s] = pb[PackQ4K::kSc + 16 * s + c];
    out->mn[s] = pb[PackQ4K::kMn + ((s / 2) * 16 + c) * 2 + s % 2];
  }
  for (int e = 0; e < 256; ++e) {
    int q = (pb[q4_qs_index(c, e)] >> (4 * ((e / 32) % 2))) & 0x0F;
    if (dtype == DType::kQ5_K) q |= ((pb[q5_qh_index(c, e)] >> (e / 32)) & 1) << 4;
    out->q[e] = q;
  }
}

// The fixed per-block arithmetic of kernels/matmul_q8k.h on one unpacked column.
float column_block(DType dtype, const ColumnBlock& w, const int8_t* qs, const KqActMeta& meta,
                   float acc) {
  int32_t s_sum = 0;
  if (dtype == DType::kQ6_K) {
    for (int s = 0; s < 16; ++s) {
      int32_t dot = meta.neg32_bsums[s];
      for (int l = 0; l < 16; ++l) dot += w.q[16 * s + l] * qs[16 * s + l];
      s_sum += w.sc[s] * dot;
    }
    return std::fma(w.d * meta.d, static_cast<float>(s_sum), acc);
  }
  int32_t m_sum = 0;
  for (int s = 0; s < 8; ++s) {
    int32_t dot = 0;
    for (int l = 0; l < 32; ++l) dot += w.q[32 * s + l] * qs[32 * s + l];
    s_sum += w.sc[s] * dot;
    m_sum += w.mn[s] * meta.bsums32[s];
  }
  acc = std::fma(w.d * meta.d, static_cast<float>(s_sum), acc);
  return std::fma(-(w.dmin * meta.d), static_cast<float>(m_sum), acc);
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
void store_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// Packs block b of GGUF row `row` into lane c of the packed block pb (which starts zeroed).
// Q4_K / Q5_K: the packed code bytes are GGUF's qs (and Q5_K's qh) bytes moved as 4-byte groups:
// GGUF byte qs[32p + l] holds elements 64p + l (low nibble) and 64p + 32 + l (high), exactly the
// byte of step (p, t = l / 4), code i = l % 4; GGUF qh[l] bit s is element 32s + l's fifth bit,
// exactly the packed qh byte of step t = l / 4. Q6_K codes are regrouped through a code array.
void pack_column(DType dtype, const uint8_t* row, int64_t b, int c, uint8_t* pb) {
  if (dtype == DType::kQ6_K) {
    const auto blk = quant::load_block<quant::BlockQ6_K>(row, b);
    store_u16(pb + PackQ6K::kD + 2 * c, blk.d);
    for (int s = 0; s < 16; ++s) pb[PackQ6K::kSc + 16 * s + c] = static_cast<uint8_t>(blk.scales[s]);
    alignas(16) uint8_t low[256], high[256];
    for (int h = 0; h < 2; ++h) {
      for (int kk = 0; kk < 4; ++kk) {
        for (int l = 0; l < 32; ++l) {
          low[128 * h + 32 * kk + l] = (blk.ql[64 * h + 32 * (kk & 1) + l] >> (kk >= 2 ? 4 : 0)) & 0x0F;
          high[128 * h + 32 * kk + l] = (blk.qh[32 * h + l] >> (2 * kk)) & 3;
        }
      }
    }
    // Bytes never carry into each other below: low codes < 16, high codes < 4.
    for (int p = 0; p < 8; ++p) {
      for (int t = 0; t < 4; ++t) {
        const int e = 32 * p + 4 * t;
        store_u32(pb + PackQ6K::kQl + ((p * 4 + t) * 16 + c) * 4, load_u32(low + e) | (load_u32(low + e + 16) << 4));
      }
    }
    for (int pp = 0; pp < 4; ++pp) {
      for (int t = 0; t < 4; ++t) {
        const int e = 64 * pp + 4 * t;
        store_u32(pb + PackQ6K::kQh + ((pp * 4 + t) * 16 + c) * 4,
                  load_u32(high + e) | (load_u32(high + e + 16) << 2) | (load_u32(high + e + 32) << 4) |
                      (load_u32(high + e + 48) << 6));
      }
    }
    return;
  }
  uint8_t sc[8], mn[8];
  const uint8_t* qs = nullptr;
  quant::BlockQ4_K b4;
  quant::BlockQ5_K b5;
  if (dtype == DType::kQ4_K) {
    b4 = quant::load_block<quant::BlockQ4_K>(row, b);
    store_u16(pb + PackQ4K::kD + 2 * c, b4.d);
    store_u16(pb + PackQ4K::kDmin + 2 * c, b4.dmin);
    for (int s = 0; s < 8; ++s) quant::k4_get_scale_min(s, b4.scales, &sc[s], &mn[s]);
    qs = b4.qs;
  } else {
    b5 = quant::load_block<quant::BlockQ5_K>(row, b);
    store_u16(pb + PackQ5K::kD + 2 * c, b5.d);
    store_u16(pb + PackQ5K::kDmin + 2 * c, b5.dmin);
    for (int s = 0; s < 8; ++s) quant::k4_get_scale_min(s, b5.scales, &sc[s], &mn[s]);
    qs = b5.qs;
    for (int t = 0; t < 8; ++t) store_u32(pb + PackQ5K::kQh + (t * 16 + c) * 4, load_u32(b5.qh + 4 * t));
  }
  for (int s = 0; s < 8; ++s) {
    pb[PackQ4K::kSc + 16 * s + c] = sc[s];
    pb[PackQ4K::kMn + ((s / 2) * 16 + c) * 2 + s % 2] = mn[s];
  }
  for (int p = 0; p < 4; ++p) {
    for (int t = 0; t < 8; ++t)
      store_u32(pb + PackQ4K::kQs + ((p * 8 + t) * 16 + c) * 4, load_u32(qs + 32 * p + 4 * t));
  }
}

// Packs blocks [b0, b1) of lanes [lane_begin, lane_end) of the panel whose first column (GGUF
// row) is col0; the other lanes are zero.
void pack_panel(DType dtype, const uint8_t* w, int64_t row_bytes, int64_t col0, int lane_begin,
                int lane_end, int64_t b0, int64_t b1, uint8_t* out) {
  const int64_t bb = pack_block_bytes(dtype);
  std::memset(out, 0, static_cast<size_t>((b1 - b0) * bb));
  for (int64_t b = b0; b < b1; ++b) {
    for (int c = lane_begin; c < lane_end; ++c)
      pack_column(dtype, w + (col0 + c) * row_bytes, b, c, out + (b - b0) * bb);
  }
}

}  // namespace

void panels_scalar(const PanelArgs& a) {
  const int64_t bb = pack_block_bytes(a.dtype);
  ColumnBlock col;
  for (int64_t p = a.n_begin / kKquantPanel; p * kKquantPanel < a.n_end; ++p) {
    const uint8_t* panel = a.panels + (p - a.panel_base) * a.panel_stride;
    const int64_t c_begin = std::max(a.n_begin, p * kKquantPanel);
    const int64_t c_end = std::min(a.n_end, (p + 1) * kKquantPanel);
    for (int64_t j = c_begin; j < c_end; ++j) {
      const int c = static_cast<int>(j - p * kKquantPanel);
      for (int64_t i = 0; i < a.m; ++i) {
        const uint8_t* row = a.act + i * a.act_row_bytes;
        const KqActMeta* meta = act_meta(row, a.k);
        float* out = a.y + i * a.y_stride + j;
        float acc = a.first ? 0.0f : *out;
        for (int64_t b = a.block_begin; b < a.block_end; ++b) {
          read_column(a.dtype, panel + (b - a.block_begin) * bb, c, &col);
          acc = column_block(a.dtype, col, reinterpret_cast<const int8_t*>(row) + 256 * b, meta[b], acc);
        }
        *out = (a.last && a.bias) ? acc + a.bias[j] : acc;
      }
    }
  }
}

void quantize_rows_scalar(const float* x, int64_t x_stride, int64_t rows, int64_t k, uint8_t* act) {
  const int64_t row_bytes = kquant_activation_row_bytes(k);
  Q8KBlock blk;
  for (int64_t i = 0; i < rows; ++i) {
    uint8_t* row = act + i * row_bytes;
    auto* meta = reinterpret_cast<KqActMeta*>(row + k);
    for (int64_t b = 0; b < k / 256; ++b) {
      quantize_row_q8k_ref(x + i * x_stride + 256 * b, 256, &blk);
      std::memcpy(row + 256 * b, blk.qs, 256);
      meta[b].d = blk.d;
      std::memcpy(meta[b].bsums, blk.bsums, sizeof(blk.bsums));
      finish_meta(&meta[b]);
    }
  }
}

}  // namespace kquant_detail

bool kquant_weight_supported(DType dtype) { return kquant_detail::pack_block_bytes(dtype) > 0; }

bool kquant_isa_usable(Isa isa) { return isa_supported(isa); }

int64_t kquant_activation_row_bytes(int64_t k) {
  if (k <= 0 || k % 256 != 0 || k > (int64_t{1} << 40)) return 0;
  return k + (k / 256) * static_cast<int64_t>(sizeof(KqActMeta));
}

size_t kquant_activation_bytes(int64_t m, int64_t k) {
  if (m <= 0) return 0;
  return static_cast<size_t>(m) * static_cast<size_t>(kquant_activation_row_bytes(k));
}

StatusCode kquant_quantize_activations(Isa isa, const float* x, int64_t x_stride, int64_t row_begin,
                                       int64_t row_end, int64_t k, void* act) {
  const int64_t row_bytes = kquant_activation_row_bytes(k);
  if (row_bytes == 0 || row_begin < 0 || row_end < row_begin) return StatusCode::kInvalidArgument;
  if (row_end == row_begin) return StatusCode::kOk;
  if (x == nullptr || act == nullptr || (row_end - row_begin > 1 && x_stride < k) ||
      reinterpret_cast<uintptr_t>(act) % alignof(KqActMeta) != 0)
    return StatusCode::kInvalidArgument;
  if (!kquant_isa_usable(isa)) return StatusCode::kUnsupported;
  const float* xs = x + row_begin * x_stride;
  uint8_t* out = static_cast<uint8_t*>(act) + row_begin * row_bytes;
  const int64_t rows = row_end - row_begin;
  switch (isa) {
    case Isa::kAvx512: kquant_detail::quantize_rows_avx512(xs, x_stride, rows, k, out); break;
    case Isa::kAvx2: kquant_detail::quantize_rows_avx2(xs, x_stride, rows, k, out); break;
    case Isa::kScalar: kquant_detail::quantize_rows_scalar(xs, x_stride, rows, k, out); break;
  }
  return StatusCode::kOk;
}

void kquant_read_activation_block(const void* act, int64_t k, int64_t row, int64_t block,
                                  Q8KBlock* out) {
  const auto* r = static_cast<const uint8_t*>(act) + row * kquant_activation_row_bytes(k);
  const KqActMeta& meta = kquant_detail::act_meta(r, k)[block];
  out->d = meta.d;
  std::memcpy(out->qs, r + 256 * block, 256);
  std::memcpy(out->bsums, meta.bsums, sizeof(out->bsums));
}

int64_t kquant_panel_count(int64_t n) { return n <= 0 ? 0 : (n + kKquantPanel - 1) / kKquantPanel; }

size_t kquant_packed_bytes(DType dtype, int64_t n, int64_t k) {
  const int64_t bb = kquant_detail::pack_block_bytes(dtype);
  if (bb == 0 || k <= 0 || k % 256 != 0 || n < 0) return 0;
  return static_cast<size_t>(kquant_panel_count(n)) * static_cast<size_t>(k / 256) *
         static_cast<size_t>(bb);
}

StatusCode kquant_pack(DType dtype, const void* w, int64_t row_bytes, int64_t n, int64_t k,
                       void* packed, int64_t panel_begin, int64_t panel_end) {
  if (!kquant_weight_supported(dtype)) return StatusCode::kUnsupported;
  if (k <= 0 || k % 256 != 0 || n < 0 || panel_begin < 0 || panel_end < panel_begin ||
      panel_end > kquant_panel_count(n))
    return StatusCode::kInvalidArgument;
  const int64_t nb = k / 256;
  if (row_bytes < nb * dtype_block_bytes(dtype)) return StatusCode::kInvalidArgument;
  if (panel_end == panel_begin) return StatusCode::kOk;
  if (w == nullptr || packed == nullptr) return StatusCode::kInvalidArgument;
  const int64_t panel_bytes = nb * kquant_detail::pack_block_bytes(dtype);
  for (int64_t p = panel_begin; p < panel_end; ++p) {
    const int ncols = static_cast<int>(std::min(kKquantPanel, n - p * kKquantPanel));
    kquant_detail::pack_panel(dtype, static_cast<const uint8_t*>(w), row_bytes, p * kKquantPanel,
                              0, ncols, 0, nb, static_cast<uint8_t*>(packed) + p * panel_bytes);
  }
  return StatusCode::kOk;
}

namespace {

StatusCode check_phase2(Isa isa, DType dtype, int64_t k, const void* act, int64_t m, const float* y,
                        int64_t y_stride, int64_t n_begin, int64_t n_end) {
  if (!kquant_weight_supported(dtype)) return StatusCode::kUnsupported;
  if (k <= 0 || k % 256 != 0 || m < 0 || n_begin < 0 || n_end < n_begin)
    return StatusCode::kInvalidArgument;
  if (m > 0 && n_end > n_begin &&
      (act == nullptr || y == nullptr || (m > 1 && y_stride < n_end) ||
       reinterpret_cast<uintptr_t>(act) % alignof(KqActMeta) != 0))
    return StatusCode::kInvalidArgument;
  if (!kquant_isa_usable(isa)) return StatusCode::kUnsupported;
  return StatusCode::kOk;
}

void run_panels(Isa isa, const PanelArgs& a) {
  switch (isa) {
    case Isa::kAvx512: kquant_detail::panels_avx512(a); break;
    case Isa::kAvx2: kquant_detail::panels_avx2(a); break;
    case Isa::kScalar: kquant_detail::panels_scalar(a); break;
  }
}

PanelArgs base_args(DType dtype, int64_t k, const float* bias, const void* act, int64_t m, float* y,
                    int64_t y_stride) {
  PanelArgs a;
  a.dtype = dtype;
  a.act = static_cast<const uint8_t*>(act);
  a.act_row_bytes = kquant_activation_row_bytes(k);
  a.k = k;
  a.m = m;
  a.y = y;
  a.y_stride = y_stride;
  a.bias = bias;
  return a;
}

}  // namespace

StatusCode kquant_matmul_packed_columns(Isa isa, DType dtype, const void* packed, int64_t n,
                                        int64_t k, const float* bias, const void* act, int64_t m,
                                        float* y, int64_t y_stride, int64_t n_begin,
                                        int64_t n_end) {
  if (const StatusCode s = check_phase2(isa, dtype, k, act, m, y, y_stride, n_begin, n_end);
      s != StatusCode::kOk)
    return s;
  if (n_end > n) return StatusCode::kInvalidArgument;
  if (m == 0 || n_end == n_begin) return StatusCode::kOk;
  if (packed == nullptr) return StatusCode::kInvalidArgument;
  PanelArgs a = base_args(dtype, k, bias, act, m, y, y_stride);
  a.panels = static_cast<const uint8_t*>(packed);
  a.panel_stride = (k / 256) * kquant_detail::pack_block_bytes(dtype);
  a.block_end = k / 256;
  a.n_begin = n_begin;
  a.n_end = n_end;
  run_panels(isa, a);
  return StatusCode::kOk;
}

StatusCode kquant_matmul_columns(Isa isa, DType dtype, const void* w, int64_t row_bytes, int64_t k,
                                 const float* bias, const void* act, int64_t m, float* y,
                                 int64_t y_stride, int64_t n_begin, int64_t n_end) {
  if (const StatusCode s = check_phase2(isa, dtype, k, act, m, y, y_stride, n_begin, n_end);
      s != StatusCode::kOk)
    return s;
  const int64_t nb = k / 256;
  if (row_bytes < nb * dtype_block_bytes(dtype)) return StatusCode::kInvalidArgument;
  if (m == 0 || n_end == n_begin) return StatusCode::kOk;
  if (w == nullptr) return StatusCode::kInvalidArgument;
  // A stack buffer of kChunk packed blocks for one panel (27 KB for Q6_K); the running sums of
  // longer rows go through y between chunks, which keeps the arithmetic identical.
  constexpr int64_t kChunk = 8;
  alignas(64) uint8_t buf[kChunk * kquant_detail::PackQ6K::kBytes];
  const int64_t bb = kquant_detail::pack_block_bytes(dtype);
  PanelArgs a = base_args(dtype, k, bias, act, m, y, y_stride);
  a.panels = buf;
  a.panel_stride = kChunk * bb;
  for (int64_t p = n_begin / kKquantPanel; p * kKquantPanel < n_end; ++p) {
    a.panel_base = p;
    a.n_begin = std::max(n_begin, p * kKquantPanel);
    a.n_end = std::min(n_end, (p + 1) * kKquantPanel);
    for (int64_t b0 = 0; b0 < nb; b0 += kChunk) {
      const int64_t b1 = std::min(nb, b0 + kChunk);
      // Only the columns this call writes are read (rows past n_end may not exist).
      kquant_detail::pack_panel(dtype, static_cast<const uint8_t*>(w), row_bytes,
                                p * kKquantPanel, static_cast<int>(a.n_begin - p * kKquantPanel),
                                static_cast<int>(a.n_end - p * kKquantPanel), b0, b1, buf);
      a.block_begin = b0;
      a.block_end = b1;
      a.first = b0 == 0;
      a.last = b1 == nb;
      run_panels(isa, a);
    }
  }
  return StatusCode::kOk;
}

}  // namespace llmos::kernels::cpu
