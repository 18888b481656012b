#include "kernels/cpu/isa.h"

#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace llmos::kernels::cpu {
namespace {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false;
  bool os_ymm = false, os_zmm = false;
};

uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

CpuFeatures read_features() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1;
  f.fma = (c >> 12) & 1;
  f.f16c = (c >> 29) & 1;
  if (osxsave) {
    const uint64_t xcr0 = xgetbv0();
    f.os_ymm = (xcr0 & 0x6) == 0x6;              // SSE + AVX state
    f.os_zmm = f.os_ymm && (xcr0 & 0xE0) == 0xE0;  // opmask + ZMM state
  }
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = (b >> 5) & 1;
  f.avx512f = (b >> 16) & 1;
  f.avx512dq = (b >> 17) & 1;
  f.avx512bw = (b >> 30) & 1;
  f.avx512vl = (b >> 31) & 1;
  f.avx512vnni = (c >> 11) & 1;
  __cpuid_count(7, 1, a, b, c, d);
  f.avx512bf16 = (a >> 5) & 1;
  return f;
}

const CpuFeatures& features() {
  static const CpuFeatures f = read_features();
  return f;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "unknown";
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = features();
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return f.os_ymm && f.avx2 && f.fma && f.f16c;
    case Isa::kAvx512:
      return isa_supported(Isa::kAvx2) && f.os_zmm && f.avx512f && f.avx512bw && f.avx512vl &&
             f.avx512dq && f.avx512vnni;
  }
  return false;
}

bool has_avx512_bf16() { return isa_supported(Isa::kAvx512) && features().avx512bf16; }

Isa detect_isa() {
  if (isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

Isa parse_isa(std::string_view name) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (name == isa_name(isa)) return isa;
  }
  throw_error(StatusCode::kInvalidArgument, "LLMOS_ISA: unknown instruction set '",
              std::string(name), "' (expected avx512, avx2 or scalar)");
}

Isa active_isa() {
  static const Isa isa = [] {
    const char* forced = std::getenv("LLMOS_ISA");
    if (forced == nullptr || *forced == '\0') return detect_isa();
    const Isa want = parse_isa(forced);
    if (!isa_supported(want)) {
      throw_error(StatusCode::kUnsupported, "LLMOS_ISA=", forced,
                  ": this CPU does not support it (best available: ", isa_name(detect_isa()), ")");
    }
    return want;
  }();
  return isa;
}

}  // namespace llmos::kernels::cpu
