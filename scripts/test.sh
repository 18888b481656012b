#!/usr/bin/env bash
# Installs what is missing, builds llmos and runs every test: the release build (with CUDA
# compiled when nvcc is present; GPU tests skip without a GPU) and its installed tree used by
# another CMake project and a pkg-config build, the Python package (`pip install .` into a
# virtual environment, its pytest suite and examples), then the unit tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer, then the multi-threaded layers' tests (engine,
# scheduler, KV) under ThreadSanitizer.
#   LLMOS_SHARED_DIR   where models/ and vocab/ live (default: ../shared beside the checkout)
#   LLMOS_JOBS         parallel build jobs (default 2)
#   LLMOS_SKIP_PYTHON=1 skip the Python package
#   LLMOS_SKIP_ASAN=1  skip the address/undefined sanitizer pass
#   LLMOS_SKIP_TSAN=1  skip the thread sanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${LLMOS_JOBS:-2}"

scripts/install-deps.sh

echo "== release build and tests"
cmake --preset release
cmake --build --preset release -- -j"$jobs"
ctest --preset release -j"$jobs"

echo "== install: find_package(llmos) and pkg-config consumers of the installed tree"
scripts/test-install.sh build

if [[ "${LLMOS_SKIP_PYTHON:-0}" != 1 ]]; then
  echo "== python: pip install . into a venv, pytest, examples"
  scripts/test-python.sh
fi

if [[ "${LLMOS_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== asan+ubsan build and tests"
  cmake --preset asan
  cmake --build --preset asan -- -j"$jobs"
  ctest --preset asan -j"$jobs"
fi

if [[ "${LLMOS_SKIP_TSAN:-0}" != 1 ]]; then
  echo "== tsan build and the engine, scheduler and KV tests"
  cmake --preset tsan
  # Only the test executables of the layers that share state between threads, and the thread
  # pool under them (named after
  # their files); the tsan test preset selects their tests by name.
  targets=(thread_pool_test)
  for src in tests/engine/*_test.cc tests/sched/*_test.cc tests/kv/*_test.cc; do
    targets+=("$(basename "$src" .cc)")
  done
  cmake --build --preset tsan --target "${targets[@]}" -- -j"$jobs"
  ctest --preset tsan -j"$jobs"
fi
