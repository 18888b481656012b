#!/usr/bin/env python3
"""Generates src/tokenizer/unicode_tables.inc: the Unicode data the byte-level BPE
pre-tokenizers need, as compact range tables.

  * kCategoryRanges: {first code point, category flags}; a range runs up to the next entry's
    first code point. The flags are llama.cpp's categories (one bit per general-category
    group: undefined Cn, number N*, letter L*, separator Z*, mark M*, punctuation P*, symbol
    S*, control Cc/Cf/Co/Cs), so that \\p{L}, \\p{N}, ... split text the way llama.cpp does.
  * kWhitespaceCodePoints: the White_Space code points (what \\s matches).
  * kLowercaseRuns: simple lowercase mapping as runs {first, last, delta, stride}: every
    stride-th code point from first to last maps to itself + delta.

The data comes from Python's unicodedata module; the `unicodedata2` backport is used when
installed, so the tables can follow the Unicode version llama.cpp's tables were made from
(15.1.0 at the time of writing) rather than the one the Python build ships. Case mappings
come from str.lower(), i.e. from the Python build's own Unicode version (stated in the header).

How to regenerate (from the repository root; CI does not run this, the .inc is committed):

    pip install unicodedata2==15.1.0
    python3 scripts/gen_unicode_tables.py > src/tokenizer/unicode_tables.inc
"""

import sys
import unicodedata

try:
    import unicodedata2 as ucd
except ImportError:  # the interpreter's own tables
    ucd = unicodedata

MAX_CODEPOINTS = 0x110000

UNDEFINED, NUMBER, LETTER, SEPARATOR, MARK, PUNCTUATION, SYMBOL, CONTROL = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80)

CATEGORY_FLAG = {
    "Cn": UNDEFINED,
    "Cc": CONTROL, "Cf": CONTROL, "Co": CONTROL, "Cs": CONTROL,
    "Lu": LETTER, "Ll": LETTER, "Lt": LETTER, "Lm": LETTER, "Lo": LETTER,
    "Mn": MARK, "Mc": MARK, "Me": MARK,
    "Nd": NUMBER, "Nl": NUMBER, "No": NUMBER,
    "Pc": PUNCTUATION, "Pd": PUNCTUATION, "Ps": PUNCTUATION, "Pe": PUNCTUATION,
    "Pi": PUNCTUATION, "Pf": PUNCTUATION, "Po": PUNCTUATION,
    "Sm": SYMBOL, "Sc": SYMBOL, "Sk": SYMBOL, "So": SYMBOL,
    "Zs": SEPARATOR, "Zl": SEPARATOR, "Zp": SEPARATOR,
}

# PropList.txt's White_Space, which unicodedata does not expose; it is stable across versions.
# The script checks it against the categories below (Z* plus the C0/C1 whitespace controls).
WHITE_SPACE = sorted([*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                      0x2028, 0x2029, 0x202F, 0x205F, 0x3000])


def category_flags():
    return [CATEGORY_FLAG[ucd.category(chr(cp))] for cp in range(MAX_CODEPOINTS)]


def flag_ranges(flags):
    ranges = [(0, flags[0])]
    for cp in range(1, MAX_CODEPOINTS):
        if flags[cp] != ranges[-1][1]:
            ranges.append((cp, flags[cp]))
    return ranges


def whitespace():
    derived = sorted([cp for cp in range(MAX_CODEPOINTS)
                      if ucd.category(chr(cp)) in ("Zs", "Zl", "Zp")]
                     + [*range(0x09, 0x0E), 0x85])
    assert derived == WHITE_SPACE, "White_Space no longer matches Z* + controls"
    return WHITE_SPACE


def lowercase_pairs():
    pairs = []
    for cp in range(MAX_CODEPOINTS):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        lower = chr(cp).lower()
        if len(lower) > 1:
            # Full lowercase differs from the simple one only for U+0130, whose simple
            # lowercase is U+0069 (the first code point of the full mapping).
            assert cp == 0x130, f"unexpected multi-character lowercase for U+{cp:04X}"
            lower = lower[0]
        if ord(lower) != cp:
            pairs.append((cp, ord(lower)))
    return pairs


def lowercase_runs(pairs):
    """Greedy runs {first, last, delta, stride} with stride 1 or 2."""
    runs = []
    i = 0
    while i < len(pairs):
        first, target = pairs[i]
        delta = target - first
        best = (first, first, delta, 1)
        for stride in (1, 2):
            j = i
            while (j + 1 < len(pairs) and pairs[j + 1][0] == pairs[j][0] + stride
                   and pairs[j + 1][1] - pairs[j + 1][0] == delta):
                j += 1
            if pairs[j][0] > best[1]:
                best = (first, pairs[j][0], delta, stride)
        runs.append(best)
        while i < len(pairs) and pairs[i][0] <= best[1]:
            i += 1
    # Check that the runs reproduce the mapping exactly.
    expanded = {}
    for first, last, delta, stride in runs:
        for cp in range(first, last + 1, stride):
            expanded[cp] = cp + delta
    assert expanded == dict(pairs)
    return runs


def emit(out, name, ctype, items, per_line):
    out.append(f"constexpr {ctype} {name}[] = {{")
    for k in range(0, len(items), per_line):
        out.append("    " + " ".join(items[k:k + per_line]))
    out.append("};")
    out.append("")


def main():
    flags = category_flags()
    ranges = flag_ranges(flags)
    spaces = whitespace()
    runs = lowercase_runs(lowercase_pairs())

    out = [
        "// Generated by scripts/gen_unicode_tables.py -- do not edit.",
        f"// Unicode {ucd.unidata_version} general categories and White_Space (module "
        f"{ucd.__name__}); simple lowercase",
        f"// mapping from Python {sys.version.split()[0]}'s str.lower() (Unicode "
        f"{unicodedata.unidata_version}).",
        f"// {len(ranges)} category ranges, {len(spaces)} whitespace code points, "
        f"{len(runs)} lowercase runs.",
        "// Included by unicode.cc, which declares UnicodeRange and LowercaseRun.",
        "",
        f'constexpr const char* kUnicodeVersion = "{ucd.unidata_version}";',
        "",
    ]
    emit(out, "kCategoryRanges", "UnicodeRange",
         [f"{{0x{cp:06X}, 0x{f:02X}}}," for cp, f in ranges], 6)
    emit(out, "kWhitespaceCodePoints", "char32_t", [f"0x{cp:04X}," for cp in spaces], 10)
    emit(out, "kLowercaseRuns", "LowercaseRun",
         [f"{{0x{a:05X}, 0x{b:05X}, {d}, {s}}}," for a, b, d, s in runs], 4)
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
