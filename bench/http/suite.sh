#!/usr/bin/env bash
# budget: 360
# The http suite: imregistryd against nginx (1 worker, access log off) on the
# registry's own traffic, both pinned to the server core, the load generators
# pinned to the other one.
#
#   GET keep-alive   wrk -t1 -c50 GET /userlist.txt (20 entries registered)
#   GET close        the same with `Connection: close`: one request per connection
#   POST             REGISTER/LOGOUT pairs at a fixed rate (httprate.cpp), the
#                    seed client's request bytes; server CPU per request
#   POST anchor      Redis 7 (appendonly yes, appendfsync always: every change
#                    on disk before its answer), the same changes at the same
#                    rate from the same generator as SADD/SREM over RESP
#
# nginx serves the very bytes imregistryd answers (saved to a file) with the
# same status, and answers the POSTs `return 200` (an empty 200, after
# reading and discarding the body): the HTTP work of a POST without the
# registry's durable write (ours commits each change to SQLite before the
# 200). So the durable POST row (synchronous=FULL) is compared with Redis,
# which stores the same changes as durably, and our --sync normal server
# (no fsync per commit) with nginx's HTTP layer alone. Our servers run with
# --quiet (no log line per change), as nginx has no access log and Redis
# logs no commands.
#
# nginx runs the Debian defaults that matter here (sendfile on, tcp_nopush
# on) plus keepalive_requests 1000000 (the default 1000 would make wrk
# reconnect; raising it only helps nginx). After each wrk run the suite checks
# how busy the server's core was: under 85 % means the load generator, not
# the server, set the pace, and the row says so in its note.
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../lib/common.sh"
bench_init
chmod 755 "$BENCH_TMP"  # nginx's worker (nobody) reads the www root inside it

get_secs=3
post_secs=4
rate=${BENCH_HTTP_POST_RATE:-2000}
[ "$BENCH_QUICK" = 1 ] && get_secs=1 post_secs=1
for b in wrk nginx redis-server; do
  command -v "$b" >/dev/null || { bench_log "missing $b (bench/http/packages.txt)"; exit 1; }
done
for b in imregistryd httprate; do
  [ -x "$BENCH_BIN/$b" ] || { bench_log "missing $BENCH_BIN/$b (build bench/ first)"; exit 1; }
done

# ----------------------------------------------------------------- servers
# The registry's data directory on the disk a deployment would use (not a
# tmpfs /tmp): imregistryd answers a change only once it is synced.
data="$BENCH_BUILD/http-registry-data"
rm -rf "$data"
mkdir -p "$data"
trap 'bench_cleanup; rm -rf "$data"' EXIT

bench_start registry "$BENCH_BIN/imregistryd" --host 127.0.0.1 --port 0 --data "$data" --quiet
ours_pids=$BENCH_PID
ours_port=$(bench_wait_listening registry)
ours_port=${ours_port##*:}
# For reference only: the same server with SQLite's synchronous=NORMAL (no
# fsync per commit), to show what durability costs per POST.
mkdir -p "$data/normal"
bench_start registry-normal "$BENCH_BIN/imregistryd" --host 127.0.0.1 --port 0 --data "$data/normal" \
  --sync normal --quiet
normal_pids=$BENCH_PID
normal_port=$(bench_wait_listening registry-normal)
normal_port=${normal_port##*:}

# Durable too, committing on its io thread as Redis does (--commit-on-io):
# the durable row against Redis.
mkdir -p "$data/io"
bench_start registry-io "$BENCH_BIN/imregistryd" --host 127.0.0.1 --port 0 --data "$data/io" \
  --commit-on-io --quiet
io_pids=$BENCH_PID
io_port=$(bench_wait_listening registry-io)
io_port=${io_port##*:}

# The durable-write anchor: its own instance, data on the same disk.
mkdir -p "$data/redis"
redis_port=$(bench_free_port)
bench_start redis redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$data/redis" \
  --appendonly yes --appendfsync always --save '' --daemonize no
redis_pids=$BENCH_PID
bench_wait_port "$redis_port"

python3 "$here/client.py" setup "$ours_port" "$BENCH_TMP/userlist.txt"
bench_log "imregistryd on port $ours_port with 20 entries ($(wc -c <"$BENCH_TMP/userlist.txt")-byte list)"

# start_nginx NAME EXTRA_HTTP_DIRECTIVES: sets ng_port and ng_pids
start_nginx() {
  local name="$1" extra="$2" dir="$BENCH_TMP/$1"
  ng_port=$(bench_free_port)
  bench_nginx_site "$dir" "$BENCH_TMP/userlist.txt" "$ng_port" "$extra" \
    'if ($request_method = POST) { return 200; }'
  bench_start "$name" nginx -p "$dir/" -c "$dir/nginx.conf"
  local master=$BENCH_PID
  bench_wait_port "$ng_port"
  ng_pids="$master $(pgrep -P "$master" | tr '\n' ' ')"
  python3 "$here/client.py" compare "$ours_port" "$ng_port"
  bench_log "$name (pids $ng_pids) on port $ng_port serves the same bytes"
}

# For reference: nginx tuned for one small hot file (descriptors cached, one
# plain write instead of sendfile and corking), its best on this request.
start_nginx nginx-tuned "open_file_cache max=64 inactive=60s; open_file_cache_valid 60s; sendfile off; tcp_nopush off;"
tuned_port=$ng_port tuned_pids=$ng_pids
# The anchor: Debian's defaults for what matters here.
start_nginx nginx "sendfile on; tcp_nopush on;"

# ------------------------------------------------------------------ rounds
# wrk_run NAME PORT [wrk args...] -> "requests/s busy non2xx errors"; busy is
# "process,server_core,load_core": the server's share of one core, and how
# busy each core was with everything on it.
wrk_run() {
  local name="$1" port="$2" pids out
  shift 2
  case "$name" in
    ours) pids=$ours_pids ;;
    tuned) pids=$tuned_pids ;;
    *) pids=$ng_pids ;;
  esac
  # shellcheck disable=SC2086
  bench_mark $pids
  out=$(bench_timeout $((get_secs + 15)) bench_on_load wrk -t1 -c50 -d"${get_secs}s" "$@" \
    "http://127.0.0.1:$port/userlist.txt")
  local busy rps non2xx errors
  busy=$(bench_busy)
  rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
  non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' <<<"$out")
  errors=$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1+\2+\3+\4/p' <<<"$out")
  [ -n "$rps" ] || { bench_log "wrk printed no rate: $out"; exit 1; }
  echo "$rps ${busy// /,} ${non2xx:-0} ${errors:-0}"
}

# post_run NAME PORT ROUND -> httprate's JSON line
post_run() {
  local name="$1" port="$2" round="$3" pids args=()
  case "$name" in
    ours) pids=$ours_pids ;;
    normal) pids=$normal_pids ;;
    io) pids=$io_pids ;;
    redis) pids=$redis_pids args+=(--resp) ;;
    *) pids=$ng_pids ;;
  esac
  for p in $pids; do args+=(--pid "$p"); done
  bench_timeout $((post_secs + 30)) bench_on_load "$BENCH_BIN/httprate" --port "$port" \
    --rate "$rate" --duration "$post_secs" --connections 20 --prefix "r${round}x" "${args[@]}"
}

results="$BENCH_TMP/results.jsonl"
: >"$results"
# one_round ROUND SERVER: the round's runs against one server, a line in $results
one_round() {
  local r="$1" s="$2" port
  if [ "$s" = ours ]; then port=$ours_port; else port=$ng_port; fi
  read -r ka_rps ka_busy ka_bad ka_err <<<"$(wrk_run "$s" "$port")"
  read -r cl_rps cl_busy cl_bad cl_err <<<"$(wrk_run "$s" "$port" -H 'Connection: close')"
  post=$(post_run "$s" "$port" "$r")
  normal=null tuned=null redis=null io=null
  if [ "$s" = ours ]; then
    normal=$(post_run normal "$normal_port" "$r")
    io=$(post_run io "$io_port" "$r")
  else
    redis=$(post_run redis "$redis_port" "$r")
    read -r t_rps t_busy _ _ <<<"$(wrk_run tuned "$tuned_port")"
    tuned="{\"ka_rps\":$t_rps,\"ka_busy\":\"$t_busy\"}"
  fi
  printf '{"round":%d,"server":"%s","ka_rps":%s,"ka_busy":"%s","ka_bad":%s,"ka_err":"%s","cl_rps":%s,"cl_busy":"%s","cl_bad":%s,"cl_err":"%s","post":%s,"post_normal":%s,"post_io":%s,"post_redis":%s,"tuned":%s}\n' \
    "$r" "$s" "$ka_rps" "$ka_busy" "$ka_bad" "$ka_err" "$cl_rps" "$cl_busy" "$cl_bad" "$cl_err" "$post" "$normal" "$io" "$redis" "$tuned" >>"$results"
  bench_log "round $((r + 1))/$BENCH_ROUNDS $s: keep-alive $ka_rps/s (server ${ka_busy} busy), close $cl_rps/s (${cl_busy}), POST $(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(f\"{d['rate']:.0f}/s at {d['cpu_us_per_request']:.1f} us CPU each\")" "$post")"
}

# report: the rows from the rounds so far (bench_rounds asks it whether a
# row's spread crosses its goal; the last call prints them)
report() {
bench_python - "$results" "$rate" <<'EOF'
import statistics, sys
import bench
rounds = bench.load_rounds(sys.argv[1], "ours", "nginx")
rate = int(sys.argv[2])

def med(xs):
    return statistics.median(xs)

def row(benchmark, metric, get, goal, higher, note_parts, get_ours=None, anchor_name="nginx"):
    bench.rounds_row(benchmark, metric, [(get_ours or get)(v["ours"]) for v in rounds], anchor_name,
                     [get(v["nginx"]) for v in rounds], goal, higher,
                     "; ".join(n for n in note_parts if n))

def bad_note(bad, err):
    parts = []
    for s in ("ours", "nginx"):
        n = sum(int(v[s][bad]) for v in rounds)
        e = sum(eval(str(v[s][err])) for v in rounds)
        if n:
            parts.append(f"{s}: {n} non-2xx answers")
        if e:
            parts.append(f"{s}: {e} socket errors")
    return "; ".join(parts)

def saturation_row(benchmark, rps, busy, bad, err):
    # busy = "process,server_core,load_core" fractions of one core
    def runs(s):
        out = []
        for v in rounds:
            proc, srv, load = (float(x) for x in v[s][busy].split(","))
            out.append({"rate": float(v[s][rps]), "proc": proc, "server_core": srv, "load_core": load})
        return out
    bench.saturation_row(benchmark, 1.2, {"ours": runs("ours"), "nginx": runs("nginx")}, "wrk",
                         extra_notes=[bad_note(bad, err)])

saturation_row("http GET /userlist.txt keep-alive -c50", "ka_rps", "ka_busy", "ka_bad", "ka_err")
row("http GET /userlist.txt keep-alive -c50, nginx tuned", "requests/s",
    lambda v: v["tuned"]["ka_rps"], None, True,
    ["reference, no goal: nginx with open_file_cache, sendfile off, tcp_nopush off (one "
     "write per answer, no open/fstat/close per request), the same run as the row above "
     "for ours"], get_ours=lambda v: v["ka_rps"], anchor_name="nginx (tuned)")
saturation_row("http GET /userlist.txt Connection: close -c50", "cl_rps", "cl_busy", "cl_bad", "cl_err")
def post_notes(servers):
    notes = []
    for s, key in servers:
        got = med([v[s][key]["rate"] for v in rounds])
        if got < 0.97 * rate:
            notes.append(f"{s} ({key}) kept only {got:.0f}/s")
        bad = sum(v[s][key]["non_200"] for v in rounds)
        if bad:
            notes.append(f"{s} ({key}): {bad} non-200 answers")
    return notes

def cpu(key):
    return lambda v: v[key]["cpu_us_per_request"]

pairs = (f"REGISTER/LOGOUT pairs at {rate}/s over 20 keep-alive connections; server CPU "
         f"(user+system, all threads) per acknowledged change")
row(f"http POST REGISTER/LOGOUT at {rate}/s", "server CPU us/request", cpu("post_redis"), 1.0,
    False,
    [pairs + "; ours (--commit-on-io) commits each change to SQLite (WAL, synchronous=FULL, "
     "group commit) on its io thread before its 200; the anchor Redis 7 (appendonly yes, "
     "appendfsync always) gets the same changes as SADD/SREM over RESP from the same generator "
     "and fsyncs its AOF on its one thread before answering"]
    + post_notes([("ours", "post_io"), ("nginx", "post_redis")]),
    get_ours=cpu("post_io"), anchor_name="Redis 7 (appendfsync always)")
row(f"http POST REGISTER/LOGOUT at {rate}/s, ours committing on a worker (default)",
    "server CPU us/request", cpu("post_redis"), None, False,
    ["reference, no goal: ours with its default, the commits on a worker thread so that GETs "
     "and reads go on during each fsync (two thread hand-offs per group, and a wake-up per "
     "request), against the same Redis rounds"] + post_notes([("ours", "post")]),
    get_ours=cpu("post"), anchor_name="Redis 7 (appendfsync always)")
row(f"http POST REGISTER/LOGOUT at {rate}/s, ours with --sync normal", "server CPU us/request",
    cpu("post"), 1.5, False,
    [pairs + "; ours with SQLite synchronous=NORMAL (no fsync per commit: a change survives a "
     "crash of the server, not of the machine) against nginx answering `return 200` (its HTTP "
     "work only, nothing stored)"] + post_notes([("ours", "post_normal"), ("nginx", "post")]),
    get_ours=cpu("post_normal"))
row(f"http POST REGISTER/LOGOUT at {rate}/s, ours durable vs nginx", "server CPU us/request",
    cpu("post"), None, False,
    ["reference, no goal: ours with synchronous=FULL against nginx's `return 200`; the "
     "difference to the row above is what an fsync per group costs"])
EOF
}
bench_rounds 40 one_round ours nginx report
report
bench_log "done"
