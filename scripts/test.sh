#!/usr/bin/env bash
# Installs what is missing, builds llmos and runs every test: the release build (with CUDA
# compiled when nvcc is present; GPU tests skip without a GPU), then the unit tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
#   LLMOS_SHARED_DIR   where models/ and vocab/ live (default: ../shared beside the checkout)
#   LLMOS_JOBS         parallel build jobs (default 2)
#   LLMOS_SKIP_ASAN=1  skip the sanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${LLMOS_JOBS:-2}"

scripts/install-deps.sh

echo "== release build and tests"
cmake --preset release
cmake --build --preset release -- -j"$jobs"
ctest --preset release -j"$jobs"

if [[ "${LLMOS_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== asan+ubsan build and tests"
  cmake --preset asan
  cmake --build --preset asan -- -j"$jobs"
  ctest --preset asan -j"$jobs"
fi
