#!/usr/bin/env bash
# Runs the intent router on stories260K and checks what it printed against the device table it
# printed first: every command ends in exactly one ACTION or REJECT; every ACTION names a table
# device and action, with an argument exactly when the action takes one, inside its range.
# Three runs: the demo as configured; a margin nothing can reach (every command must be refused);
# no margin at all (everything reaches validation: a refusal must then name an argument that is
# really out of range).
#
#   check.sh INTENT_ROUTER SHARED_DIR      ($LLMOS_SHARED_DIR overrides SHARED_DIR)
# Exit 0: passed; 77: the model is absent; 1: a check failed.
set -uo pipefail

exe=$1
shared=${LLMOS_SHARED_DIR:-${2:-}}
model=$shared/models/stories260K.gguf
if [[ ! -f $model ]]; then
  echo "SKIPPED: shared data not found: $model (set LLMOS_SHARED_DIR)"
  exit 77
fi

# check_output MODE: reads the router's output on stdin. MODE: demo | refuse-all | accept-all.
check_output() {
  awk -v mode="$1" '
    function fail(msg) { print "check failed: " msg " (line " NR ": " $0 ")"; bad = 1 }
    $1 == "DEVICE" {
      for (i = 3; i <= NF; ++i) {
        n = split($i, parts, ":")
        key = $2 "." parts[1]
        table[key] = 1
        if (n == 2) { split(parts[2], r, "\\.\\."); lo[key] = r[1] + 0; hi[key] = r[2] + 0; arg[key] = 1 }
      }
      ++devices
      next
    }
    /^> / {
      if (open) fail("the previous command has no outcome")
      ++commands; open = 1
      next
    }
    /^  ACTION / {
      if (!open) fail("an ACTION without a command")
      open = 0; ++actions
      key = $2
      if (!(key in table)) { fail("not a table entry: " key); next }
      if (arg[key]) {
        if ($3 !~ /^[0-9]+$/) { fail(key " needs an argument"); next }
        if ($3 + 0 < lo[key] || $3 + 0 > hi[key]) fail(key " " $3 " is outside " lo[key] ".." hi[key])
      } else if ($3 !~ /^\[/) {
        fail(key " takes no argument")
      }
      next
    }
    /^  REJECT / {
      if (!open) fail("a REJECT without a command")
      open = 0; ++rejections
      if (mode == "accept-all") {
        # Only validation may refuse here: the intent and an out-of-range argument are named.
        key = $2; value = $3; sub(/:$/, "", value)
        if (!(key in table) || !arg[key] || value !~ /^[0-9]+$/) { fail("a refusal that is not a range check"); next }
        if (value + 0 >= lo[key] && value + 0 <= hi[key]) fail("refused an argument inside the range")
      }
      next
    }
    /^RESULT / {
      for (i = 2; i <= NF; ++i) { split($i, kv, "="); result[kv[1]] = kv[2] + 0 }
      ++results
    }
    END {
      if (devices < 1) fail("no device table")
      if (open) fail("the last command has no outcome")
      if (commands < 1) fail("no command ran")
      if (results != 1) fail("no RESULT line")
      if (result["commands"] != commands || result["actions"] != actions || result["rejections"] != rejections)
        fail("RESULT disagrees with the outcomes printed")
      if (mode == "demo" && commands != 8) fail("the demo runs 8 commands, saw " commands)
      if (mode == "refuse-all" && actions != 0) fail("an action passed an unreachable margin")
      printf "%s: %d commands, %d actions, %d rejections\n", mode, commands, actions, rejections
      exit bad
    }'
}

status=0
run() {
  local mode=$1
  shift
  local out
  if ! out=$("$exe" "$model" "$@" 2>&1); then
    echo "$out"
    echo "check failed: intent_router $* exited with an error"
    status=1
    return
  fi
  echo "$out"
  check_output "$mode" <<<"$out" || status=1
}

run demo
run refuse-all --margin 1000 "turn on the kitchen light" "set the thermostat to 20"
run accept-all --margin -1000 --min-gain -1000 "set the thermostat to 99" "speaker volume 55" \
  "dim the kitchen light to 5"
exit $status
