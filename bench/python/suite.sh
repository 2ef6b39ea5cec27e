#!/usr/bin/env bash
# budget: 240
# The Python suite (issue 9): the improto package, pip-installed into a venv
# as a user installs it, against h11 and httptools (Debian's, llhttp inside)
# decoding the registry's HTTP requests (the cases of bench/parser); relay
# SEND decode; asyncio relay round trips with 100 clients in one event loop
# against imrelayd. bench_py.py says what each parser does per request.
source "$(dirname "$0")/../lib/common.sh"
bench_init

venv="$BENCH_BUILD/python-venv"
# run.sh has installed the package (prepare.sh) unless this suite runs alone.
[ "${BENCH_PREPARED:-0}" = 1 ] || bash "$(dirname "$0")/prepare.sh"
py=("$venv/bin/python" "$BENCH_ROOT/bench/python/bench_py.py")

ms=300
seconds=10
[ "$BENCH_QUICK" = 1 ] && { ms=60; seconds=3; }
bench_log "decode: $BENCH_ROUNDS rounds, ${ms} ms per parser per case, pinned to core $BENCH_LOAD_CPU"
(cd "$BENCH_TMP" && bench_timeout 120 bench_on_load "${py[@]}" decode "$BENCH_ROUNDS" "$ms")

bench_start imrelayd "$BENCH_BIN/imrelayd" --host 127.0.0.1 --port 0
address=$(bench_wait_listening imrelayd)
bench_log "asyncio relay round trips: 100 clients for ${seconds} s against imrelayd at $address"
(cd "$BENCH_TMP" && bench_timeout 60 bench_on_load "${py[@]}" relay "$address" "$seconds")
bench_stop "$BENCH_PID"
bench_log "done"
