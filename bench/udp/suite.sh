#!/usr/bin/env bash
# budget: 150
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

reply_len=$(python3 - "$tcp_port" "$ours_port" <<'EOF'
import concurrent.futures as cf, socket, sys, time
tcp, udp = int(sys.argv[1]), int(sys.argv[2])
def req(line):
    with socket.create_connection(("127.0.0.1", tcp), timeout=10) as s:
        s.sendall(line.encode() + b"\n")
        return s.makefile().readline().strip()
with cf.ThreadPoolExecutor(16) as ex:
    got = set(ex.map(req, [f"REG u{i:03d}" for i in range(100)]))
    got |= set(ex.map(req, [f"ADD u{i:03d} u{(i + k) % 100:03d}" for i in range(100) for k in range(1, 6)]))
if got != {"200 OK"}:
    sys.exit(f"setting up users: {got}")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
for i in range(100):
    u.sendto(f"SET u{i:03d} 100 {40000 + i:05d}".encode(), ("127.0.0.1", udp))
time.sleep(0.3)
u.sendto(b"GET u000", ("127.0.0.1", udp))
reply = u.recv(65536)
if reply.count(b"\n") != 5 or b" 100 " not in reply:
    sys.exit(f"GET u000 answered {reply!r}")
print(len(reply))
EOF
)
bench_log "imbuddyd UDP on port $ours_port: 100 users with 5 buddies, GET replies of $reply_len bytes"

bench_start echo "$BENCH_BIN/udp_echo" --host 127.0.0.1 --port 0 --reply-size "$reply_len"
echo_pid=$BENCH_PID
echo_port=$(bench_wait_listening echo)
echo_port=${echo_port##*:}

load() {  # load PORT PID ARGS...: udp_load's JSON, plus how busy both cores were
  local port="$1" pid="$2" s0 s1 l0 l1 out
  shift 2
  s0=$(bench_core_jiffies "$BENCH_SERVER_CPU")
  l0=$(bench_core_jiffies "$BENCH_LOAD_CPU")
  out=$(bench_timeout 30 bench_on_load "$BENCH_BIN/udp_load" --port "$port" --pid "$pid" --duration "$secs" "$@")
  s1=$(bench_core_jiffies "$BENCH_SERVER_CPU")
  l1=$(bench_core_jiffies "$BENCH_LOAD_CPU")
  python3 - "$out" "$s0 $s1" "$l0 $l1" <<'EOF'
import json, sys
d = json.loads(sys.argv[1])
for key, arg in (("core_server", sys.argv[2]), ("core_load", sys.argv[3])):
    b0, a0, b1, a1 = map(int, arg.split())
    d[key] = round((b1 - b0) / max(1, a1 - a0), 3)
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
for ((r = 0; r < BENCH_ROUNDS; r++)); do
  if ((r % 2 == 0)); then order=(ours echo); else order=(echo ours); fi
  for s in "${order[@]}"; do
    if [ "$s" = ours ]; then port=$ours_port pid=$ours_pid; else port=$echo_port pid=$echo_pid; fi
    gs=$(load "$port" "$pid" --mode get)
    ss=$(load "$port" "$pid" --mode set --batch 64 --window 64)
    gr=$(load "$port" "$pid" --mode get --rate "$rate")
    sr=$(load "$port" "$pid" --mode set --rate "$rate")
    printf '{"round":%d,"server":"%s","get_sat":%s,"set_sat":%s,"get_rate":%s,"set_rate":%s}\n' \
      "$r" "$s" "$gs" "$ss" "$gr" "$sr" >>"$results"
    bench_log "round $((r + 1))/$BENCH_ROUNDS $s: $(python3 -c "
import json, sys
g, s, gr, sr = (json.loads(x) for x in sys.argv[1:])
print(f\"GET {g['rate']:.0f}/s (server {g['server_busy']:.0%}, load {g['gen_busy']:.0%}), \"
      f\"SET {s['rate']:.0f}/s (server {s['server_busy']:.0%}, load {s['gen_busy']:.0%}); \"
      f\"at {gr['rate_target']:.0f}/s: GET {gr['cpu_us_per_request']:.2f} us, SET {sr['cpu_us_per_request']:.2f} us CPU each\")
" "$gs" "$ss" "$gr" "$sr")"
  done
  if (($(bench_time_left) < 25)) && ((r + 1 < BENCH_ROUNDS)); then
    bench_log "budget nearly spent: stopping after $((r + 1)) rounds"
    break
  fi
done

python3 - "$results" "$rate" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rate = int(sys.argv[2])
by = {}
for r in rows:
    by.setdefault(r["round"], {})[r["server"]] = r
rounds = [v for v in by.values() if "ours" in v and "echo" in v]
med = statistics.median

def row(benchmark, metric, key, field, goal, higher, notes):
    o = [v["ours"][key][field] for v in rounds]
    a = [v["echo"][key][field] for v in rounds]
    ratio = med([x / y for x, y in zip(o, a) if y])
    out = {"benchmark": benchmark, "metric": metric, "ours": float(f"{med(o):.4g}"),
           "anchor_name": "udp_echo", "anchor": float(f"{med(a):.4g}"),
           "ratio": float(f"{ratio:.4g}"), "goal": goal, "higher_is_better": higher,
           "rounds": str(len(rounds))}
    notes = [n for n in notes if n]
    if notes:
        out["note"] = "; ".join(notes)
    print(json.dumps(out), flush=True)

def saturation_notes(key):
    notes = []
    for s, name in (("ours", "imbuddyd"), ("echo", "udp_echo")):
        busy = med([v[s][key]["server_busy"] for v in rounds])
        gen = med([v[s][key]["gen_busy"] for v in rounds])
        srv = med([v[s][key]["core_server"] for v in rounds])
        load = med([v[s][key]["core_load"] for v in rounds])
        if busy < 0.85:
            whys = []
            if load >= 0.9:
                whys.append("the load generator's core was full (it may have set the pace)")
            if srv >= 0.9:
                whys.append("the server's core was also busy with work not counted to the "
                            "server (other processes, interrupts)")
            why = "; ".join(whys) or "neither core was full (latency-bound)"
            notes.append(f"{name} used {busy:.0%} of its core, udp_load {gen:.0%} of its own "
                         f"(server core {srv:.0%}, load core {load:.0%} busy): {why}")
        lost = sum(v[s][key]["lost"] for v in rounds)
        if lost:
            notes.append(f"{name}: {lost} GETs unanswered")
    return notes

def per_cpu_note(key):
    # Requests per second of server CPU: robust to other work on the machine.
    eff = {s: [v[s][key]["rate"] / max(1e-9, v[s][key]["server_busy"]) for v in rounds]
           for s in ("ours", "echo")}
    ratio = med([o / a for o, a in zip(eff["ours"], eff["echo"])])
    return (f"per second of server CPU: imbuddyd {med(eff['ours']):,.0f}, udp_echo "
            f"{med(eff['echo']):,.0f} requests (ratio {ratio:.3g})")

def rate_notes(key):
    notes = []
    for s, name in (("ours", "imbuddyd"), ("echo", "udp_echo")):
        drops = sum(v[s][key]["server_drops"] for v in rounds)
        if drops:
            notes.append(f"{name}'s socket dropped {drops} datagrams")
    return notes

def generator_bound(key):
    # A server under 85 % of its core while the load generator's core was full.
    for s in ("ours", "echo"):
        busy = med([v[s][key]["server_busy"] for v in rounds])
        load = med([v[s][key]["core_load"] for v in rounds])
        if busy < 0.85 and load >= 0.9:
            return True
    return False

def saturation_row(benchmark, key, what):
    notes = [what] + saturation_notes(key) + [per_cpu_note(key)]
    if not generator_bound(key):
        row(benchmark, "requests/s", key, "rate", 0.95, True, notes)
        return
    # udp_load could not load a server fully: compare what each does with a
    # whole core (rate divided by the share of its core it used).
    for v in rounds:
        for s in ("ours", "echo"):
            d = v[s][key]
            d["rate_full_core"] = d["rate"] / max(1e-9, d["server_busy"])
    o = [v["ours"][key]["rate"] for v in rounds]
    a = [v["echo"][key]["rate"] for v in rounds]
    notes.insert(1, "udp_load could not load a server fully, so the row compares maximum "
                 "rates estimated as requests/s / share of its core the server used; measured: "
                 f"imbuddyd {med(o):,.0f}/s, udp_echo {med(a):,.0f}/s (ratio "
                 f"{med([x / y for x, y in zip(o, a)]):.3g})")
    row(benchmark, "requests/s at a full core (estimated)", key, "rate_full_core", 0.95, True, notes)

saturation_row("udp GET saturation", "get_sat",
               "replies/s, 4 sockets x 48 in flight; imbuddyd --udp-rate 0")
saturation_row("udp SET saturation", "set_sat",
               "datagrams taken off the server's socket per second (sent - socket drops)")
row(f"udp GET at {rate}/s", "server CPU us/request", "get_rate", "cpu_us_per_request", 1.2, False,
    ["server CPU time (user+system) / requests handled"] + rate_notes("get_rate"))
row(f"udp SET at {rate}/s", "server CPU us/request", "set_rate", "cpu_us_per_request", 1.2, False,
    rate_notes("set_rate"))
EOF
bench_log "imbuddyd log: $(wc -l <"$BENCH_TMP/buddy.log") lines"
bench_log "done"
