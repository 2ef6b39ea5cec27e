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
# Each run also records the server's user and system CPU ticks
# (/proc/PID/stat); the summary gives each server's user share and, since
# the kernel's work per datagram is the same code for all of them, the bound
# it implies against the echo: (1 - share) / (1 - echo's share).
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

ticks() { awk '{print $14 + $15, $14}' "/proc/$1/stat"; }  # total and user CPU ticks
# run_load SERVER ARGS...: udp_load's JSON with the server's CPU ticks added.
run_load() {
  local s="$1" t0 t1 out
  shift
  t0=$(ticks "${pid[$s]}")
  out=$(bench_timeout 30 bench_on_load "$BENCH_BIN/udp_load" --port "${port[$s]}" --pid "${pid[$s]}" "$@")
  t1=$(ticks "${pid[$s]}")
  printf '%s' "${out%\}},\"ticks\":[${t0// /,},${t1// /,}]}"
}
results="$BENCH_TMP/ab.jsonl"
: >"$results"
for ((r = 0; r < rounds; r++)); do
  for ((k = 0; k < ${#order[@]}; k++)); do
    s=${order[$(((r + k) % ${#order[@]}))]}
    g=$(run_load "$s" --duration "$secs" --mode get)
    t=$(run_load "$s" --duration "$secs" --mode set --batch 64 --window 64)
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
    share = {}
    for s in ("old", "new", "echo", "work"):
        runs = [v[s][mode]["ticks"] for v in by.values() if s in v]
        total = sum(t[2] - t[0] for t in runs)
        if runs and total > 0:
            share[s] = sum(t[3] - t[1] for t in runs) / total
    if "echo" in share:
        print(f"{mode.upper()} user share of server CPU (all rounds' ticks): " + ", ".join(
            f"{s} {v:.3f} (bound {(1 - v) / (1 - share['echo']):.3f})" for s, v in share.items()))
EOF
