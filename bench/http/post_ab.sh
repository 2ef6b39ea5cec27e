#!/usr/bin/env bash
# A/B of imregistryd builds and nginx on the paced POST load of the http
# suite (REGISTER/LOGOUT over 20 keep-alive connections, httprate): server
# CPU per acknowledged change, the servers alternating round by round.
#
#   bench/http/post_ab.sh ROUNDS NAME=IMREGISTRYD... [nginx]
#   e.g. post_ab.sh 6 old=/tmp/imregistryd.old new=build-bench/bin/imregistryd nginx
#   STRACE=1 post_ab.sh 1 new=...   (system calls per change, strace -c -f)
#   PROFILE=1 post_ab.sh 1 new=...  (perf record -g instead, kept for perf report)
#
# Our servers run as in the suite's `--sync normal` row (`--sync normal
# --quiet`; IMREGISTRYD_ARGS replaces those flags, e.g. "--commit-on-io
# --quiet"), their data on the disk of this checkout's build directory;
# nginx answers the POSTs `return 200`, as the suite's anchor. Each run:
# POST_SECS (4) s at POST_RATE (2000) changes/s, each server and httprate
# pinned and in an autogroup of its own at BENCH_NICE, as the suite runs them
# (bench_start, bench_on_load): other work on the machine weighs on both
# sides alike. Prints one line per run: round, name, µs of server
# CPU per change, context switches per change, changes/s, p50 latency.
# Needs nginx (and strace or perf for the two modes).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../lib/common.sh"  # bench_nginx_site, bench_ab_nginx, bench_free_port, ...
rounds=$1
shift
secs=${POST_SECS:-4}
rate=${POST_RATE:-2000}
read -r -a our_args <<<"${IMREGISTRYD_ARGS:---sync normal --quiet}"
httprate=${HTTPRATE:-$here/../../build-bench/bin/httprate}
[ -x "$httprate" ] || { echo "no $httprate (build bench/ first, or set HTTPRATE)" >&2; exit 1; }
work=$(mktemp -d "$here/../../build-bench/post_ab.XXXXXX")
chmod 755 "$work"  # nginx's worker (nobody) reads the www root inside it
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${PROFILE:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

declare -A port server
names=()
for spec in "$@"; do
  if [ "$spec" = nginx ]; then
    d="$work/nginx"
    p=$(bench_free_port)
    echo x >"$work/empty.list"
    bench_nginx_site "$d" "$work/empty.list" "$p" "" 'if ($request_method = POST) { return 200; }'
    bench_ab_nginx "$d" "$p"
    server[nginx]=$BENCH_NGINX_WORKER
    port[nginx]=$p
    names+=(nginx)
    continue
  fi
  name=${spec%%=*} bin=${spec#*=}
  p=$(bench_free_port)
  mkdir -p "$work/$name"
  # Not through the function: `&` on a command keeps the server's pid in $!.
  setsid bash -c "$BENCH_PIN_SCRIPT" "$BENCH_SERVER_CPU" "$bin" --host 127.0.0.1 --port "$p" --data "$work/$name" "${our_args[@]}" \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
  server[$name]=$!
  port[$name]=$p
  names+=("$name")
  bench_wait_port "$p"
done


for r in $(seq "$rounds"); do
  for name in "${names[@]}"; do
    out="$work/$name.r$r"
    pid=${server[$name]}
    tracer=""
    if [ "${STRACE:-0}" = 1 ]; then
      strace -c -f -q -p "$pid" -o "$out.strace" &
      tracer=$!
      sleep 0.5
    elif [ "${PROFILE:-0}" = 1 ]; then
      perf record -q -g -e cpu-clock -p "$pid" -o "$out.perf" -- sleep "$secs" 2>/dev/null &
      tracer=$!
    fi
    s0=$(bench_ctx_switches "$pid")
    bench_on_load "$httprate" --port "${port[$name]}" --rate "$rate" --duration "$secs" \
      --connections 20 --prefix "r${r}x" --pid "$pid" >"$out.json"
    s1=$(bench_ctx_switches "$pid")
    if [ -n "$tracer" ]; then
      [ "${STRACE:-0}" = 1 ] && kill -INT "$tracer"
      wait "$tracer" || true
    fi
    /usr/bin/python3 - "$r" "$name" "$out.json" "$((s1 - s0))" <<'EOF'
import json, sys
r, name, path, cs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
d = json.load(open(path))
n = max(d["completed"], 1)
bad = f"  non-200 {d['non_200']} errors {d['errors']}" if d["non_200"] or d["errors"] else ""
print(f"{r} {name:<10} {d['cpu_us_per_request']:7.2f} us/change {cs / n:6.3f} cs/change "
      f"{d['rate']:7.0f}/s p50 {d['p50_us']:6.0f} us{bad}", flush=True)
EOF
    if [ "${STRACE:-0}" = 1 ]; then
      n=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["completed"])' "$out.json")
      echo "  system calls per change ($name, about $n changes; strace started 0.5 s early):"
      awk -v n="$n" '$NF ~ /^[a-z_0-9]+$/ && $1 ~ /^[0-9.]+$/ && $NF != "total" {
          calls = ($5 ~ /^[0-9]+$/) ? $4 : $4; printf "    %-16s %7.3f\n", $NF, calls / n }' "$out.strace" |
        sort -k2 -rn
    fi
  done
done
if [ "${PROFILE:-0}" = 1 ]; then
  echo "profiles: $work/*.perf (perf report -i FILE --no-children --sort dso,sym)"
fi
