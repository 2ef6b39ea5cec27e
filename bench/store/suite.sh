#!/usr/bin/env bash
# budget: 240
# Durable writes (issue 12, item 7's storage rows): imregistryd REGISTERs and
# imbuddyd REGs per second with the store on PostgreSQL 15 (--store, a
# throwaway server from tests/support/postgres.py) against the same server
# on SQLite (--data, synchronous=FULL), alternating within each round.
source "$(dirname "$0")/../lib/common.sh"
bench_init
bench_log "store: PostgreSQL vs SQLite, $BENCH_ROUNDS rounds"
(cd "$BENCH_TMP" && bench_timeout "$((BENCH_BUDGET - 10))" \
  /usr/bin/python3 "$BENCH_ROOT/bench/store/suite.py" "$BENCH_BIN")
bench_log "done"
