#!/bin/bash
# budget: 420
# The relay benchmarks (issue #4, items 3 and 5): builds imrelayd and the load
# generator (Release) unless bench/run.sh did, then runs bench/relay/suite.py
# within a time budget (about 280 s of measurements at the full budget).
#
#   bench/relay/suite.sh [BUDGET_SECONDS]      (default 420, or $BENCH_BUDGET)
#
# JSON rows on stdout, one per line; progress on stderr. Needs mosquitto,
# nats-server and nginx (apt-get install mosquitto nats-server nginx); an
# anchor that is missing loses its rows, the rest still runs. Environment:
# RELAY_BENCH_BUILD_DIR (default build-bench-relay in the repository),
# RELAY_BENCH_BIN (use prebuilt imrelayd and relayload from there, no build;
# bench/run.sh sets it), those of bench/lib/common.sh (BENCH_SERVER_CPU,
# BENCH_LOAD_CPU, BENCH_ROUNDS, BENCH_QUICK) and those of suite.py
# (RELAY_BENCH_ONLY, RELAY_BENCH_KEEP, RELAY_BENCH_NICE).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# The runner's environment and defaults (cores, rounds); suite.py reads them.
if [[ -f "$repo/bench/lib/common.sh" ]]; then
  BENCH_SUITE="${BENCH_SUITE:-relay}"
  # shellcheck source=../lib/common.sh
  source "$repo/bench/lib/common.sh"
fi
budget="${1:-${BENCH_BUDGET:-420}}"

if [[ -n "${RELAY_BENCH_BIN:-}" ]]; then
  bin="$RELAY_BENCH_BIN"
else
  build="${RELAY_BENCH_BUILD_DIR:-$repo/build-bench-relay}"
  echo "[relay] building imrelayd and relayload (Release) in $build" >&2
  if [[ ! -f "$build/CMakeCache.txt" ]]; then
    cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
  fi
  cmake --build "$build" --target imrelayd relayload >&2
  bin="$build/bin"
fi
for exe in imrelayd relayload; do
  [[ -x "$bin/$exe" ]] || { echo "[relay] missing $bin/$exe" >&2; exit 1; }
done

child=""
export RELAY_BENCH_PIDFILE
RELAY_BENCH_PIDFILE="$(mktemp /tmp/relay-bench-pids.XXXXXX)"
cleanup() {
  if [[ -n "$child" ]] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  # Servers run in sessions of their own; should suite.py have died without
  # stopping them, stop those it listed (only if they are still ours).
  local pid
  while read -r pid; do
    if [[ -r "/proc/$pid/cmdline" ]] &&
       tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qE "relay-bench-|$bin/imrelayd|nginx: worker process"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done < "$RELAY_BENCH_PIDFILE"
  rm -f "$RELAY_BENCH_PIDFILE"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

/usr/bin/python3 "$here/suite.py" "$bin" "$budget" &
child=$!
wait "$child"
status=$?
child=""
exit "$status"
