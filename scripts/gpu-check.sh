#!/usr/bin/env bash
# The one GPU check: builds llmos for sm_90 with CUDA (Release, tests and benchmarks), runs every
# CUDA test, the CUDA kernel benchmarks (GEMV/GEMM by dtype, paged attention decode/prefill, the
# device-to-device copy and cuBLAS bf16 GEMM ceilings), torch's scaled_dot_product_attention on
# the same prefill shapes, end-to-end `llmos bench --device cuda` (pp/tg) on bench-200m, and
# prints a short table last. Meant to finish in under 8 minutes on an H200.
#   usage: scripts/gpu-check.sh [BUILD_DIR]        (default: build-gpu-check)
#   OUT                 when set, logs go to $OUT/gpu-check/ (else BUILD_DIR/gpu-check-logs)
#   LLMOS_SHARED_DIR    models/ and vocab/ (default: ../shared beside the checkout)
#   JOBS                build parallelism (default: nproc)
#   GPU_CHECK_DRY_RUN=1 only check the tools and print the plan (no build, no GPU needed)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build="${1:-build-gpu-check}"
logs="${OUT:+$OUT/gpu-check}"
logs="${logs:-$build/gpu-check-logs}"
jobs="${JOBS:-$(nproc)}"
shared="${LLMOS_SHARED_DIR:-$(cd .. && pwd)/shared}"
export LLMOS_SHARED_DIR="$shared"
mkdir -p "$logs"
results="$logs/results.txt"
: > "$results"
start=$SECONDS
failures=()

say() { printf '[gpu-check %3ds] %s\n' "$((SECONDS - start))" "$*" | tee -a "$logs/summary.log"; }
note_result() { echo "RESULT $*" >> "$results"; }
# Runs a step with its output in $logs/<name>.log; a failing step is recorded, not fatal, so
# the table still prints what did run.
step() {
  local name=$1; shift
  say "$name: $*"
  if "$@" > "$logs/$name.log" 2>&1; then
    say "$name: ok"
  else
    local rc=$?
    say "$name: FAILED (exit $rc), see $logs/$name.log"; tail -n 20 "$logs/$name.log" || true
    failures+=("$name")
    return 0
  fi
}

nvcc="${CUDACXX:-}"
[[ -n "$nvcc" ]] || nvcc=$(command -v nvcc || true)
[[ -n "$nvcc" ]] || { [[ -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc; } || true
[[ -n "$nvcc" ]] || { echo "gpu-check: nvcc not found (set CUDACXX or install the CUDA toolkit)" >&2; exit 2; }
command -v cmake >/dev/null || { echo "gpu-check: cmake not found" >&2; exit 2; }
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
say "nvcc: $("$nvcc" --version | tail -n 1)"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi -L | tee -a "$logs/summary.log" || true
else
  say "nvidia-smi not found: the GPU steps will report that no device is present"
fi
[[ -d "$shared" ]] || say "shared data not found at $shared: model tests skip, e2e uses a built-in vocabulary"

if [[ "${GPU_CHECK_DRY_RUN:-0}" == 1 ]]; then
  say "dry run: would configure $build (sm_90, Release, tests + benchmarks), build with -j$jobs,"
  say "  run ctest -R 'Cuda|DevicePool', cuda_kernels_bench, torch SDPA, llmos bench --device cuda"
  exit 0
fi

# --- build -------------------------------------------------------------------------------------
cmake_args=(-S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DLLMOS_CUDA=ON
            -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES=90 -DLLMOS_BUILD_BENCHMARKS=ON)
if ! cmake "${cmake_args[@]}" -DLLMOS_BUILD_TESTS=ON > "$logs/configure.log" 2>&1; then
  say "configure with tests failed (GoogleTest/Eigen missing?); retrying without tests"
  cmake "${cmake_args[@]}" -DLLMOS_BUILD_TESTS=OFF >> "$logs/configure.log" 2>&1 ||
    { tail -n 30 "$logs/configure.log"; echo "gpu-check: configure failed" >&2; exit 1; }
  failures+=("tests-not-built")
fi
targets=(llmos_cli cuda_kernels_bench)
have_tests=0
if [[ -f "$build/CTestTestfile.cmake" ]] && grep -q cuda_kernels_test "$build/build.ninja" "$build/Makefile" 2>/dev/null; then
  targets+=(cuda_host_test cuda_kernels_test cuda_model_test cuda_gemv_q8_test
             cuda_attention_split_test cuda_kv_transfer_test cuda_attention_prefill_test
             cuda_gemv_q8k_test cuda_fused_matmul_test)
  have_tests=1
fi
say "building ${targets[*]} with $jobs jobs"
cmake --build "$build" -j "$jobs" --target "${targets[@]}" > "$logs/build.log" 2>&1 ||
  { tail -n 40 "$logs/build.log"; echo "gpu-check: build failed" >&2; exit 1; }
say "build: ok"
llmos="$build/bin/llmos"

# --- tests -------------------------------------------------------------------------------------
if [[ $have_tests == 1 ]]; then
  step tests ctest --test-dir "$build" -R 'Cuda|DevicePool' --output-on-failure --timeout 300
  if grep -q "no CUDA device" "$logs/tests.log" && nvidia-smi -L >/dev/null 2>&1; then
    say "CUDA tests skipped for want of a device although nvidia-smi lists one: see $logs/tests.log"
    failures+=("tests-skipped")
  elif grep -q "Skipped" "$logs/tests.log"; then
    say "WARNING: some CUDA tests skipped (no device? no shared model?): see $logs/tests.log"
  fi
  summary=$(grep -E "tests passed|tests failed" "$logs/tests.log" | tail -n 1 || true)
  note_result "tests ${summary:-see tests.log}"
fi

# --- kernel benchmarks and ceilings ------------------------------------------------------------
step kernels_bench "$build/bin/cuda_kernels_bench"
grep '^RESULT' "$logs/kernels_bench.log" >> "$results" || true

# --- torch SDPA on the prefill shapes of cuda_kernels_bench ------------------------------------
if command -v python3 >/dev/null && python3 -c 'import torch' 2>/dev/null; then
  cat > "$logs/sdpa.py" <<'PY'
import torch, torch.nn.functional as F
assert torch.cuda.is_available(), "torch sees no CUDA device"
heads, kv_heads, hd = 32, 8, 128
for name, b, t in (("prefill_b1_t2048", 1, 2048), ("prefill_b4_t512", 4, 512)):
    q = torch.randn(b, heads, t, hd, device="cuda", dtype=torch.float16)
    # GQA expanded to full heads: the kernel SDPA picks then reads each KV head once per query head.
    k = torch.randn(b, kv_heads, t, hd, device="cuda", dtype=torch.float16).repeat_interleave(heads // kv_heads, 1)
    v = torch.randn_like(k)
    for _ in range(3): F.scaled_dot_product_attention(q, k, v, is_causal=True)
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(10): F.scaled_dot_product_attention(q, k, v, is_causal=True)
    e.record(); torch.cuda.synchronize()
    ms = s.elapsed_time(e) / 10
    flops = 4.0 * b * heads * hd * t * t / 2
    print(f"RESULT torch_sdpa_{name} {flops / ms / 1e9:.3f} TFLOP/s")
    print(f"RESULT torch_sdpa_{name}_ms {ms:.3f} ms")
PY
  step torch_sdpa python3 "$logs/sdpa.py"
  grep '^RESULT' "$logs/torch_sdpa.log" >> "$results" || true
else
  say "python3 with torch not found: SDPA comparison skipped"
fi

# --- end to end: llmos bench on bench-200m -----------------------------------------------------
models="$build/bench-models"
mkdir -p "$models"
vocab="$shared/vocab/ggml-vocab-llama-spm.gguf"
vocab_args=()
[[ -f "$vocab" ]] && vocab_args=(--vocab-from "$vocab")
if [[ ! -f "$models/bench-200m-f16.gguf" ]]; then
  step make_model "$llmos" make-model --preset bench-200m "${vocab_args[@]}" --seed 1 -o "$models/bench-200m-f16.gguf"
fi
if [[ -f "$models/bench-200m-f16.gguf" && ! -f "$models/bench-200m-q4_0.gguf" ]]; then
  step quantize "$llmos" quantize --pure "$models/bench-200m-f16.gguf" "$models/bench-200m-q4_0.gguf" Q4_0
fi
for type in q4_0 f16; do
  f="$models/bench-200m-$type.gguf"
  [[ -f "$f" ]] || continue
  step "e2e_$type" "$llmos" bench -m "$f" --device cuda -p 512 -n 128 -r 3
  # Weight bytes / copy bandwidth: the decode speed limit the issue compares against.
  note_result "e2e_${type}_file_bytes $(stat -c %s "$f") bytes"
done

# --- table -------------------------------------------------------------------------------------
say "done in $((SECONDS - start)) s; logs in $logs"
echo
echo "================ llmos gpu-check: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1) ================"
awk '$1 == "RESULT" { v = $3; u = ""; for (i = 4; i <= NF; ++i) u = u " " $i; printf "  %-44s %12s %s\n", $2, v, u }' "$results"
for type in q4_0 f16; do
  [[ -f "$logs/e2e_$type.log" ]] || continue
  echo "  llmos bench bench-200m $type (--device cuda):"
  grep -E "pp|tg" "$logs/e2e_$type.log" | tail -n 4 | sed 's/^/    /'
done
if ((${#failures[@]})); then
  echo "  FAILED steps: ${failures[*]}"
  exit 1
fi
