#!/usr/bin/env bash
# Fails when an object compiled with ISA flags (kernels/cpu/avx512/, kernels/cpu/avx2/) defines
# a weak or unique symbol. Such a symbol is an inline function (a std:: template, a header
# helper) that every user of it also emits; the linker keeps one copy, possibly the AVX-512
# one, which generic code would then run on a CPU without AVX-512.
#   usage: check-isa-objects.sh 'obj1;obj2;...' (the library's object list; others are ignored)
set -euo pipefail
IFS=';' read -r -a objects <<< "$1"
checked=0 bad=0
for o in "${objects[@]}"; do
  case "$o" in */kernels/cpu/avx512/*|*/kernels/cpu/avx2/*) ;; *) continue ;; esac
  checked=$((checked + 1))
  # DW.ref.__gxx_personality_v0 is the exception-handling personality pointer the compiler
  # emits as a weak data object in any file with unwinding code: data, not instructions.
  weak=$(nm -C --defined-only "$o" | awk '$2 ~ /^[WVu]$/ && $3 !~ /^DW\.ref\./' || true)
  if [[ -n "$weak" ]]; then
    echo "$o defines weak symbols (inline code compiled with ISA flags):" >&2
    echo "$weak" >&2
    bad=1
  fi
done
if ((checked == 0)); then
  echo "no kernels/cpu/avx512 or avx2 objects in the list: nothing was checked" >&2
  exit 1
fi
if ((bad)); then
  echo "checked $checked ISA objects: some define weak symbols (above)" >&2
  exit 1
fi
echo "checked $checked ISA objects: no weak symbols"
