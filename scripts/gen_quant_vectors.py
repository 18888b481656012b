#!/usr/bin/env python3
"""Generates tests/quant/quant_vectors.inc: known-answer vectors for llmos's reference
(de)quantization (src/quant), produced by implementations independent of llmos.

  * Dequantization: seeded random blocks (random payload bytes, f16 scale fields set to sane
    finite values) decoded by the `gguf` package (gguf.quants.dequantize). For every block
    format the script also checks that ggml's own dequantize_row_* gives the same bits.
  * Quantization: seeded random non-zero floats (with a few outliers) encoded by
    - the `gguf` package for the formats it can quantize (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
      Q8_0); the script checks that ggml's quantize_row_*_ref agrees byte for byte;
    - ggml's reference quantizers quantize_row_*_ref for Q2_K ... Q6_K, which gguf cannot
      quantize.
  * Many-block checks: for every dtype, HASH_ELEMENTS values of inputs that the test rebuilds
    itself from a counter-based generator (pattern_floats / pattern_bytes below; the C++ twin
    is in tests/quant/quant_vectors_test.cc and must stay in step), stored only as FNV-1a
    hashes of the reference output. This covers thousands of blocks in a few bytes.
  ggml is loaded through ctypes from the prebuilt library in the PyPI package
  `libggml-python` (import name `libggml`).

How to regenerate (from the repository root; CI does not run this, the .inc is committed):

    pip install numpy gguf libggml-python
    python3 scripts/gen_quant_vectors.py > tests/quant/quant_vectors.inc

The output is deterministic for given package versions (vectors made with gguf 0.19.0 and
libggml-python 0.20.2.post1).
"""

import ctypes
import os
import sys

import numpy as np

try:
    from gguf import GGMLQuantizationType as T
    from gguf.quants import dequantize as gguf_dequantize
    from gguf.quants import quantize as gguf_quantize
except ImportError:
    sys.exit("gen_quant_vectors.py needs the `gguf` package: pip install gguf")

try:
    import libggml
except ImportError:
    sys.exit("gen_quant_vectors.py needs ggml's reference quantizers: pip install libggml-python")

# name, gguf type, elements per block, bytes per block, offsets of f16 scale fields.
FORMATS = {
    "Q4_0": (T.Q4_0, 32, 18, [0]),
    "Q4_1": (T.Q4_1, 32, 20, [0, 2]),
    "Q5_0": (T.Q5_0, 32, 22, [0]),
    "Q5_1": (T.Q5_1, 32, 24, [0, 2]),
    "Q8_0": (T.Q8_0, 32, 34, [0]),
    "Q2_K": (T.Q2_K, 256, 84, [80, 82]),
    "Q3_K": (T.Q3_K, 256, 110, [108]),
    "Q4_K": (T.Q4_K, 256, 144, [0, 2]),
    "Q5_K": (T.Q5_K, 256, 176, [0, 2]),
    "Q6_K": (T.Q6_K, 256, 210, [208]),
}
GGUF_QUANTIZES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]
GGML_ONLY_QUANTIZES = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]


def ggml_name(name):
    """ggml's spelling in symbol names: q4_0, q4_K."""
    return name.lower().replace("_k", "_K")


def load_ggml():
    path = os.path.join(os.path.dirname(libggml.__file__), "lib64", "libggml-base.so")
    lib = ctypes.CDLL(path)
    for name in FORMATS:
        low = ggml_name(name)
        q = getattr(lib, f"quantize_row_{low}_ref")
        q.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        q.restype = None
        dq = getattr(lib, f"dequantize_row_{low}")
        dq.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        dq.restype = None
    return lib


def ggml_quantize(lib, name, x):
    _, bs, bb, _ = FORMATS[name]
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.zeros(x.size // bs * bb, dtype=np.uint8)
    getattr(lib, f"quantize_row_{ggml_name(name)}_ref")(x.ctypes.data, out.ctypes.data, x.size)
    return out


def ggml_dequantize(lib, name, blocks):
    _, bs, bb, _ = FORMATS[name]
    blocks = np.ascontiguousarray(blocks, dtype=np.uint8)
    out = np.zeros(blocks.size // bb * bs, dtype=np.float32)
    getattr(lib, f"dequantize_row_{ggml_name(name)}")(blocks.ctypes.data, out.ctypes.data, out.size)
    return out


def random_scale_f16(rng, count):
    """Finite, non-subnormal-heavy f16 scales of either sign spanning a few decades."""
    mag = 10.0 ** rng.uniform(-3.0, 0.5, size=count)
    sign = np.where(rng.random(count) < 0.5, -1.0, 1.0)
    return (sign * mag).astype(np.float16)


def random_blocks(rng, name, nblocks):
    _, _, bb, f16_offsets = FORMATS[name]
    blocks = rng.integers(0, 256, size=(nblocks, bb), dtype=np.uint8)
    for off in f16_offsets:
        blocks[:, off:off + 2] = random_scale_f16(rng, nblocks).view(np.uint8).reshape(nblocks, 2)
    return blocks


def quant_inputs(rng, block_size):
    """Blocks of non-zero floats with different shapes: gaussian with a few outliers,
    all-positive with an offset, mixed signs at a tiny scale, and a heavy-tailed one."""
    n = block_size
    gauss = rng.normal(0.0, 1.0, n)
    idx = rng.choice(n, size=max(2, n // 64), replace=False)
    gauss[idx] *= rng.uniform(6.0, 12.0, idx.size)
    positive = rng.uniform(0.5, 2.0, n)
    tiny = rng.normal(0.0, 1e-3, n)
    heavy = rng.standard_t(2.0, n) * 0.05
    x = np.concatenate([gauss, positive, tiny, heavy]).astype(np.float32)
    x[x == 0] = np.float32(1e-3)
    return x


def f32_bits(values):
    return np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)


# --- the counter-based input generator shared with the C++ test ------------------------------
HASH_ELEMENTS = 512 * 256
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(z):
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def pattern_keys(stream, nblocks, block_size, k):
    """key(b, e, k) = ((stream * 1000003 + b) * 1024 + e) * 4 + k; e = 1023 is per block."""
    b = np.arange(nblocks, dtype=np.uint64).reshape(-1, 1)
    e = np.arange(block_size, dtype=np.uint64).reshape(1, -1)
    base = (np.uint64(stream) * np.uint64(1000003) + b) * np.uint64(1024)
    return (base + e) * np.uint64(4) + np.uint64(k)


def unit_float(h):
    """Top 24 bits of h as a float32 in [0, 1) (exact)."""
    return (h >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)


def pattern_floats(stream, nblocks, block_size):
    """Float32 inputs, block kind by b % 5: 0 bell-shaped, 1 all positive, 2 bell-shaped with
    outliers, 3 tiny values with a few large ones, 4 first 64 elements zero then bell-shaped.
    Every operation is a float32 operation in a fixed order, so C++ reproduces the bits."""
    h = [splitmix64(pattern_keys(stream, nblocks, block_size, k)) for k in range(4)]
    hb = splitmix64(pattern_keys(stream, nblocks, 1024, 3)[:, 1023:1024])
    scale = np.ldexp(np.float32(1.0), ((hb >> np.uint64(8)) % np.uint64(16)).astype(np.int32) - 10)
    scale = scale.astype(np.float32)
    u0, u1, u2 = unit_float(h[0]), unit_float(h[1]), unit_float(h[2])
    bell = ((u0 + u1) + u2) - np.float32(1.5)
    kind = (np.arange(nblocks) % 5).reshape(-1, 1)
    big = (h[3] & np.uint64(63)) == np.uint64(0)
    x = bell * scale
    x = np.where(kind == 1, u0 * scale + scale, x)
    x = np.where((kind == 2) & big, bell * scale * np.float32(8.0), x)
    x = np.where((kind == 3) & ~big, bell * scale * np.float32(2.0 ** -12), x)
    e = np.arange(block_size).reshape(1, -1)
    x = np.where((kind == 4) & (e < 64), np.float32(0.0), x)
    return x.astype(np.float32).ravel()


def pattern_bytes(stream, nblocks, block_bytes, f16_offsets, nan_free16=None):
    """Random payload bytes; f16 scale fields get sign, exponent 5..20 (2^-10..2^5) and a random
    mantissa; for plain 16-bit types (nan_free16 = (exp_mask, man_mask)) NaN patterns are
    turned into subnormals by clearing the exponent."""
    h = splitmix64(pattern_keys(stream, nblocks, block_bytes, 0))
    data = (h >> np.uint64(56)).astype(np.uint8)
    hs = splitmix64(pattern_keys(stream, nblocks, len(f16_offsets), 1))
    for i, off in enumerate(f16_offsets):
        v = hs[:, i]
        sign = (v >> np.uint64(63)) << np.uint64(15)
        exp = (np.uint64(5) + ((v >> np.uint64(20)) % np.uint64(16))) << np.uint64(10)
        man = v & np.uint64(0x3FF)
        bits = (sign | exp | man).astype(np.uint16)
        data[:, off:off + 2] = bits.view(np.uint8).reshape(-1, 2)
    data = data.ravel()
    if nan_free16 is not None:
        exp_mask, man_mask = nan_free16
        w = data.view(np.uint16)
        nan = ((w & exp_mask) == exp_mask) & ((w & man_mask) != 0)
        w[nan] &= np.uint16(~exp_mask & 0xFFFF)
    return data


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for byte in np.asarray(data).view(np.uint8).ravel().tobytes():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def fmt_array(ctype, name, values, per_line, fmt):
    lines = [f"const {ctype} {name}[] = {{"]
    vals = [fmt(v) for v in values]
    for i in range(0, len(vals), per_line):
        lines.append("    " + ", ".join(vals[i:i + per_line]) + ",")
    lines.append("};")
    return "\n".join(lines)


def bytes_array(name, data):
    return fmt_array("uint8_t", name, np.asarray(data, dtype=np.uint8).ravel(), 16,
                     lambda v: f"0x{int(v):02x}")


def words_array(name, data):
    return fmt_array("uint32_t", name, np.asarray(data, dtype=np.uint32).ravel(), 8,
                     lambda v: f"0x{int(v):08x}u")


def dtype_enum(name):
    return "llmos::DType::k" + name


def main():
    lib = load_ggml()
    rng = np.random.default_rng(20240611)
    out = []
    dequant_rows = []
    quant_rows = []

    # --- dequantization vectors -------------------------------------------------------------
    for name in FORMATS:
        qtype = FORMATS[name][0]
        blocks = random_blocks(rng, name, 2)
        expected = gguf_dequantize(blocks.ravel(), qtype).astype(np.float32).ravel()
        theirs = ggml_dequantize(lib, name, blocks)
        if not np.array_equal(f32_bits(expected), f32_bits(theirs)):
            sys.exit(f"gguf and ggml disagree on dequantizing {name}")
        out.append(bytes_array(f"kDequant{name}Bytes", blocks))
        out.append(words_array(f"kDequant{name}Expected", f32_bits(expected)))
        dequant_rows.append((name, f"kDequant{name}Bytes", f"kDequant{name}Expected"))

    # f16 / bf16: random bit patterns (no NaN: NaN payloads are covered by the exhaustive test).
    for name, qtype in (("F16", T.F16), ("BF16", T.BF16)):
        bits = rng.integers(0, 1 << 16, size=96, dtype=np.uint32).astype(np.uint16)
        exp_mask = 0x7C00 if name == "F16" else 0x7F80
        man_mask = 0x03FF if name == "F16" else 0x007F
        nan = ((bits & exp_mask) == exp_mask) & ((bits & man_mask) != 0)
        bits[nan] &= np.uint16(~exp_mask & 0xFFFF)
        expected = gguf_dequantize(bits.view(np.uint8), qtype).astype(np.float32).ravel()
        out.append(bytes_array(f"kDequant{name}Bytes", bits.view(np.uint8)))
        out.append(words_array(f"kDequant{name}Expected", f32_bits(expected)))
        dequant_rows.append((name, f"kDequant{name}Bytes", f"kDequant{name}Expected"))

    # --- quantization vectors ---------------------------------------------------------------
    for name in GGUF_QUANTIZES + GGML_ONLY_QUANTIZES:
        qtype, bs, _, _ = FORMATS[name]
        x = quant_inputs(rng, bs)
        ggml_bytes = ggml_quantize(lib, name, x)
        if name in GGUF_QUANTIZES:
            expected = np.asarray(gguf_quantize(x, qtype), dtype=np.uint8).ravel()
            if not np.array_equal(expected, ggml_bytes):
                sys.exit(f"gguf and ggml disagree on quantizing {name}")
            source = "gguf.quants.quantize, checked against ggml quantize_row_ref"
        else:
            expected = ggml_bytes
            source = "ggml quantize_row_ref"
        out.append(words_array(f"kQuant{name}Input", f32_bits(x)))
        out.append(bytes_array(f"kQuant{name}Expected", expected))
        quant_rows.append((name, f"kQuant{name}Input", f"kQuant{name}Expected", source))

    # f16 / bf16: floats over a wide exponent range (subnormal results, overflow to inf) plus
    # values that sit exactly on rounding ties.
    for name, qtype, keep_bits in (("F16", T.F16, 13), ("BF16", T.BF16, 16)):
        mag = 2.0 ** rng.uniform(-27.0, 17.0, size=64)
        x = (np.where(rng.random(64) < 0.5, -1.0, 1.0) * mag).astype(np.float32)
        ties = f32_bits(x[:16]).copy()
        ties &= np.uint32((0xFFFFFFFF << keep_bits) & 0xFFFFFFFF)
        ties |= np.uint32(1 << (keep_bits - 1))  # exactly halfway between two neighbours
        x = np.concatenate([x, ties.view(np.float32)])
        if name == "F16":
            expected = x.astype(np.float16).view(np.uint8)
        else:
            expected = np.asarray(gguf_quantize(x, qtype)).view(np.uint8)
        out.append(words_array(f"kQuant{name}Input", f32_bits(x)))
        out.append(bytes_array(f"kQuant{name}Expected", expected.ravel()))
        quant_rows.append((name, f"kQuant{name}Input", f"kQuant{name}Expected",
                           "numpy astype(float16)" if name == "F16" else "gguf.quants.quantize"))

    # --- many-block hashed checks -------------------------------------------------------------
    hash_rows = []
    plain = {"F16": (T.F16, 1, 2, [], (0x7C00, 0x03FF)),
             "BF16": (T.BF16, 1, 2, [], (0x7F80, 0x007F))}
    for stream, name in enumerate(list(FORMATS) + list(plain), start=1):
        qtype, bs, bb, offs, nan_masks = (*FORMATS[name], None) if name in FORMATS else plain[name]
        # HASH_ELEMENTS values per dtype; the input pattern works in blocks of 32 for the legacy
        # formats and 256 otherwise.
        nblocks = HASH_ELEMENTS // bs
        raw = pattern_bytes(stream, nblocks, bb, offs, nan_masks)
        deq = gguf_dequantize(raw, qtype).astype(np.float32).ravel()
        if name in FORMATS and not np.array_equal(f32_bits(deq),
                                                  f32_bits(ggml_dequantize(lib, name, raw))):
            sys.exit(f"gguf and ggml disagree on dequantizing {name} (hashed blocks)")
        pattern_block = 32 if bs == 32 else 256
        x = pattern_floats(stream, HASH_ELEMENTS // pattern_block, pattern_block)
        if name in FORMATS:
            q = ggml_quantize(lib, name, x)
            if name in GGUF_QUANTIZES:
                theirs = np.asarray(gguf_quantize(x, qtype)).ravel()
                if not np.array_equal(theirs, q):
                    sys.exit(f"gguf and ggml disagree on quantizing {name} (hashed blocks)")
        elif name == "F16":
            q = x.astype(np.float16).view(np.uint8)
        else:
            q = np.asarray(gguf_quantize(x, qtype)).view(np.uint8)
        hash_rows.append((name, stream, fnv1a64(deq.view(np.uint32)), fnv1a64(q)))

    print("// Generated by scripts/gen_quant_vectors.py -- do not edit; see that script for how to")
    print("// regenerate. Known-answer vectors from the gguf Python package and ggml's reference")
    print("// quantizers (independent of llmos). Included by tests/quant/quant_vectors_test.cc.")
    print("// NOLINTBEGIN")
    print("#pragma once\n")
    print("#include <cstddef>\n#include <cstdint>\n\n#include \"core/dtype.h\"\n")
    print("namespace llmos::test_vectors {\n")
    print("\n\n".join(out))
    print()
    print("struct DequantVector {\n  DType dtype;\n  const uint8_t* bytes;\n  size_t num_bytes;\n"
          "  const uint32_t* expected_bits;\n  size_t n;\n};\n")
    print("struct QuantizeVector {\n  DType dtype;\n  const uint32_t* input_bits;\n  size_t n;\n"
          "  const uint8_t* expected;\n  size_t num_bytes;\n  const char* source;\n};\n")
    print("const DequantVector kDequantVectors[] = {")
    for name, b, e in dequant_rows:
        print(f"    {{{dtype_enum(name).replace('llmos::', '')}, {b}, sizeof({b}), {e}, "
              f"sizeof({e}) / sizeof({e}[0])}},")
    print("};\n")
    print("const QuantizeVector kQuantizeVectors[] = {")
    for name, i, e, src in quant_rows:
        print(f"    {{{dtype_enum(name).replace('llmos::', '')}, {i}, "
              f"sizeof({i}) / sizeof({i}[0]), {e}, sizeof({e}), \"{src}\"}},")
    print("};\n")
    print("// Hashed checks: `stream` seeds pattern_bytes/pattern_floats; the hashes are FNV-1a 64")
    print("// of the reference's dequantized float bits and quantized bytes.")
    print(f"constexpr int64_t kHashElements = {HASH_ELEMENTS};\n")
    print("struct HashedVector {\n  DType dtype;\n  uint64_t stream;\n  uint64_t dequant_hash;\n"
          "  uint64_t quant_hash;\n};\n")
    print("const HashedVector kHashedVectors[] = {")
    for name, stream, hd, hq in hash_rows:
        print(f"    {{DType::k{name}, {stream}, 0x{hd:016x}u, 0x{hq:016x}u}},")
    print("};\n")
    print("}  // namespace llmos::test_vectors")
    print("// NOLINTEND")


if __name__ == "__main__":
    main()
