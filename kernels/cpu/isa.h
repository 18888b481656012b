// Which x86 instruction-set level the CPU kernels run at. Detected once from CPUID and XGETBV
// (the OS must save the wide registers too); LLMOS_ISA=avx512|avx2|scalar forces a level, for
// tests and comparisons. Only files under kernels/cpu/avx512/ and kernels/cpu/avx2/ are compiled
// with ISA flags, and they are only called after this check, so the library runs on any x86-64.
#pragma once

#include <string_view>

namespace llmos::kernels::cpu {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// kAvx512 means F, BW, VL, DQ and VNNI all present; kAvx2 means AVX2, FMA and F16C.
// AVX512_BF16 (vdpbf16ps) is optional inside kAvx512: some hypervisors hide it (the development
// VM does), and the kernels that use it fall back to bit-identical FMA code without it.
const char* isa_name(Isa isa);
bool isa_supported(Isa isa);  // by this CPU and OS
Isa detect_isa();             // the best supported level
bool has_avx512_bf16();       // kAvx512 is supported and CPUID advertises AVX512_BF16
// The level in use: LLMOS_ISA when set (an unsupported or unknown value is an error naming
// it, kUnsupported / kInvalidArgument), else detect_isa(). Read once; later calls return the
// same answer.
Isa active_isa();
// Parses "avx512" | "avx2" | "scalar"; throws kInvalidArgument otherwise.
Isa parse_isa(std::string_view name);

}  // namespace llmos::kernels::cpu
