#!/usr/bin/env bash
# Makes the CPU benchmark model files reproducibly: bench-200m (llama, dim 1024, 12 layers,
# 16 heads / 4 KV heads, FFN 2816, the Llama-2 SentencePiece vocabulary) with seeded random
# F16 weights, then quantized with llmos quantize to Q8_0, Q4_0 and Q4_K (pure, so every
# matrix has that type).
#   usage: scripts/bench-model.sh [OUT_DIR]      (default: build/bench-models)
#   LLMOS_SHARED_DIR   where vocab/ lives (default: ../shared beside the checkout)
#   LLMOS_BIN          the llmos program (default: build/bin/llmos; e.g. another build tree's)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-build/bench-models}"
shared="${LLMOS_SHARED_DIR:-$(cd .. && pwd)/shared}"
vocab="$shared/vocab/ggml-vocab-llama-spm.gguf"
llmos="${LLMOS_BIN:-build/bin/llmos}"
[[ -x "$llmos" ]] || { echo "$llmos not found: build llmos first (cmake --preset release && cmake --build --preset release) or set LLMOS_BIN" >&2; exit 1; }
[[ -f "$vocab" ]] || { echo "missing $vocab (set LLMOS_SHARED_DIR)" >&2; exit 1; }
mkdir -p "$out"
if [[ ! -f "$out/bench-200m-f16.gguf" ]]; then
  "$llmos" make-model --preset bench-200m --vocab-from "$vocab" --seed 1 -o "$out/bench-200m-f16.gguf"
fi
for type in Q8_0 Q4_0 Q4_K; do
  f="$out/bench-200m-$(echo "$type" | tr 'A-Z' 'a-z').gguf"
  [[ -f "$f" ]] || "$llmos" quantize --pure "$out/bench-200m-f16.gguf" "$f" "$type" >/dev/null
done
ls -l "$out"
