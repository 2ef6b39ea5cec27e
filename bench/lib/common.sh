# shellcheck shell=bash
# bench/lib/common.sh - shell helpers shared by bench/run.sh and every
# bench/<suite>/suite.sh. Source it; it sets `set -euo pipefail`.
#
# The suite contract (see bench/README.md):
#   * bench/<suite>/suite.sh prints result rows on stdout, one JSON object a
#     line (bench_row / bench_row_rounds below), and progress on stderr
#     (bench_log). Nothing else goes to stdout.
#   * A line `# budget: SECONDS` near the top of suite.sh is the time the
#     runner gives it (default 300); run.sh passes it as $1 and in
#     BENCH_BUDGET, and kills the suite 30 s after that. bench_time_left
#     tells a suite how much of it is left.
#   * bench/<suite>/packages.txt, if present, lists the Debian packages the
#     suite needs (one a line, # comments); run.sh installs missing ones.
#   * bench/<suite>/CMakeLists.txt, if present, is added to the Release build
#     of bench/CMakeLists.txt; its executables land in $BENCH_BIN.
#
# Environment (run.sh exports it; a suite run alone gets these defaults):
#   BENCH_ROOT        the repository
#   BENCH_BUILD       the build directory (default $BENCH_ROOT/build-bench)
#   BENCH_BIN         every built executable, ours and the benchmarks' ($BENCH_BUILD/bin)
#   BENCH_ROUNDS      alternating rounds of ours and the anchor (default 5)
#   BENCH_ROUNDS_MAX  the cap when rounds are added because a row's spread crosses
#                     its goal undecided (default 2 x BENCH_ROUNDS)
#   BENCH_QUICK       1: shorter runs, for trying a suite out (default 0)
#   BENCH_BUDGET      this suite's seconds (default: its `# budget:` line)
#   BENCH_SERVER_CPU  core for the servers under test (default 0)
#   BENCH_LOAD_CPU    core for load generators (default 1; = server core on one CPU)
#   BENCH_NICE        nice value of the scheduling group of every server and load
#                     generator the helpers start (default -20, as root): each runs
#                     in a session of its own, so in an autogroup of its own, which
#                     the scheduler serves before other work on a shared machine
#
# Functions:
#   bench_log MSG...                 a progress line on stderr
#   bench_init                       call once at the top of a suite: makes the
#                                    scratch dir $BENCH_TMP and the EXIT trap that
#                                    stops every server started with bench_start
#   bench_ensure_packages PKG...     apt-get install what is missing (apt-get
#                                    update once, first)
#   bench_on_server CMD... / bench_on_load CMD...
#                                    run CMD pinned (taskset) to the server / load core,
#                                    in a session and autogroup of its own (BENCH_NICE)
#   bench_start NAME CMD...          start a server in the background, pinned to the
#                                    server core, stderr+stdout to $BENCH_TMP/NAME.log;
#                                    sets BENCH_PID (and BENCH_PID_OF[NAME]); bench_stop
#                                    or the EXIT trap ends it
#   bench_wait_listening NAME [N] [TIMEOUT]
#                                    wait for the N-th (default 1st) 'listening on
#                                    HOST:PORT' line in NAME's log; prints HOST:PORT
#   bench_wait_port PORT [TIMEOUT]   wait until something accepts TCP on 127.0.0.1:PORT
#   bench_stop PID                   SIGTERM, then SIGKILL after 5 s; waits for it
#   bench_free_port [udp]            a free loopback port
#   bench_ab_nginx DIR PORT          start the nginx site of DIR (bench_nginx_site) on the server core, in an autogroup at BENCH_NICE
#                                    for an A/B script and wait for PORT; adds the master to
#                                    the caller's pids array, sets BENCH_NGINX_MASTER and
#                                    BENCH_NGINX_WORKER (the one worker)
#   bench_ctx_switches PID           voluntary + involuntary context switches, all threads
#   bench_cpu_ticks PID...           utime+stime of processes (all threads, summed), clock ticks
#   bench_clk_tck                    clock ticks per second
#   bench_busy_fraction PID SECONDS CMD...
#                                    run CMD (a load run) and print the fraction of one
#                                    core PID used meanwhile, and its ticks: "0.93 279"
#   bench_core_jiffies CPU           "busy total" jiffies of one core from /proc/stat
#                                    (all processes); two readings give its busy fraction
#   bench_mark [PID...]              remember the CPU ticks of PIDs, the time and how busy
#                                    the server and load cores have been, for bench_busy
#   bench_busy                       since bench_mark: "PROC SERVER_CORE LOAD_CORE", the
#                                    share of one core the PIDs used and how busy each core
#                                    was with everything on it (0.0-1.0)
#   bench_python ARGS...             python3 with bench/lib on its path (`import bench`:
#                                    rows, saturation notes; see bench/lib/bench.py)
#   bench_median N...                the median of the numbers
#   bench_row KEY=VALUE...           print one result row; keys: benchmark metric ours
#                                    anchor_name anchor ratio goal higher_is_better note
#   bench_row_rounds KEY=VALUE...    the same from per-round numbers: ours_rounds and
#                                    anchor_rounds (space-separated, one per round)
#                                    instead of ours/anchor/ratio; ours and anchor are
#                                    their medians, ratio is the median of the
#                                    per-round ratios ours/anchor
#   bench_time_left                  seconds left of BENCH_BUDGET
#   bench_rounds RESERVE FN A B [REPORT]
#                                    BENCH_ROUNDS alternating rounds: FN ROUND A then FN ROUND B
#                                    in even rounds, B then A in odd ones; stops early when
#                                    another round would end less than RESERVE seconds before
#                                    the budget does. With
#                                    REPORT (a command printing the suite's rows from the rounds
#                                    so far), adds rounds up to BENCH_ROUNDS_MAX while a row's
#                                    spread (min-max of its per-round ratios) crosses its goal
#                                    and its rounds do not decide it (bench.py undecided)
#   bench_timeout SECONDS CMD...     run CMD, killed after SECONDS (and 5 s later -9);
#                                    CMD may start with bench_on_load / bench_on_server
#
# Ratios are always ours/anchor of the metric in the row. higher_is_better
# says which way is good and so how to read the goal: met when ratio >= goal
# if true, ratio <= goal if false (e.g. CPU per request: goal 0.83 means we
# use at most 0.83 times the anchor's CPU for each request).

set -euo pipefail

BENCH_LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${BENCH_ROOT:=$(cd "$BENCH_LIB/../.." && pwd)}"
: "${BENCH_BUILD:=$BENCH_ROOT/build-bench}"
: "${BENCH_BIN:=$BENCH_BUILD/bin}"
: "${BENCH_ROUNDS:=5}"
: "${BENCH_ROUNDS_MAX:=$((2 * BENCH_ROUNDS))}"
: "${BENCH_QUICK:=0}"
: "${BENCH_NICE:=-20}"
if [ -z "${BENCH_SERVER_CPU:-}" ] || [ -z "${BENCH_LOAD_CPU:-}" ]; then
  if [ "$(nproc)" -ge 2 ]; then
    BENCH_SERVER_CPU=0 BENCH_LOAD_CPU=1
  else
    BENCH_SERVER_CPU=0 BENCH_LOAD_CPU=0
  fi
fi
export BENCH_ROOT BENCH_BUILD BENCH_BIN BENCH_ROUNDS BENCH_ROUNDS_MAX BENCH_QUICK BENCH_SERVER_CPU BENCH_LOAD_CPU BENCH_NICE
BENCH_PIDS=()
declare -A BENCH_PID_OF=()
BENCH_STARTED_AT=$(date +%s)

bench_log() { printf '[%s %s] %s\n' "$(date +%T)" "${BENCH_SUITE:-bench}" "$*" >&2; }

bench_budget_of() {  # bench_budget_of SUITE_SH: the `# budget:` line, default 300
  local b
  b=$(sed -n 's/^# budget: *\([0-9][0-9]*\).*/\1/p' "$1" | head -1)
  echo "${b:-300}"
}

bench_init() {
  BENCH_SUITE="${BENCH_SUITE:-$(basename "$(dirname "$(realpath "$0")")")}"
  : "${BENCH_BUDGET:=$(bench_budget_of "$(realpath "$0")")}"
  export BENCH_SUITE BENCH_BUDGET
  BENCH_TMP=$(mktemp -d "/tmp/bench-$BENCH_SUITE.XXXXXX")
  export BENCH_TMP
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    [ -n "$pid" ] && bench_stop "$pid" 2>/dev/null || true
  done
  BENCH_PIDS=()
  if [ -n "${BENCH_TMP:-}" ] && [ -d "$BENCH_TMP" ] && [ "${BENCH_KEEP_TMP:-0}" != 1 ]; then
    rm -rf "$BENCH_TMP"
  fi
}

bench_ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  bench_log "installing from Debian: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# bench_pinned CPU CMD...: CMD on that core, in a new session (so a new
# autogroup) whose nice value is BENCH_NICE. The process keeps its pid
# (setsid does not fork when its caller is not a group leader, as in a script).
BENCH_PIN_SCRIPT='echo "$BENCH_NICE" >/proc/self/autogroup 2>/dev/null || true
exec taskset -c "$0" "$@"'
bench_pinned() {
  local cpu="$1"
  shift
  setsid bash -c "$BENCH_PIN_SCRIPT" "$cpu" "$@"
}
bench_on_server() { bench_pinned "$BENCH_SERVER_CPU" "$@"; }
bench_on_load() { bench_pinned "$BENCH_LOAD_CPU" "$@"; }

bench_start() {
  local name="$1"
  shift
  # Not through the function: `&` on a command keeps the server's pid in $!.
  setsid bash -c "$BENCH_PIN_SCRIPT" "$BENCH_SERVER_CPU" "$@" >"$BENCH_TMP/$name.log" 2>&1 </dev/null &
  BENCH_PID=$!
  BENCH_PIDS+=("$BENCH_PID")
  BENCH_PID_OF[$name]=$BENCH_PID
}

bench_wait_listening() {
  local name="$1" nth="${2:-1}" timeout="${3:-20}" log="$BENCH_TMP/$1.log" line i
  for ((i = 0; i < timeout * 20; i++)); do
    line=$(grep -m "$nth" -o 'listening on [^ ]*' "$log" 2>/dev/null | sed -n "${nth}p" || true)
    if [ -n "$line" ]; then
      echo "${line#listening on }"
      return 0
    fi
    if ! kill -0 "${BENCH_PID_OF[$name]:-0}" 2>/dev/null; then break; fi
    sleep 0.05
  done
  bench_log "$name did not say 'listening on' (log follows)"
  tail -20 "$log" >&2 || true
  return 1
}

bench_wait_port() {
  local port="$1" timeout="${2:-20}" i
  for ((i = 0; i < timeout * 20; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  bench_log "nothing listens on 127.0.0.1:$port"
  return 1
}

bench_stop() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local kept=() p
  for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  BENCH_PIDS=("${kept[@]}")
}

# bench_nginx_site DIR LIST PORT EXTRA_HTTP LOCATION_BODY: an nginx prefix in
# DIR serving LIST as /userlist.txt on 127.0.0.1:PORT, one worker, no access
# log (DIR/nginx.conf; start it with nginx -p DIR/ -c DIR/nginx.conf).
bench_nginx_site() {
  local dir="$1" list="$2" port="$3" extra="$4" location="$5"
  mkdir -p "$dir/www" "$dir/tmp" "$dir/logs"
  chmod 777 "$dir/tmp"
  cp "$list" "$dir/www/userlist.txt"
  chmod -R a+rX "$dir/www"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  default_type text/plain;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  $extra
  server {
    listen 127.0.0.1:$port;
    root $dir/www;
    location = /userlist.txt { $location }
  }
}
EOF
}

bench_ab_nginx() {
  local dir="$1" port="$2"
  # Not through the function: `&` on a command keeps the master's pid in $!.
  setsid bash -c "$BENCH_PIN_SCRIPT" "$BENCH_SERVER_CPU" nginx -p "$dir/" -c "$dir/nginx.conf" &
  BENCH_NGINX_MASTER=$!
  pids+=("$BENCH_NGINX_MASTER")  # the caller's EXIT trap kills these
  bench_wait_port "$port"
  BENCH_NGINX_WORKER=$(pgrep -P "$BENCH_NGINX_MASTER" | head -1)
}

bench_ctx_switches() {
  cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'
}

bench_free_port() {
  python3 - "${1:-tcp}" <<'EOF'
import socket, sys
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, kind)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
}

bench_cpu_ticks() {
  # Fields 14 and 15 of /proc/PID/stat, counted after the ')' that closes comm.
  local stat pid total=0
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat") || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

bench_clk_tck() { getconf CLK_TCK; }

bench_core_jiffies() {
  # cpuN user nice system idle iowait irq softirq steal ...
  awk -v cpu="cpu$1" '$1 == cpu { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat
}

bench_busy_fraction() {
  local pid="$1" secs="$2" t0 t1 w0 w1
  shift 2
  t0=$(bench_cpu_ticks "$pid")
  w0=$(date +%s%N)
  "$@"
  w1=$(date +%s%N)
  t1=$(bench_cpu_ticks "$pid")
  python3 -c "import sys; t=$t1-$t0; print('%.3f %d' % (t/$(bench_clk_tck)/(($w1-$w0)/1e9), t))"
}

bench_mark() {
  BENCH_MARK_PIDS="$*"
  BENCH_MARK="$(bench_cpu_ticks "$@") $(date +%s%N) $(bench_core_jiffies "$BENCH_SERVER_CPU") $(bench_core_jiffies "$BENCH_LOAD_CPU")"
}

bench_busy() {
  local now
  # shellcheck disable=SC2086
  now="$(bench_cpu_ticks $BENCH_MARK_PIDS) $(date +%s%N) $(bench_core_jiffies "$BENCH_SERVER_CPU") $(bench_core_jiffies "$BENCH_LOAD_CPU")"
  python3 - "$BENCH_MARK" "$now" "$(bench_clk_tck)" <<'EOF'
import sys
t0, w0, sb0, st0, lb0, lt0 = map(int, sys.argv[1].split())
t1, w1, sb1, st1, lb1, lt1 = map(int, sys.argv[2].split())
proc = (t1 - t0) / int(sys.argv[3]) / max(1e-9, (w1 - w0) / 1e9)
print(f"{proc:.3f} {(sb1 - sb0) / max(1, st1 - st0):.3f} {(lb1 - lb0) / max(1, lt1 - lt0):.3f}")
EOF
}

bench_python() { PYTHONPATH="$BENCH_LIB${PYTHONPATH:+:$PYTHONPATH}" python3 "$@"; }

bench_median() { python3 "$BENCH_LIB/bench.py" median "$@"; }

bench_row() { python3 "$BENCH_LIB/bench.py" row "$@"; }
bench_row_rounds() { python3 "$BENCH_LIB/bench.py" rounds "$@"; }

bench_time_left() {
  echo $((BENCH_BUDGET - ($(date +%s) - BENCH_STARTED_AT)))
}

bench_rounds() {
  local reserve="$1" fn="$2" a="$3" b="$4" report="${5:-}" r why t0 took
  for ((r = 0; ; r++)); do
    t0=$(date +%s)
    if ((r % 2 == 0)); then
      "$fn" "$r" "$a"
      "$fn" "$r" "$b"
    else
      "$fn" "$r" "$b"
      "$fn" "$r" "$a"
    fi
    took=$(($(date +%s) - t0))
    if ((r + 1 >= BENCH_ROUNDS)); then
      # Another round only while some row's spread crosses its goal undecided.
      [ -n "$report" ] && ((r + 1 < BENCH_ROUNDS_MAX)) || break
      why=$("$report" 2>/dev/null | python3 "$BENCH_LIB/bench.py" undecided 2>&1) || break
      bench_log "after $((r + 1)) rounds undecided: ${why//$'\n'/; }"
    fi
    # The next round must end RESERVE seconds before the budget does (the
    # rows are printed at the end: a suite killed at its budget has none).
    if (($(bench_time_left) < reserve + took)); then
      bench_log "budget nearly spent: stopping after $((r + 1)) rounds"
      break
    fi
  done
}

bench_timeout() {
  local secs="$1"
  shift
  case "$1" in  # `bench_timeout S bench_on_load CMD...` works too
    bench_on_load | bench_on_server)
      local cpu="$BENCH_LOAD_CPU"
      [ "$1" = bench_on_server ] && cpu="$BENCH_SERVER_CPU"
      shift
      set -- setsid bash -c "$BENCH_PIN_SCRIPT" "$cpu" "$@"
      ;;
  esac
  timeout --kill-after=5 "$secs" "$@"
}
