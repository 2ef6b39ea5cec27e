#!/usr/bin/env bash
# Fuzz smoke test: runs every fuzz_* executable under BUILD_DIR for SECONDS
# (default 20) from a fresh corpus seeded with the test vectors, prints one
# line per target with its executions, and exits non-zero if any target
# crashed, broke an invariant, timed out or was not run.
#
#   tests/fuzz/smoke.sh BUILD_DIR [SECONDS]
#
# Each target first replays tests/fuzz/regressions/<target>/ (inputs that
# once broke it), then fuzzes with inputs of at most 4096 bytes.
# Everything happens in one temporary directory, removed at the end; when a
# target fails, the directory (crash input, log) is kept and its path printed.
# Targets run in parallel, at most one per CPU (IMPROTO_FUZZ_JOBS overrides).
set -euo pipefail

usage() {
  echo "usage: $0 BUILD_DIR [SECONDS=20]" >&2
  exit 2
}
[[ $# -ge 1 && $# -le 2 ]] || usage
[[ -d $1 ]] || { echo "smoke.sh: $1 is not a directory" >&2; usage; }
build=$(cd "$1" && pwd)
seconds=${2:-20}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "smoke.sh: SECONDS must be a positive integer" >&2; usage; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-/usr/bin/python3}
[[ -x $python ]] || python=python3
jobs=${IMPROTO_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}

# Executables named fuzz_<name> (no extension): skips objects and sources.
mapfile -t targets < <(find "$build" -type f -perm -u+x -regex '.*/fuzz_[A-Za-z0-9_]*' | sort)
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "smoke.sh: no fuzz_* executables under $build (configure with -DIMPROTO_BUILD_FUZZERS=ON" \
       "and build first)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/improto-fuzz-smoke.XXXXXX")
keep=0
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ $keep -eq 0 ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

names=()
for exe in "${targets[@]}"; do
  name=$(basename "$exe")
  if [[ " ${names[*]} " == *" $name "* ]]; then
    echo "smoke.sh: $exe: a target named $name was already found, skipped" >&2
    continue
  fi
  names+=("$name")
  dir=$work/$name
  mkdir -p "$dir/artifacts"
  "$python" "$here/seed_corpus.py" "$dir" "$name" > /dev/null
  while [[ $(jobs -rp | wc -l) -ge $jobs ]]; do wait -n || true; done
  (
    cd "$dir"
    rc=0
    if [[ -d $here/regressions/$name ]]; then
      "$exe" "$here/regressions/$name"/* > "$dir/log" 2>&1 || rc=$?
    fi
    # The outer timeout only guards against a hung target: libFuzzer stops
    # itself after -max_total_time, and -timeout catches one slow input.
    if [[ $rc -eq 0 ]]; then
      timeout -k 10 $((seconds + 120)) "$exe" -max_total_time="$seconds" -print_final_stats=1 \
        -max_len=4096 -timeout=30 -rss_limit_mb=2048 -artifact_prefix="$dir/artifacts/" \
        "$dir/$name" >> "$dir/log" 2>&1 || rc=$?
    fi
    echo "$rc" > "$dir/rc"
  ) &
  pids+=($!)
done
wait "${pids[@]}" 2>/dev/null || true
pids=()

failed=0
for name in "${names[@]}"; do
  dir=$work/$name
  rc=$(cat "$dir/rc" 2>/dev/null || echo "not run")
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$dir/log" | tail -n 1)
  seeds=$(find "$dir/$name" -type f | wc -l)
  if [[ $rc == 0 && -n $execs ]]; then
    printf '%-20s ok     executions=%-10s corpus=%s\n' "$name" "$execs" "$seeds"
  else
    failed=1
    printf '%-20s FAILED exit=%s executions=%s\n' "$name" "$rc" "${execs:-?}"
    # Progress lines ("#1234 NEW ...") are dropped; indented stack frames stay.
    sed 's/^/    /' "$dir/log" | grep -v '^    #[0-9]' | tail -n 60 >&2
    for a in "$dir"/artifacts/*; do [[ -e $a ]] && echo "    input: $a" >&2; done
  fi
done
if [[ $failed -ne 0 ]]; then
  keep=1
  echo "smoke.sh: failures; logs and inputs kept in $work" >&2
  exit 1
fi
