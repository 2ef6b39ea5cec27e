#!/usr/bin/env bash
# bench/lib/profile.sh - where the time goes, for the goals the benchmarks
# do not meet (docs/performance.md, "What limits us now").
#
#   bash bench/lib/profile.sh parser [CASE]   callgrind, ours: functions by instructions
#   bash bench/lib/profile.sh http-get        imregistryd under wrk -c50 keep-alive
#   bash bench/lib/profile.sh http-close      the same, Connection: close
#   bash bench/lib/profile.sh http-post       imregistryd under REGISTER/LOGOUT at 2000/s
#   bash bench/lib/profile.sh http-post-io    the same with --commit-on-io
#   bash bench/lib/profile.sh udp-get         imbuddyd under GET saturation
#
# Server profiles: perf record (cpu-clock; no hardware counters needed) of the
# server for a few seconds of load, split by binary (kernel / ours / libc /
# SQLite) and by function, then the system calls of two seconds (strace -c)
# with the number of requests answered meanwhile. Uses the programs bench/run.sh
# built (BENCH_BIN) and installs linux-perf, strace and valgrind if missing.
# The server on BENCH_SERVER_CPU, the load on BENCH_LOAD_CPU, as in the suites.
source "$(dirname "$0")/common.sh"
BENCH_SUITE=profile
bench_init
what="${1:-}"
[ -n "$what" ] || { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
bench_ensure_packages linux-perf strace valgrind wrk
here="$(cd "$(dirname "$0")" && pwd)"

top_functions() {  # top_functions PERF_DATA
  echo "--- by binary"
  { perf report -i "$1" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | head -8; } || true
  echo "--- by function (top 25)"
  { perf report -i "$1" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | grep '%' |
    head -25 | sed -E 's/std::basic_string_view<char, std::char_traits<char> >/string_view/g' |
    cut -c1-160; } || true
}

# profile_server PID LOAD_CMD... : perf and strace of PID while LOAD_CMD runs
profile_server() {
  local pid="$1"
  shift
  bench_on_load "$@" >"$BENCH_TMP/load1.out" 2>&1 &
  local load=$!
  sleep 1
  perf record -q -e cpu-clock -F 4000 -g -p "$pid" -o "$BENCH_TMP/perf.data" -- sleep 4 >/dev/null 2>&1
  wait "$load" || true
  top_functions "$BENCH_TMP/perf.data"
  echo "--- system calls in 2 s (strace -c -f), and the load generator's report"
  bench_on_load "$@" >"$BENCH_TMP/load2.out" 2>&1 &
  load=$!
  sleep 1
  timeout 2 strace -c -f -p "$pid" -o "$BENCH_TMP/strace.txt" >/dev/null 2>&1 || true
  wait "$load" || true
  { grep -v '^-' "$BENCH_TMP/strace.txt" | head -20; } || true
  tail -3 "$BENCH_TMP/load2.out" || true
}

start_registry() {  # start_registry [EXTRA FLAGS...]
  mkdir -p "$BENCH_TMP/data"
  bench_start registry "$BENCH_BIN/imregistryd" --host 127.0.0.1 --port 0 --data "$BENCH_TMP/data" "$@"
  pid=$BENCH_PID
  port=$(bench_wait_listening registry)
  port=${port##*:}
  python3 "$here/../http/client.py" setup "$port" "$BENCH_TMP/list.txt"
}

case "$what" in
  parser)
    case_name="${2:-seed-post}"
    (cd "$BENCH_TMP" && valgrind --tool=callgrind --callgrind-out-file="$BENCH_TMP/cg.%p" \
      "$BENCH_BIN/bench_parser" --callgrind 200 1000 --only "$case_name" >/dev/null 2>&1)
    # Each contender is dumped twice (N1 and N2 iterations): show the larger.
    for f in "$BENCH_TMP"/cg.*.*; do
      label=$(sed -n 's/^desc: Trigger: Client Request: //p' "$f")
      case "$label" in */ours/*) ;; *) continue ;; esac
      if [ -z "${first_seen:-}" ]; then first_seen=1; continue; fi
      echo "=== $label (iterations/messages per iteration)"
      { callgrind_annotate --threshold=100 "$f" 2>/dev/null | grep -E '^ *[0-9,]+ \( *[0-9.]+%\)' |
        grep -v -E 'PROGRAM TOTALS|libc-start|below main|:main |0x0000|iterate\(|callgrind\(' |
        sed -E 's/\[\/.*//; s/std::basic_string_view<char, std::char_traits<char> >/string_view/g; s/\?\?\?://' |
        cut -c1-160 | head -20; } || true
    done
    ;;
  http-get)
    start_registry
    profile_server "$pid" wrk -t1 -c50 -d6s "http://127.0.0.1:$port/userlist.txt"
    ;;
  http-close)
    start_registry
    profile_server "$pid" wrk -t1 -c50 -d6s -H 'Connection: close' "http://127.0.0.1:$port/userlist.txt"
    ;;
  http-post | http-post-io)
    if [ "$what" = http-post-io ]; then start_registry --commit-on-io; else start_registry; fi
    profile_server "$pid" "$BENCH_BIN/httprate" --port "$port" --rate 2000 --duration 6
    ;;
  udp-get)
    mkdir -p "$BENCH_TMP/data"
    bench_start buddy "$BENCH_BIN/imbuddyd" --host 127.0.0.1 --tcp-port 0 --udp-port 0 \
      --data "$BENCH_TMP/data" --udp-rate 0
    pid=$BENCH_PID
    tcp=$(bench_wait_listening buddy 1)
    udp=$(bench_wait_listening buddy 2)
    python3 - "${tcp##*:}" "${udp##*:}" <<'EOF'
import concurrent.futures as cf, socket, sys, time
tcp, udp = int(sys.argv[1]), int(sys.argv[2])
def req(line):
    with socket.create_connection(("127.0.0.1", tcp), timeout=10) as s:
        s.sendall(line.encode() + b"\n")
        return s.makefile().readline().strip()
with cf.ThreadPoolExecutor(16) as ex:
    list(ex.map(req, [f"REG u{i:03d}" for i in range(100)]))
    list(ex.map(req, [f"ADD u{i:03d} u{(i + k) % 100:03d}" for i in range(100) for k in range(1, 6)]))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(100):
    u.sendto(f"SET u{i:03d} 100 {40000 + i:05d}".encode(), ("127.0.0.1", udp))
time.sleep(0.2)
EOF
    profile_server "$pid" "$BENCH_BIN/udp_load" --port "${udp##*:}" --mode get --duration 5 --pid "$pid"
    ;;
  *)
    bench_log "unknown profile '$what'"
    exit 2
    ;;
esac
