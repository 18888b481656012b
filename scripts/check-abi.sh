#!/usr/bin/env bash
# Checks that a shared libllmos exports the C API only: every defined dynamic symbol must be
# llmos_*. Usage: scripts/check-abi.sh [path/to/libllmos.so] (default: build/lib/libllmos.so).
set -euo pipefail
lib="${1:-$(dirname "$0")/../build/lib/libllmos.so}"
if [[ ! -f "$lib" ]]; then
  echo "check-abi: no library at $lib" >&2
  exit 1
fi
# The linker's own entry points, should a toolchain add them to the dynamic table.
allowed_extra='^(_init|_fini)$'
symbols=$(nm -D --defined-only "$lib" | awk '{print $NF}')
if [[ -z "$symbols" ]]; then
  echo "check-abi: $lib exports nothing" >&2
  exit 1
fi
bad=$(grep -Ev '^llmos_' <<<"$symbols" | grep -Ev "$allowed_extra" || true)
if [[ -n "$bad" ]]; then
  echo "check-abi: $lib exports symbols outside the C API:" >&2
  echo "$bad" | head -50 >&2
  exit 1
fi
for required in llmos_version llmos_last_error llmos_model_load llmos_engine_create llmos_generate \
                llmos_submit llmos_next_event llmos_cancel llmos_snapshot_save; do
  grep -qx "$required" <<<"$symbols" || { echo "check-abi: $required is not exported" >&2; exit 1; }
done
echo "check-abi: $(wc -l <<<"$symbols") symbols, all llmos_*"
