#!/usr/bin/env bash
# Builds and installs the llmos Python package into a virtual environment with `pip install .`
# (scikit-build-core + pybind11 fetched from PyPI by pip's build isolation), then runs the
# pytest suite (bindings/python/tests) and the Python examples (examples/python) on the
# stories260K model.
#   LLMOS_SHARED_DIR     where models/ lives (default: ../shared beside the checkout)
#   LLMOS_JOBS           parallel compile jobs (default 2)
#   LLMOS_PYTHON         the interpreter to build for (default python3)
#   LLMOS_PY_BUILD_DIR   venv + CMake build tree (default build-python); kept between runs so a
#                        second run only rebuilds what changed. Remove it for a clean build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs="${LLMOS_JOBS:-2}"
python="${LLMOS_PYTHON:-python3}"
build_dir="${LLMOS_PY_BUILD_DIR:-build-python}"
case "$build_dir" in /*) ;; *) build_dir="$root/$build_dir" ;; esac

# What pip needs from the system: an interpreter with venv/ensurepip, its C headers and a C++
# compiler (CMake and Ninja come from PyPI when the system has none). Debian splits the first
# two into python3-venv and python3-dev.
missing=()
if ! command -v "$python" >/dev/null; then
  missing+=(python3 python3-venv python3-dev)
else
  "$python" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  "$python" -c 'import os, sysconfig; import sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' ||
    missing+=(python3-dev)
fi
command -v c++ >/dev/null || command -v g++ >/dev/null || missing+=(g++)
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "llmos: missing packages: ${missing[*]}" >&2
    echo "llmos: install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "llmos: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

venv="$build_dir/venv"
if [[ ! -x "$venv/bin/python" ]]; then
  echo "== creating $venv"
  mkdir -p "$build_dir"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
echo "== pip install . (CMake build in $build_dir/wheel, $jobs jobs)"
start=$(date +%s%N)
# build-dir keeps the CMake tree between runs, so a second run rebuilds only what changed
# (ccache, used by CMakeLists.txt when installed, helps after the tree is removed). Warnings
# are errors here, as in the other builds (pyproject.toml turns that off for users' installs).
CMAKE_BUILD_PARALLEL_LEVEL="$jobs" "$py" -m pip install -q . -C build-dir="$build_dir/wheel" \
  -C cmake.define.LLMOS_WERROR=ON
end=$(date +%s%N)
ms=$(((end - start) / 1000000))
printf 'llmos: pip install . took %d.%01d s\n' $((ms / 1000)) $((ms % 1000 / 100))
"$py" -m pip install -q pytest

# Outside the checkout, so `import llmos` is the installed package.
cd "$build_dir"
"$py" -c 'import llmos; print("llmos", llmos.__version__, "from", llmos.__file__)'

echo "== pytest bindings/python/tests"
"$py" -m pytest -q -p no:cacheprovider "$root/bindings/python/tests"

echo "== examples/python"
shared="${LLMOS_SHARED_DIR:-$root/../shared}"
model="$shared/models/stories260K.gguf"
if [[ ! -f "$model" ]]; then
  echo "llmos: examples skipped: shared model not found: $model (set LLMOS_SHARED_DIR)"
  exit 0
fi
for example in "$root"/examples/python/*.py; do
  echo "-- $(basename "$example")"
  "$py" "$example" "$model"
done
