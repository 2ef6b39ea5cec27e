#!/usr/bin/env bash
# budget: 240
# The udp suite: imbuddyd's UDP side (protocol 2: SET and GET) against
# udp_echo, a bare recvmmsg/sendmmsg server that parses nothing and keeps no
# state: the floor of what any server pays per datagram here. Both pinned to
# the server core; udp_load (udp_load.cpp) pinned to the other one.
#
# imbuddyd runs with --udp-rate 0: its per-source-address rate limit (200/s
# by default) would otherwise drop almost all of a benchmark's datagrams,
# which all come from 127.0.0.1. 100 users, each with 5 buddies, all ONLINE;
# GETs cycle over them (every reply is 125 bytes, and udp_echo answers with
# as many bytes); SETs refresh the same statuses.
#
#   saturation   GET: closed loop, 4 sockets x 48 requests in flight, replies/s;
#                SET: as fast as the generator sends (GSO batches of 64), datagrams the server took
#                off its socket per second (sent - the socket's drop counter)
#   fixed rate   server CPU (user+system) per request at the same rate for both
#
# Each phase's two runs (ours, echo) follow each other, the round's first
# server first (alternating by round), so a ratio compares runs seconds apart.
source "$(dirname "$0")/../lib/common.sh"
bench_init

secs=2
[ "$BENCH_QUICK" = 1 ] && secs=0.7
for b in imbuddyd udp_load udp_echo; do
  [ -x "$BENCH_BIN/$b" ] || { bench_log "missing $BENCH_BIN/$b (build bench/ first)"; exit 1; }
done

data="$BENCH_BUILD/udp-buddy-data"
rm -rf "$data"
mkdir -p "$data"
trap 'bench_cleanup; rm -rf "$data"' EXIT

bench_start buddy "$BENCH_BIN/imbuddyd" --host 127.0.0.1 --tcp-port 0 --udp-port 0 --data "$data" \
  --udp-rate 0
ours_pid=$BENCH_PID
tcp_port=$(bench_wait_listening buddy 1)
ours_port=$(bench_wait_listening buddy 2)
tcp_port=${tcp_port##*:} ours_port=${ours_port##*:}

reply_len=$(python3 "$(dirname "$0")/setup_users.py" "$tcp_port" "$ours_port")
bench_log "imbuddyd UDP on port $ours_port: 100 users with 5 buddies, GET replies of $reply_len bytes"

bench_start echo "$BENCH_BIN/udp_echo" --host 127.0.0.1 --port 0 --reply-size "$reply_len"
echo_pid=$BENCH_PID
echo_port=$(bench_wait_listening echo)
echo_port=${echo_port##*:}

load() {  # load PORT PID ARGS...: udp_load's JSON, plus how busy both cores were
  local port="$1" pid="$2" out busy
  shift 2
  bench_mark
  out=$(bench_timeout 30 bench_on_load "$BENCH_BIN/udp_load" --port "$port" --pid "$pid" --duration "$secs" "$@")
  busy=$(bench_busy)
  python3 - "$out" "$busy" <<'EOF'
import json, sys
d = json.loads(sys.argv[1])
_, d["core_server"], d["core_load"] = map(float, sys.argv[2].split())
print(json.dumps(d))
EOF
}

# The fixed rate: half of what imbuddyd answers at saturation (a second's
# try), at most 100,000/s, so that both servers have room.
cal=$(load "$ours_port" "$ours_pid" --mode get --duration 1)
rate=$(python3 -c "import json,sys; r=json.loads(sys.argv[1])['rate']; print(max(5000, min(100000, int(r/2/5000)*5000)))" "$cal")
bench_log "udp_echo on port $echo_port; fixed rate $rate/s (imbuddyd answered $(python3 -c "import json,sys; print(int(json.loads(sys.argv[1])['rate']))" "$cal") GET/s in a first try)"

results="$BENCH_TMP/results.jsonl"
: >"$results"
# one_round ROUND SERVER: the round's runs against both servers, one line
# each in $results. bench_rounds calls it for each server, the first one
# first (alternating by round); the first call runs both, phase by phase:
# each phase's pair of runs back to back, the round's first server first, so
# the two runs a ratio compares are seconds apart, not a whole round (the
# machine's other load drifts over seconds).
done_round=-1
run_phase() {  # run_phase SERVER PHASE: udp_load's JSON
  local port pid
  if [ "$1" = ours ]; then port=$ours_port pid=$ours_pid; else port=$echo_port pid=$echo_pid; fi
  case "$2" in
    get_sat) load "$port" "$pid" --mode get ;;
    set_sat) load "$port" "$pid" --mode set --batch 64 --window 64 ;;
    get_rate) load "$port" "$pid" --mode get --rate "$rate" ;;
    set_rate) load "$port" "$pid" --mode set --rate "$rate" ;;
  esac
}
one_round() {
  local r="$1" first="$2" second=echo phase s
  ((r == done_round)) && return 0
  done_round=$r
  [ "$first" = echo ] && second=ours
  local -A out
  for phase in get_sat set_sat get_rate set_rate; do
    for s in "$first" "$second"; do out[$s.$phase]=$(run_phase "$s" "$phase"); done
  done
  for s in "$first" "$second"; do
    printf '{"round":%d,"server":"%s","get_sat":%s,"set_sat":%s,"get_rate":%s,"set_rate":%s}\n' \
      "$r" "$s" "${out[$s.get_sat]}" "${out[$s.set_sat]}" "${out[$s.get_rate]}" "${out[$s.set_rate]}" >>"$results"
    bench_log "round $((r + 1))/$BENCH_ROUNDS $s: $(python3 -c "
import json, sys
g, s, gr, sr = (json.loads(x) for x in sys.argv[1:])
print(f\"GET {g['rate']:.0f}/s (server {g['server_busy']:.0%}, load {g['gen_busy']:.0%}), \"
      f\"SET {s['rate']:.0f}/s (server {s['server_busy']:.0%}, load {s['gen_busy']:.0%}); \"
      f\"at {gr['rate_target']:.0f}/s: GET {gr['cpu_us_per_request']:.2f} us, SET {sr['cpu_us_per_request']:.2f} us CPU each\")
" "${out[$s.get_sat]}" "${out[$s.set_sat]}" "${out[$s.get_rate]}" "${out[$s.set_rate]}")"
  done
}

# report: the rows from the rounds so far (bench_rounds asks it whether a
# row's spread crosses its goal; the last call prints them)
report() {
bench_python - "$results" "$rate" <<'EOF'
import sys
import bench
rounds = bench.load_rounds(sys.argv[1], "ours", "echo")
rate = int(sys.argv[2])

def row(benchmark, metric, key, field, goal, higher, notes):
    bench.rounds_row(benchmark, metric, [v["ours"][key][field] for v in rounds], "udp_echo",
                     [v["echo"][key][field] for v in rounds], goal, higher,
                     "; ".join(n for n in notes if n))

def rate_notes(key):
    notes = []
    for s, name in (("ours", "imbuddyd"), ("echo", "udp_echo")):
        drops = sum(v[s][key]["server_drops"] for v in rounds)
        if drops:
            notes.append(f"{name}'s socket dropped {drops} datagrams")
    return notes

def saturation_row(benchmark, key, what):
    sides, lost_notes = {}, []
    for s, name in (("ours", "imbuddyd"), ("echo", "udp_echo")):
        sides[name] = [{"rate": v[s][key]["rate"], "proc": v[s][key]["server_busy"],
                        "server_core": v[s][key]["core_server"], "load_core": v[s][key]["core_load"],
                        "gen": v[s][key]["gen_busy"]} for v in rounds]
        lost = sum(v[s][key]["lost"] for v in rounds)
        if lost:
            lost_notes.append(f"{name}: {lost} GETs unanswered")
    bench.saturation_row(benchmark, 0.95, sides, "udp_load", [what], lost_notes)

saturation_row("udp GET saturation", "get_sat",
               "replies/s, 4 sockets x 48 in flight; imbuddyd --udp-rate 0")
saturation_row("udp SET saturation", "set_sat",
               "datagrams taken off the server's socket per second (sent - socket drops)")
row(f"udp GET at {rate}/s", "server CPU us/request", "get_rate", "cpu_us_per_request", 1.2, False,
    ["server CPU time (user+system) / requests handled"] + rate_notes("get_rate"))
row(f"udp SET at {rate}/s", "server CPU us/request", "set_rate", "cpu_us_per_request", 1.2, False,
    rate_notes("set_rate"))
EOF
}
bench_rounds 25 one_round ours echo report
report
bench_log "imbuddyd log: $(wc -l <"$BENCH_TMP/buddy.log") lines"
bench_log "done"
