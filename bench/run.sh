#!/usr/bin/env bash
# bench/run.sh - the benchmarks of issue #4, in one command:
#
#   bash bench/run.sh              every suite; writes bench/results/latest.json
#   bash bench/run.sh parser udp   only these suites; writes build-bench/partial.json
#
# 1. installs what is missing from Debian (build tools, the anchors: wrk,
#    nginx, llhttp, http-parser, valgrind, and each suite's packages.txt);
#    apt-get update runs first, and only when something is missing;
# 2. builds the library, our servers and the benchmark programs in Release
#    (bench/CMakeLists.txt, in build-bench/), then runs each suite's
#    prepare.sh if it has one (the python suite installs the package);
# 3. runs each bench/<suite>/suite.sh within its time budget (the
#    `# budget: SECONDS` line in it), collecting the JSON rows it prints;
# 4. adds the machine and the date to every row, writes the JSON list and
#    prints one markdown table.
#
# Environment: BENCH_ROUNDS (default 5), BENCH_ROUNDS_MAX (the cap when a
# suite adds rounds because a row's spread crosses its goal; default twice
# BENCH_ROUNDS), BENCH_QUICK=1 (short runs, to try things out; its numbers
# are not for publishing), BENCH_BUILD (build dir), BENCH_SKIP_INSTALL=1,
# BENCH_SKIP_BUILD=1. See bench/README.md.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
BENCH_SUITE=run
cd "$BENCH_ROOT"
started=$(date +%s)
# Other work on the machine makes every number noisy: say so up front, and
# keep the 1-minute load average with the rows.
load=$(cut -d' ' -f1 /proc/loadavg)
if python3 -c "import sys; sys.exit(0 if float('$load') > 0.5 * $(nproc) else 1)"; then
  bench_log "warning: the machine is busy (load average $load on $(nproc) cores): expect noisy numbers"
fi

# ------------------------------------------------------------------ suites
all=()
for f in bench/*/suite.sh; do
  [ -e "$f" ] && all+=("$(basename "$(dirname "$f")")")
done
if (($#)); then
  suites=("$@")
  for s in "${suites[@]}"; do
    [ -f "bench/$s/suite.sh" ] || { bench_log "no suite '$s' (have: ${all[*]})"; exit 2; }
  done
  out="$BENCH_BUILD/partial.json"
else
  suites=("${all[@]}")
  out="bench/results/latest.json"
fi
((${#suites[@]})) || { bench_log "no bench/*/suite.sh found"; exit 2; }
bench_log "suites: ${suites[*]}"

mkdir -p "$BENCH_BUILD"
exec 9>"$BENCH_BUILD/.run.lock"
flock -n 9 || { bench_log "another bench/run.sh is running (lock $BENCH_BUILD/.run.lock)"; exit 1; }

# ---------------------------------------------------------------- packages
if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ]; then
  pkgs=(build-essential cmake ninja-build pkg-config python3 util-linux procps
    libasio-dev libexpected-dev libsqlite3-dev)
  for s in "${suites[@]}"; do
    if [ -f "bench/$s/packages.txt" ]; then
      while read -r p; do pkgs+=("$p"); done < <(sed 's/#.*//' "bench/$s/packages.txt" | tr -s ' \t' '\n' | sed '/^$/d')
    fi
  done
  bench_ensure_packages "${pkgs[@]}"
fi

# ------------------------------------------------------------------- build
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  bench_log "building (Release) in $BENCH_BUILD"
  suite_list=$(IFS=';'; echo "${suites[*]}")
  cmake -S bench -B "$BENCH_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    "-DBENCH_SUITES=$suite_list" >"$BENCH_BUILD/configure.log" 2>&1 ||
    { tail -30 "$BENCH_BUILD/configure.log" >&2; exit 1; }
  # In an autogroup of its own at BENCH_NICE, like the benchmarks: a shared
  # machine's other work does not stretch the build.
  setsid bash -c 'echo "$BENCH_NICE" >/proc/self/autogroup 2>/dev/null || true; exec "$@"' _ \
    cmake --build "$BENCH_BUILD" -j "$(nproc)" >"$BENCH_BUILD/build.log" 2>&1 ||
    { grep -E -A5 'error|FAILED' "$BENCH_BUILD/build.log" | head -60 >&2; exit 1; }
  bench_log "built in $(($(date +%s) - started)) s"
  # A suite's own build steps (bench/<suite>/prepare.sh), outside its budget.
  for s in "${suites[@]}"; do
    if [ -f "bench/$s/prepare.sh" ]; then
      t0=$(date +%s)
      BENCH_SUITE="$s" bash "bench/$s/prepare.sh" || { bench_log "bench/$s/prepare.sh failed"; exit 1; }
      bench_log "prepared $s in $(($(date +%s) - t0)) s"
    fi
  done
  export BENCH_PREPARED=1
fi

# -------------------------------------------------------------------- runs
# Every suite uses this build: the relay suite's own switch for that.
export RELAY_BENCH_BIN="${RELAY_BENCH_BIN:-$BENCH_BIN}"
rows="$BENCH_BUILD/rows.jsonl"
: >"$rows"
failed=()
for s in "${suites[@]}"; do
  budget=$(bench_budget_of "bench/$s/suite.sh")
  bench_log "suite $s (budget ${budget} s)"
  t0=$(date +%s)
  rc=0
  BENCH_SUITE="$s" BENCH_BUDGET="$budget" \
    timeout --kill-after=10 "$((budget + 30))" bash "bench/$s/suite.sh" "$budget" \
    >"$BENCH_BUILD/rows-$s.jsonl" || rc=$?
  n=$(grep -c '^{' "$BENCH_BUILD/rows-$s.jsonl" || true)
  python3 bench/lib/bench.py tag "suite=$s" "load_average_at_start=$load" \
    <"$BENCH_BUILD/rows-$s.jsonl" >>"$rows"
  if [ "$rc" -ne 0 ]; then
    failed+=("$s")
    bench_log "suite $s FAILED (exit $rc) after $(($(date +%s) - t0)) s; kept its $n rows"
  else
    bench_log "suite $s: $n rows in $(($(date +%s) - t0)) s"
  fi
done

mkdir -p "$(dirname "$out")"
echo
python3 bench/lib/bench.py finish "$rows" "$out"
echo
total=$(($(date +%s) - started))
echo "Wrote $out; total time $((total / 60)) min $((total % 60)) s."
if ((${#failed[@]})); then
  echo "Failed suites: ${failed[*]}" >&2
  exit 1
fi
