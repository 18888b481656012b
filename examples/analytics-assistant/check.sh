#!/usr/bin/env bash
# Runs the analytics assistant on stories260K with its small KV budget and checks the summary:
# every client's requests were all submitted and finished (none failed), the engine preempted at
# least once, realtime requests saw a first token no later on average than background ones,
# the background client was refused with BUSY by its max_outstanding quota and still finished
# (aging), and periodic STATS lines were printed.
#
#   check.sh ANALYTICS_ASSISTANT SHARED_DIR      ($LLMOS_SHARED_DIR overrides SHARED_DIR)
# Exit 0: passed; 77: the model is absent; 1: a check failed.
set -uo pipefail

exe=$1
shared=${LLMOS_SHARED_DIR:-${2:-}}
model=$shared/models/stories260K.gguf
if [[ ! -f $model ]]; then
  echo "SKIPPED: shared data not found: $model (set LLMOS_SHARED_DIR)"
  exit 77
fi

if ! out=$("$exe" "$model" 2>&1); then
  echo "$out"
  echo "check failed: analytics_assistant exited with an error"
  exit 1
fi
echo "$out"
awk '
  function fail(msg) { print "check failed: " msg; bad = 1 }
  function fields(prefix,    i, kv) {
    for (i = 3; i <= NF; ++i) { split($i, kv, "="); v[prefix, kv[1]] = kv[2] }
  }
  $1 == "STATS" { ++stats; next }
  $1 == "CLIENT" {
    split($3, p, "="); prio = p[2]
    fields(prio)
    ++clients[prio]
    if (v[prio, "submitted"] != v[prio, "planned"] || v[prio, "finished"] != v[prio, "planned"])
      fail($2 " finished " v[prio, "finished"] " of " v[prio, "planned"] " requests")
    if (v[prio, "failed"] != 0) fail($2 " had " v[prio, "failed"] " failed requests")
    if (v[prio, "tokens"] + 0 <= 0) fail($2 " received no tokens")
    client_preemptions += v[prio, "preemptions"]
    next
  }
  $1 == "ENGINE" {
    for (i = 2; i <= NF; ++i) { split($i, kv, "="); e[kv[1]] = kv[2] }
    ++engines
  }
  END {
    if (stats < 2) fail("fewer than two STATS lines")
    if (engines != 1) fail("no ENGINE line")
    if (clients["realtime"] != 1 || clients["interactive"] != 1 || clients["background"] != 1)
      fail("expected one client of each priority")
    if (e["finished"] != e["requests"]) fail("the engine finished " e["finished"] " of " e["requests"])
    if (e["preemptions"] + 0 < 1) fail("no preemption with the small KV budget")
    if (client_preemptions != e["preemptions"] + 0)
      fail("the clients counted " client_preemptions " preemptions, the engine " e["preemptions"])
    if (v["realtime", "ttft_mean_ms"] + 0 > v["background", "ttft_mean_ms"] + 0)
      fail("realtime mean TTFT " v["realtime", "ttft_mean_ms"] " ms > background " v["background", "ttft_mean_ms"] " ms")
    if (v["background", "busy"] + 0 < 1) fail("the background client was never refused with BUSY")
    if (!bad) printf "passed: %d preemptions, TTFT realtime %s ms <= background %s ms, %s BUSY refusals\n",
                     e["preemptions"], v["realtime", "ttft_mean_ms"], v["background", "ttft_mean_ms"],
                     v["background", "busy"]
    exit bad
  }' <<<"$out"
