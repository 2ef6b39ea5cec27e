#!/usr/bin/env bash
# budget: 420
# The relay cluster (issue 12, item 7): three imrelayd --cluster nodes on one
# nats-server with JetStream against the floor of any design on that engine,
# NATS request/reply between two libnats clients through the same server:
# SEND->SENT same node and cross node, CPU per acknowledged message, SEND ALL
# to 300 users over 3 nodes, and kill -9 of a node (time to LEFT and to free
# its names). Needs nats-server and libnats-dev (packages.txt). The
# measurements are in bench/cluster/suite.py; clusterload is the generator.
source "$(dirname "$0")/../lib/common.sh"
bench_init
for exe in imrelayd clusterload; do
  [ -x "$BENCH_BIN/$exe" ] || { bench_log "missing $BENCH_BIN/$exe (bench/run.sh cluster builds it; needs libnats-dev)"; exit 1; }
done
bench_log "cluster: 3 relay nodes on nats-server, $BENCH_ROUNDS rounds"
(cd "$BENCH_TMP" && bench_timeout "$((BENCH_BUDGET - 10))" \
  /usr/bin/python3 "$BENCH_ROOT/bench/cluster/suite.py" "$BENCH_BIN" "$((BENCH_BUDGET - 20))")
bench_log "done"
