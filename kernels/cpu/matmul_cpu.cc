// The fast CPU matmul's dispatcher: validation, weight packing (column groups, see
// matmul_cpu_internal.h) and the choice of kernel per ISA x dtype. Compiled without ISA flags;
// it only calls an ISA kernel for a weight packed for that ISA, and pack_weight refuses an ISA
// the CPU lacks.
//
// Paths: AVX-512 and AVX2 have kernels for Q4_0, Q8_0, F32, F16 and BF16. The scalar ISA runs
// the exact references of the same math (kernels/matmul_q8.h), so every ISA produces the same
// bits for those dtypes. Every other dtype (K-quants, Q4_1, Q5_x, ...) is a view of the GGUF rows
// on the f64 reference kernels::matmul_ref.
#include "kernels/cpu/matmul_cpu.h"

#include <cstring>

#include "core/allocator.h"
#include "kernels/cpu/matmul_cpu_internal.h"
#include "kernels/matmul.h"
#include "kernels/matmul_q8.h"
#include "quant/block_formats.h"

namespace llmos::kernels::cpu {
namespace {

using namespace detail;

bool is_fast_dtype(DType dtype) {
  return dtype == DType::kQ4_0 || dtype == DType::kQ8_0 || dtype == DType::kF32 ||
         dtype == DType::kF16 || dtype == DType::kBF16;
}

bool uses_q8_act(DType dtype) { return dtype == DType::kQ4_0 || dtype == DType::kQ8_0; }

int lanes_of(Isa isa) { return isa == Isa::kAvx512 ? 16 : 8; }

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// The layout pack_weight uses for an ISA with a fast path for dtype.
int default_layout(Isa isa, DType dtype) {
  switch (dtype) {
    case DType::kQ4_0: return kLayoutQ4_0;
    case DType::kQ8_0: return isa == Isa::kAvx512 ? kLayoutQ8_0U8 : kLayoutQ8_0S8;
    case DType::kF32: return kLayoutF32;
    case DType::kF16: return kLayoutF16;
    case DType::kBF16:
      return isa == Isa::kAvx512 && has_avx512_bf16() ? kLayoutBf16Dp : kLayoutBf16;
    default: return kLayoutGguf;
  }
}

bool layout_fits(Isa isa, int layout, DType dtype) {
  switch (layout) {
    case kLayoutQ4_0: return dtype == DType::kQ4_0;
    case kLayoutQ8_0U8: return dtype == DType::kQ8_0 && isa == Isa::kAvx512;
    case kLayoutQ8_0S8: return dtype == DType::kQ8_0 && isa == Isa::kAvx2;
    case kLayoutF32: return dtype == DType::kF32;
    case kLayoutF16: return dtype == DType::kF16;
    case kLayoutBf16: return dtype == DType::kBF16;
    case kLayoutBf16Dp: return dtype == DType::kBF16 && isa == Isa::kAvx512;
    default: return false;
  }
}

// Bytes of one column group.
int64_t group_bytes(int layout, int lanes, int64_t k) {
  const int64_t nb = k / quant::kQK;
  switch (layout) {
    case kLayoutQ4_0: return round_up(nb * 2 * lanes, 64) + nb * 16 * lanes;
    case kLayoutQ8_0U8:
    case kLayoutQ8_0S8: return round_up(nb * 2 * lanes, 64) + nb * 32 * lanes;
    case kLayoutF32: return round_up(k * 4 * lanes, 64);
    case kLayoutF16: return round_up(k * 2 * lanes, 64);
    default: return round_up((k + 1) / 2 * 4 * lanes, 64);  // bf16 pairs
  }
}

// Writes group g of the packed weight at `dst` (group_bytes, zeroed) from GGUF rows at `src`.
void pack_group(int layout, int lanes, const uint8_t* src, int64_t row_bytes, int64_t n, int64_t k,
                int64_t g, uint8_t* dst) {
  const int64_t nb = k / quant::kQK;
  const int64_t scale_bytes = round_up(nb * 2 * lanes, 64);
  for (int c = 0; c < lanes && g * lanes + c < n; ++c) {
    const uint8_t* row = src + (g * lanes + c) * row_bytes;
    switch (layout) {
      case kLayoutQ4_0:
        for (int64_t b = 0; b < nb; ++b) {
          const auto blk = quant::load_block<quant::BlockQ4_0>(row, b);
          std::memcpy(dst + (b * lanes + c) * 2, &blk.d, 2);
          uint8_t* codes = dst + scale_bytes + b * 16 * lanes;
          for (int s = 0; s < 4; ++s) std::memcpy(codes + (s * lanes + c) * 4, blk.qs + 4 * s, 4);
        }
        break;
      case kLayoutQ8_0U8:
      case kLayoutQ8_0S8:
        for (int64_t b = 0; b < nb; ++b) {
          auto blk = quant::load_block<quant::BlockQ8_0>(row, b);
          std::memcpy(dst + (b * lanes + c) * 2, &blk.d, 2);
          if (layout == kLayoutQ8_0U8) {
            for (auto& q : blk.qs) q = static_cast<int8_t>(static_cast<uint8_t>(q) ^ 0x80u);
          }
          uint8_t* codes = dst + scale_bytes + b * 32 * lanes;
          for (int s = 0; s < 8; ++s) std::memcpy(codes + (s * lanes + c) * 4, blk.qs + 4 * s, 4);
        }
        break;
      case kLayoutF32:
        for (int64_t t = 0; t < k; ++t) std::memcpy(dst + (t * lanes + c) * 4, row + 4 * t, 4);
        break;
      case kLayoutF16:
        for (int64_t t = 0; t < k; ++t) std::memcpy(dst + (t * lanes + c) * 2, row + 2 * t, 2);
        break;
      default:  // bf16 pairs: element 2p in the low half, 2p + 1 in the high half
        for (int64_t t = 0; t < k; ++t) {
          std::memcpy(dst + ((t / 2) * lanes + c) * 4 + (t % 2) * 2, row + 2 * t, 2);
        }
        break;
    }
  }
}

bool tiled_act(const PackedWeight& w) {
  return uses_q8_act(w.dtype) && w.isa == Isa::kAvx512 && w.layout != kLayoutGguf;
}

// Bytes of phase-1 output per activation row (tiled rows: per row of a whole tile).
int64_t act_row_bytes(const PackedWeight& w) {
  if (uses_q8_act(w.dtype)) return w.k / kQ8ActBlockSize * static_cast<int64_t>(sizeof(Q8ActBlock));
  if (w.layout == kLayoutBf16) return (w.k + 1) / 2 * 8;    // bf16-rounded f32, even length
  if (w.layout == kLayoutBf16Dp) return (w.k + 1) / 2 * 4;  // bf16 pairs
  return 0;
}

StatusCode run_reference(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  const PackedWeight& w = *a.weight;
  if (uses_q8_act(w.dtype)) {
    MatmulQ8Params p;
    p.weight = w.data;
    p.weight_dtype = w.dtype;
    p.weight_row_bytes = w.row_bytes;
    p.bias = a.bias;
    p.act = static_cast<const Q8ActBlock*>(a.act);
    p.y = a.y;
    p.y_stride = a.y_stride;
    p.m = a.m;
    p.n = w.n;
    p.k = w.k;
    return matmul_q8_ref(p, n_begin, n_end);
  }
  MatmulParams p;
  p.weight = w.data;
  p.weight_dtype = w.dtype;
  p.weight_row_bytes = w.row_bytes;
  p.bias = a.bias;
  p.x = a.x;
  p.x_stride = a.x_stride;
  p.y = a.y;
  p.y_stride = a.y_stride;
  p.m = a.m;
  p.n = w.n;
  p.k = w.k;
  if (is_fast_dtype(w.dtype)) return matmul_fp_chain_ref(p, n_begin, n_end);
  if (a.scratch == nullptr) return StatusCode::kInvalidArgument;
  return matmul_ref(p, n_begin, n_end, a.scratch);
}

}  // namespace

bool has_fast_matmul(Isa isa, DType dtype) { return isa != Isa::kScalar && is_fast_dtype(dtype); }

PackedWeight detail::pack_weight_layout(Isa isa, int layout, DType dtype, const void* data,
                                        int64_t n, int64_t k, int64_t row_bytes) {
  if (!isa_supported(isa)) {
    throw_error(StatusCode::kUnsupported, "pack_weight: this CPU does not support ", isa_name(isa));
  }
  LLMOS_CHECK_ARG(data != nullptr && n > 0 && k > 0, "pack_weight: empty weight (n = ", n,
                  ", k = ", k, ")");
  LLMOS_CHECK_ARG(k % dtype_block_size(dtype) == 0, "pack_weight: k = ", k,
                  " is not a multiple of the ", dtype_name(dtype), " block size ",
                  dtype_block_size(dtype));
  LLMOS_CHECK_ARG(row_bytes >= dtype_row_bytes(dtype, k), "pack_weight: row_bytes ", row_bytes,
                  " is less than a ", dtype_name(dtype), " row of ", k, " elements");
  PackedWeight w;
  w.dtype = dtype;
  w.n = n;
  w.k = k;
  w.isa = isa;
  if (layout == kLayoutGguf || isa == Isa::kScalar) {
    w.data = data;
    w.row_bytes = row_bytes;
    return w;
  }
  LLMOS_CHECK_ARG(layout_fits(isa, layout, dtype), "pack_weight: layout ", layout,
                  " does not hold ", dtype_name(dtype), " weights for ", isa_name(isa));
  LLMOS_CHECK_ARG(layout != kLayoutBf16Dp || isa_supported(Isa::kAvx512),
                  "pack_weight: vdpbf16ps layout needs AVX-512");
  const int lanes = lanes_of(isa);
  const int64_t groups = (n + lanes - 1) / lanes;
  const int64_t gbytes = group_bytes(layout, lanes, k);
  LLMOS_CHECK_ARG(gbytes <= INT64_MAX / groups, "pack_weight: ", n, " x ", k, " is too large");
  const auto bytes = static_cast<size_t>(gbytes * groups);
  auto* dst = static_cast<uint8_t*>(host_alloc(bytes));
  w.owned = std::shared_ptr<void>(dst, HostDeleter());
  w.owned_bytes = bytes;
  std::memset(dst, 0, bytes);
  const auto* src = static_cast<const uint8_t*>(data);
  for (int64_t g = 0; g < groups; ++g)
    pack_group(layout, lanes, src, row_bytes, n, k, g, dst + g * gbytes);
  w.layout = layout;
  w.data = dst;
  w.row_bytes = gbytes;
  return w;
}

PackedWeight pack_weight(Isa isa, DType dtype, const void* data, int64_t n, int64_t k,
                         int64_t row_bytes) {
  const int layout = isa == Isa::kScalar ? kLayoutGguf : default_layout(isa, dtype);
  return pack_weight_layout(isa, layout, dtype, data, n, k, row_bytes);
}

size_t activation_bytes(const PackedWeight& w, int64_t m) {
  if (m <= 0) return 0;
  const int64_t rows = tiled_act(w) ? (m + kActTileRows - 1) / kActTileRows * kActTileRows : m;
  return static_cast<size_t>(rows * act_row_bytes(w));
}

const Q8ActBlock* detail::q8_act_block(const PackedWeight& w, const void* act, int64_t row,
                                       int64_t block) {
  const int64_t nb = w.k / kQ8ActBlockSize;
  const auto* base = static_cast<const Q8ActBlock*>(act);
  if (!tiled_act(w)) return base + row * nb + block;
  return base + ((row / kActTileRows) * nb + block) * kActTileRows + row % kActTileRows;
}

size_t scratch_floats(const PackedWeight& w) {
  return is_fast_dtype(w.dtype) ? 0 : static_cast<size_t>(w.k);
}

int64_t column_granule(const PackedWeight& w) {
  return w.layout == kLayoutGguf ? 1 : lanes_of(w.isa);
}

StatusCode quantize_activations(const PackedWeight& w, const float* x, int64_t x_stride,
                                int64_t row_begin, int64_t row_end, void* act) {
  const int64_t row_bytes = act_row_bytes(w);
  if (row_bytes == 0 || row_begin >= row_end) return StatusCode::kOk;
  if (x == nullptr || act == nullptr || row_begin < 0 || x_stride < w.k)
    return StatusCode::kInvalidArgument;
  for (int64_t i = row_begin; i < row_end; ++i) {
    const float* xi = x + i * x_stride;
    void* out = static_cast<uint8_t*>(act) + i * row_bytes;
    if (uses_q8_act(w.dtype)) {
      auto* blocks = const_cast<Q8ActBlock*>(q8_act_block(w, act, i, 0));
      switch (w.isa) {
        case Isa::kAvx512:
          quantize_q8_act_avx512(xi, w.k, blocks, tiled_act(w) ? kActTileRows : 1);
          break;
        case Isa::kAvx2: quantize_q8_act_avx2(xi, w.k, blocks); break;
        default: quantize_row_q8_act(xi, w.k, blocks); break;
      }
    } else if (w.isa == Isa::kAvx512) {
      round_bf16_row_avx512(xi, w.k, w.layout == kLayoutBf16Dp, out);
    } else {
      round_bf16_row_avx2(xi, w.k, out);
    }
  }
  return StatusCode::kOk;
}

StatusCode matmul_columns(const MatmulArgs& a, int64_t n_begin, int64_t n_end) {
  if (a.weight == nullptr || a.weight->data == nullptr) return StatusCode::kInvalidArgument;
  const PackedWeight& w = *a.weight;
  if (n_begin < 0 || n_end > w.n || n_begin > n_end || a.m < 0) return StatusCode::kInvalidArgument;
  if (n_begin == n_end || a.m == 0) return StatusCode::kOk;
  if (a.y == nullptr || a.y_stride < w.n) return StatusCode::kInvalidArgument;
  if (act_row_bytes(w) > 0 ? a.act == nullptr : (a.x == nullptr || a.x_stride < w.k))
    return StatusCode::kInvalidArgument;
  const bool avx512 = w.isa == Isa::kAvx512;
  switch (w.layout) {
    case kLayoutGguf: return run_reference(a, n_begin, n_end);
    case kLayoutQ4_0:
      (avx512 ? matmul_q4_0_avx512 : matmul_q4_0_avx2)(a, n_begin, n_end);
      return StatusCode::kOk;
    case kLayoutQ8_0U8: matmul_q8_0_avx512(a, n_begin, n_end); return StatusCode::kOk;
    case kLayoutQ8_0S8: matmul_q8_0_avx2(a, n_begin, n_end); return StatusCode::kOk;
    case kLayoutF32:
      (avx512 ? matmul_f32_avx512 : matmul_f32_avx2)(a, n_begin, n_end);
      return StatusCode::kOk;
    case kLayoutF16:
      (avx512 ? matmul_f16_avx512 : matmul_f16_avx2)(a, n_begin, n_end);
      return StatusCode::kOk;
    case kLayoutBf16:
      (avx512 ? matmul_bf16_avx512 : matmul_bf16_avx2)(a, n_begin, n_end);
      return StatusCode::kOk;
    case kLayoutBf16Dp: matmul_bf16_dp_avx512(a, n_begin, n_end); return StatusCode::kOk;
    default: return StatusCode::kInvalidArgument;
  }
}

}  // namespace llmos::kernels::cpu
