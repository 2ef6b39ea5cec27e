#!/usr/bin/env bash
# A/B of imregistryd builds and nginx on one-request connections: server CPU
# and context switches per request, the servers alternating round by round.
#
#   bench/http/close_ab.sh ROUNDS NAME=IMREGISTRYD... [nginx]
#   e.g. close_ab.sh 5 old=/tmp/imregistryd.old new=build/tools/imregistryd nginx
#   PROFILE=1 close_ab.sh 1 new=build/tools/imregistryd nginx   (perf record instead)
#
# Each run: a 4 s `wrk -t1 -c50 -H 'Connection: close'` GET /userlist.txt (20
# entries), the server and wrk pinned to their cores, each in an autogroup at
# BENCH_NICE (as the suite); the CPU time
# (schedstat) and context switches of all the server's threads over the run
# (or `perf record -g` of the middle 2 s with PROFILE=1, kept in the work
# directory for `perf report`).
# nginx is configured as in suite.sh's anchor (sendfile on, tcp_nopush on).
# Prints one line per run: round, name, µs of server CPU per request, context
# switches per request, requests/s. Needs wrk and nginx (and perf for PROFILE=1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../lib/common.sh"  # bench_nginx_site, bench_ab_nginx, bench_free_port, ...
rounds=$1
shift
work=$(mktemp -d /tmp/close_ab.XXXXXX)
chmod 755 "$work"  # nginx's worker (nobody) reads the www root inside it
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

declare -A port server
names=()
list=""
# Our servers first: nginx serves the list they answer with.
for spec in "$@"; do
  [ "$spec" = nginx ] && continue
  name=${spec%%=*} bin=${spec#*=}
  p=$(bench_free_port)
  mkdir -p "$work/$name"
  # Not through the function: `&` on a command keeps the server's pid in $!.
  setsid bash -c "$BENCH_PIN_SCRIPT" "$BENCH_SERVER_CPU" "$bin" --host 127.0.0.1 --port "$p" --data "$work/$name" >/dev/null 2>&1 &
  pids+=($!)
  server[$name]=$!
  port[$name]=$p
  names+=("$name")
  bench_wait_port "$p"
  /usr/bin/python3 "$here/client.py" setup "$p" "$work/$name.list"
  list="$work/$name.list"
done
for spec in "$@"; do
  [ "$spec" = nginx ] || continue
  [ -n "$list" ] || { echo "nginx needs one of our servers first (for the list)" >&2; exit 1; }
  d="$work/nginx"
  p=$(bench_free_port)
  bench_nginx_site "$d" "$list" "$p" "sendfile on; tcp_nopush on;" ""
  bench_ab_nginx "$d" "$p"
  server[nginx]=$BENCH_NGINX_WORKER
  port[nginx]=$p
  names+=(nginx)
done

# CPU (ns, schedstat) and context switches of all of a process's threads.
cpu_ns() {
  local t=0 a
  for task in /proc/"$1"/task/*; do
    read -r a _ <"$task/schedstat"
    t=$((t + a))
  done
  echo "$t"
}

for r in $(seq "$rounds"); do
  for name in "${names[@]}"; do
    out="$work/$name.r$r"
    pid=${server[$name]}
    if [ "${PROFILE:-0}" = 1 ]; then
      bench_on_load wrk -t1 -c50 -d4s -H 'Connection: close' \
        "http://127.0.0.1:${port[$name]}/userlist.txt" >"$out.wrk" &
      w=$!
      sleep 1
      perf record -q -g -e cpu-clock -p "$pid" -o "$out.perf" -- sleep 2 2>/dev/null
      wait "$w"
      n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out.wrk")
      # perf saw the middle 2 s of the 4 s run: about half the requests.
      ns=$(perf report -i "$out.perf" --stdio --sort comm 2>/dev/null |
        sed -n 's/.*Event count (approx.): //p')
      n=$((n / 2))
      cs=0
    else
      c0=$(cpu_ns "$pid") s0=$(bench_ctx_switches "$pid")
      bench_on_load wrk -t1 -c50 -d4s -H 'Connection: close' \
        "http://127.0.0.1:${port[$name]}/userlist.txt" >"$out.wrk"
      c1=$(cpu_ns "$pid") s1=$(bench_ctx_switches "$pid")
      n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out.wrk")
      ns=$((c1 - c0)) cs=$((s1 - s0))
    fi
    if grep -q "Socket errors\|Non-2xx" "$out.wrk"; then
      echo "  ($name: $(grep "Socket errors\|Non-2xx" "$out.wrk"))"
    fi
    awk -v r="$r" -v name="$name" -v n="$n" -v ns="$ns" -v cs="$cs" 'BEGIN {
      printf "%d %-10s %7.2f us/request %6.3f cs/request %8.0f requests/s\n",
        r, name, ns / 1000 / n, cs / n, n / 4 }'
  done
done
if [ "${PROFILE:-0}" = 1 ]; then
  echo "profiles: $work/*.perf (perf report -i FILE --children --sort sym -g none)"
else
  rm -rf "$work"
fi
