#!/usr/bin/env bash
# budget: 90
# The parser suite: our HTTP request decoder against llhttp, http-parser and
# picohttpparser, and our relay decoder against llhttp, on the same bytes (bench_parser.cpp
# says what each case is and what work each parser does). Rows: requests/s
# and MB/s (median of per-round ratios over BENCH_ROUNDS alternating rounds)
# and instructions per request from callgrind.
source "$(dirname "$0")/../lib/common.sh"
bench_init

bin="$BENCH_BIN/bench_parser"
[ -x "$bin" ] || { bench_log "missing $bin (build bench/ first: bash bench/run.sh)"; exit 1; }

ms=150
[ "$BENCH_QUICK" = 1 ] && ms=30
bench_log "timing: $BENCH_ROUNDS rounds, ${ms} ms per parser per case, pinned to core $BENCH_LOAD_CPU"
timing="$BENCH_TMP/timing.jsonl"
bench_timeout 90 bench_on_load "$bin" --rounds "$BENCH_ROUNDS" --ms "$ms" >"$timing"
# While a row's spread (min-max of its per-round ratios) crosses its goal
# and its rounds do not decide it, one more round, up to BENCH_ROUNDS_MAX.
for ((r = BENCH_ROUNDS; r < BENCH_ROUNDS_MAX && $(bench_time_left) > 40; r++)); do
  why=$(python3 "$(dirname "$0")/report.py" "$timing" | python3 "$BENCH_LIB/bench.py" undecided 2>&1) || break
  bench_log "after $r rounds undecided: ${why//$'\n'/; }"
  bench_timeout 60 bench_on_load "$bin" --first-round "$r" --rounds 1 --ms "$ms" >>"$timing"
done

cg="$BENCH_TMP/callgrind"
mkdir -p "$cg"
if command -v valgrind >/dev/null; then
  bench_log "instruction counts under callgrind"
  (cd "$cg" && bench_timeout 90 bench_on_load valgrind --tool=callgrind --callgrind-out-file="$cg/cg.%p" \
    "$bin" --callgrind 3000 30000 --only seed-post,browser-get,pipelined-1000,relay-send-64,relay-send-1k \
    >/dev/null 2>"$cg/valgrind.log") ||
    bench_log "callgrind failed; no instruction rows (see $cg/valgrind.log)"
else
  bench_log "valgrind not installed; no instruction rows"
fi

python3 "$(dirname "$0")/report.py" "$timing" "$cg"
bench_log "done"
