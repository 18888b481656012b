#!/usr/bin/env bash
# Installs a built llmos into a temporary prefix and uses it the ways another project would:
# builds examples/cmake-consumer with find_package(llmos) (shared and static), compiles a C
# program with `cc $(pkg-config --cflags --libs llmos)`, and runs them on the stories260K model
# (running is skipped, building is not, when the model is absent), checking their greedy text
# against stories260K.greedy.json.
#   scripts/test-install.sh [BUILD_DIR]     (default: build, the release preset's directory)
#   LLMOS_SHARED_DIR   where models/ lives (default: ../shared beside the checkout)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
shared="${LLMOS_SHARED_DIR:-$root/../shared}"
work="$(mktemp -d "${TMPDIR:-/tmp}/llmos-install-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"

echo "== install $build into $prefix"
cmake --install "$build" --prefix "$prefix" > "$work/install.log"
libdir="$(dirname "$(find "$prefix" -name 'libllmos.so.0' | head -1)")"
for f in include/llmos/llmos.h include/llmos/llmos.hpp include/llmos/version.h; do
  [[ -f "$prefix/$f" ]] || { echo "missing $f in the installed tree" >&2; exit 1; }
done
for f in libllmos.so libllmos.so.0 libllmos.a; do
  [[ -e "$libdir/$f" ]] || { echo "missing $f in $libdir" >&2; exit 1; }
done
[[ -f "$libdir/cmake/llmos/llmosConfig.cmake" ]] || { echo "missing the CMake package" >&2; exit 1; }
[[ -f "$libdir/pkgconfig/llmos.pc" ]] || { echo "missing llmos.pc" >&2; exit 1; }
if find "$prefix/include" -name '*.h' | grep -Ev '/llmos/(llmos|version)\.h$' | grep -q .; then
  echo "internal headers were installed:" >&2
  find "$prefix/include" -name '*.h' >&2
  exit 1
fi
"$root/scripts/check-abi.sh" "$libdir/libllmos.so"

echo "== examples/cmake-consumer against the installed package"
cmake -S "$root/examples/cmake-consumer" -B "$work/consumer" -G Ninja \
      -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release > "$work/consumer-configure.log"
cmake --build "$work/consumer" -- -j"${LLMOS_JOBS:-2}" > "$work/consumer-build.log" ||
  { cat "$work/consumer-build.log" >&2; exit 1; }

echo "== a C program built with pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Werror -o "$work/pkgconfig_c" "$root/examples/cmake-consumer/main.c" \
   $(pkg-config --cflags --libs llmos)

model="$shared/models/stories260K.gguf"
expected="$shared/models/stories260K.greedy.json"
if [[ ! -f "$model" || ! -f "$expected" ]]; then
  echo "== SKIPPED running the programs: shared data not found: $model (set LLMOS_SHARED_DIR)"
  exit 0
fi

# Each program prints the prompt and its greedy continuation, which must be a prefix of the
# reference file's continuation for that prompt.
check_output() {
  python3 - "$expected" "$1" "$2" <<'PY'
import json, sys
path, name, out = sys.argv[1], sys.argv[2], sys.argv[3].rstrip("\n")
ref = next(e for e in json.load(open(path)) if e["prompt"] == "Once upon a time")
if not out.startswith(ref["prompt"]):
    sys.exit(f"{name}: the output does not start with the prompt: {out!r}")
got = out[len(ref["prompt"]):]
if len(got) < 10 or not ref["continuation"].startswith(got):
    sys.exit(f"{name}: {got!r} is not a prefix of the reference continuation")
print(f"{name}: ok ({len(got)} bytes of the reference continuation)")
PY
}

echo "== running them on $model"
for program in "$work/consumer/consumer_c" "$work/consumer/consumer_cpp" \
               "$work/consumer/consumer_c_static"; do
  check_output "$(basename "$program")" "$("$program" "$model" "Once upon a time")"
done
check_output pkgconfig_c \
  "$(LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$work/pkgconfig_c" "$model" "Once upon a time")"
echo "== install test passed"
