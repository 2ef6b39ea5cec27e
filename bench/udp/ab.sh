#!/usr/bin/env bash
# A/B of two imbuddyd builds against udp_echo at UDP saturation, round by
# round in the same minutes (the udp suite measures one build).
#
#   bench/udp/ab.sh OLD_IMBUDDYD NEW_IMBUDDYD [ROUNDS]
#
# Each round runs GET and SET saturation (as the suite does) against old, new
# and udp_echo, in an order that rotates every round. Prints one line per
# run, then per-row medians and min-max of the per-round ratios new/echo,
# old/echo and new/old. BENCH_QUICK=1: 0.7 s runs (default 2 s). strace or
# perf can be attached to the servers by pid from the log lines.
# AB_ECHO_WORK=N adds a fourth server to the rotation, udp_echo --work N (N
# rounds of dummy work per datagram, see udp_echo.cpp), and its ratio to the
# echo: what that many user-space instructions cost at saturation here.
source "$(dirname "$0")/../lib/common.sh"
bench_init
old_bin="$1" new_bin="$2" rounds="${3:-6}"
[ -x "$old_bin" ] && [ -x "$new_bin" ] || { bench_log "usage: ab.sh OLD_IMBUDDYD NEW_IMBUDDYD [ROUNDS]"; exit 2; }
secs=2
[ "$BENCH_QUICK" = 1 ] && secs=0.7
trap 'bench_cleanup; rm -rf "$BENCH_TMP"/ab-data-*' EXIT

declare -A port pid
setup_buddy() {  # setup_buddy NAME BINARY: start it, 100 users with 5 buddies, all ONLINE
  local name="$1" bin="$2" data="$BENCH_TMP/ab-data-$1" tcp udp
  mkdir -p "$data"
  bench_start "$name" "$bin" --host 127.0.0.1 --tcp-port 0 --udp-port 0 --data "$data" --udp-rate 0
  pid[$name]=$BENCH_PID
  tcp=$(bench_wait_listening "$name" 1) udp=$(bench_wait_listening "$name" 2)
  port[$name]=${udp##*:}
  python3 "$(dirname "$0")/setup_users.py" "${tcp##*:}" "${udp##*:}" >/dev/null
}
setup_buddy old "$old_bin"
setup_buddy new "$new_bin"
reply_len=$(python3 "$(dirname "$0")/setup_users.py" --reply-length "${port[new]}")
bench_start echo "$BENCH_BIN/udp_echo" --host 127.0.0.1 --port 0 --reply-size "$reply_len"
pid[echo]=$BENCH_PID
e=$(bench_wait_listening echo)
port[echo]=${e##*:}
order=(old new echo)
if [ -n "${AB_ECHO_WORK:-}" ]; then
  bench_start work "$BENCH_BIN/udp_echo" --host 127.0.0.1 --port 0 --reply-size "$reply_len" --work "$AB_ECHO_WORK"
  pid[work]=$BENCH_PID
  e=$(bench_wait_listening work)
  port[work]=${e##*:}
  order+=(work)
  bench_log "work pid ${pid[work]} port ${port[work]} (udp_echo --work $AB_ECHO_WORK)"
fi
bench_log "old pid ${pid[old]} port ${port[old]}, new pid ${pid[new]} port ${port[new]}, echo pid ${pid[echo]} port ${port[echo]}, replies $reply_len B"

results="$BENCH_TMP/ab.jsonl"
: >"$results"
for ((r = 0; r < rounds; r++)); do
  for ((k = 0; k < ${#order[@]}; k++)); do
    s=${order[$(((r + k) % ${#order[@]}))]}
    g=$(bench_timeout 30 bench_on_load "$BENCH_BIN/udp_load" --port "${port[$s]}" --pid "${pid[$s]}" --duration "$secs" --mode get)
    t=$(bench_timeout 30 bench_on_load "$BENCH_BIN/udp_load" --port "${port[$s]}" --pid "${pid[$s]}" --duration "$secs" --mode set --batch 64 --window 64)
    printf '{"round":%d,"server":"%s","get":%s,"set":%s}\n' "$r" "$s" "$g" "$t" >>"$results"
    bench_log "round $((r + 1)) $s: GET $(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["rate"]))' "$g")/s, SET $(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["rate"]))' "$t")/s"
  done
done
python3 - "$results" <<'EOF'
import collections, json, statistics, sys
by = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    d = json.loads(line)
    by[d["round"]][d["server"]] = d
for mode in ("get", "set"):
    for a, b in (("new", "echo"), ("old", "echo"), ("new", "old"), ("work", "echo")):
        rs = [v[a][mode]["rate"] / v[b][mode]["rate"] for v in by.values() if a in v and b in v]
        if not rs:
            continue
        print(f"{mode.upper()} {a}/{b}: median {statistics.median(rs):.3f} (min {min(rs):.3f}, max {max(rs):.3f}, "
              f"{len(rs)} rounds) " + " ".join(f"{x:.2f}" for x in rs))
EOF
