#!/usr/bin/env bash
# The main job: install what is missing, build llmos, and generate text.
#   scripts/run.sh                       embedded default model (seeded random weights)
#   scripts/run.sh --model PATH.gguf     a real GGUF model (or set LLMOS_MODEL)
#   scripts/run.sh --model M -- ARGS...  extra arguments for `llmos generate`
set -euo pipefail
cd "$(dirname "$0")/.."

model="${LLMOS_MODEL:-}"
prompt="Once upon a time"
extra=()
while (($#)); do
  case "$1" in
    --model|-m) model="$2"; shift 2 ;;
    --model=*) model="${1#--model=}"; shift ;;
    --prompt|-p) prompt="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target llmos_cli -- -j"${LLMOS_JOBS:-2}"

args=(generate -p "$prompt" -n 64 --temp 0)
[[ -n "$model" ]] && args+=(-m "$model")
exec build/bin/llmos "${args[@]}" "${extra[@]}"
