// Included first by every reference (de)quantization source: forbids the compiler to fuse a
// multiply and an add into one FMA. The GGUF reference rounds after every operation, and a fused
// multiply-add (which GCC emits by default whenever the target has FMA, e.g. under
// -march=native) rounds once, so the chosen codes and scales would drift from the reference by
// the odd last bit, and the output would stop being byte-identical.
#pragma once

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
