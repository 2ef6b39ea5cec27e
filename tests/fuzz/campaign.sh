#!/usr/bin/env bash
# Long fuzzing campaign (not run by CI): builds the fuzz targets as
# scripts/test.sh does (clang, -fsanitize=fuzzer,address,undefined,
# RelWithDebInfo, in build-fuzz/), replays tests/fuzz/regressions/, then runs
# each target for SECONDS, one after the other, on one core at nice 19, from
# a corpus kept between campaigns in tests/fuzz/corpus-work/<target>/
# (gitignored; seeded and topped up from tests/vectors by seed_corpus.py).
#
#   tests/fuzz/campaign.sh SECONDS [TARGET...]    # default: every target
#
# Stops at the first finding (crash, sanitizer report, broken invariant,
# timeout, out of memory) and exits 1; the input is in corpus-work/artifacts/
# and the log in corpus-work/<target>.log. Prints one line per target:
# executions, seconds, executions per second, corpus files.
# IMPROTO_FUZZ_BUILD=DIR uses another build directory; IMPROTO_FUZZ_MAX_LEN
# (default 4096) bounds input sizes. ASAN_OPTIONS defaults to a short
# allocation stack (malloc_context_size=4: ~13% more executions; a finding is
# replayed with full stacks by running the target on its input).
# IMPROTO_FUZZ_RUNS=N stops each target after N executions (or SECONDS,
# whichever comes first). IMPROTO_FUZZ_ASAN=0 fuzzes a build without ASan
# (Release, UBSan only, in build-fuzz-fast/: more executions per second) and
# then replays every input the target kept under the ASan build, so what the
# corpus reached is still checked for memory errors.
set -euo pipefail
export ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=4}

usage() {
  echo "usage: $0 SECONDS [fuzz_TARGET...]" >&2
  exit 2
}
[[ $# -ge 1 ]] || usage
seconds=$1
shift
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "campaign.sh: SECONDS must be a positive integer" >&2; usage; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
asan_build=${IMPROTO_FUZZ_BUILD:-$root/build-fuzz}
with_asan=${IMPROTO_FUZZ_ASAN:-1}
runs=${IMPROTO_FUZZ_RUNS:-}
[[ -z $runs || $runs =~ ^[1-9][0-9]*$ ]] || { echo "campaign.sh: IMPROTO_FUZZ_RUNS must be a positive integer" >&2; exit 2; }
work=$here/corpus-work
max_len=${IMPROTO_FUZZ_MAX_LEN:-4096}
python=${PYTHON:-/usr/bin/python3}
[[ -x $python ]] || python=python3

# build DIR BUILD_TYPE SANITIZERS [CMAKE_ARGS...]
build_fuzzers() {
  local dir=$1 type=$2 sanitize=$3
  shift 3
  echo "campaign: building the fuzz targets in $dir ($sanitize)"
  CMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER:-$(command -v ccache || true)} \
    cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" \
    -DCMAKE_CXX_COMPILER=clang++ -DIMPROTO_BUILD_FUZZERS=ON -DIMPROTO_BUILD_TESTS=OFF \
    -DIMPROTO_BUILD_TOOLS=OFF -DIMPROTO_BUILD_PYTHON=OFF -DIMPROTO_SANITIZE="$sanitize" "$@" > /dev/null
  nice -n 19 cmake --build "$dir" --target fuzzers -j 1 > "$dir/campaign-build.log" 2>&1 || {
    tail -n 40 "$dir/campaign-build.log" >&2
    echo "campaign: build failed (log: $dir/campaign-build.log)" >&2
    exit 1
  }
}
build_fuzzers "$asan_build" RelWithDebInfo fuzzer-no-link,address,undefined
build=$asan_build
if [[ $with_asan == 0 ]]; then
  build=$root/build-fuzz-fast
  build_fuzzers "$build" Release fuzzer-no-link,undefined -DIMPROTO_FUZZ_WITHOUT_ASAN=ON
fi

if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  mapfile -t targets < <(find "$build/tests/fuzz" -maxdepth 1 -type f -perm -u+x -name 'fuzz_*' \
                           -printf '%f\n' | sort)
fi
[[ ${#targets[@]} -gt 0 ]] || { echo "campaign: no fuzz targets built" >&2; exit 1; }
mkdir -p "$work/artifacts"

status=0
summary=()
for name in "${targets[@]}"; do
  exe=$build/tests/fuzz/$name
  [[ -x $exe ]] || { echo "campaign: no target $exe" >&2; exit 2; }
  "$python" "$here/seed_corpus.py" "$work" "$name" > /dev/null
  log=$work/$name.log
  : > "$log"
  rm -f "$work/$name.asan.log"
  # Inputs that once broke this target must pass before anything else.
  if [[ -d $here/regressions/$name ]]; then
    if ! "$exe" "$here/regressions/$name"/* >> "$log" 2>&1; then
      echo "campaign: $name fails on a regression input (log: $log)" >&2
      status=1
      break
    fi
  fi
  echo "campaign: $name for $seconds s (log: $log)"
  rc=0
  # One process, one job: at most one core. The outer timeout only guards
  # against a hung target; libFuzzer stops itself after -max_total_time.
  timeout -k 30 $((seconds + 600)) nice -n 19 "$exe" -max_total_time="$seconds" \
    -max_len="$max_len" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    ${runs:+-runs="$runs"} -artifact_prefix="$work/artifacts/$name-" "$work/$name" >> "$log" 2>&1 || rc=$?
  if [[ $rc -eq 0 && $build != "$asan_build" ]]; then
    # Every input kept, once, under ASan (-runs=0: load the corpus, then stop).
    echo "campaign: $name: replaying $(find "$work/$name" -type f | wc -l) inputs under ASan" >> "$log"
    nice -n 19 "$asan_build/tests/fuzz/$name" -runs=0 -max_len="$max_len" -timeout=30 \
      -rss_limit_mb=2048 -artifact_prefix="$work/artifacts/$name-asan-" "$work/$name" \
      > "$work/$name.asan.log" 2>&1 || rc=$?
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  files=$(find "$work/$name" -type f | wc -l)
  if [[ $rc -eq 0 && -n $execs ]]; then
    rate=$(( execs / (${took:-$seconds} > 0 ? ${took:-$seconds} : 1) ))
    line=$(printf '%-22s ok       executions=%-10s seconds=%-6s exec/s=%-6s corpus=%s' \
                  "$name" "$execs" "${took:-$seconds}" "$rate" "$files")
    summary+=("$line")
    echo "$line"
  else
    line=$(printf '%-22s FINDING  exit=%s executions=%s (log: %s)' "$name" "$rc" "${execs:-?}" "$log")
    summary+=("$line")
    echo "$line"
    grep -v '^#[0-9]' "$log" | tail -n 60 >&2
    [[ ! -s $work/$name.asan.log ]] || tail -n 60 "$work/$name.asan.log" >&2
    ls -1 "$work/artifacts/$name-"* 2>/dev/null | sed 's/^/    input: /' >&2 || true
    status=1
    break
  fi
done

echo "campaign: summary"
printf '  %s\n' "${summary[@]}"
exit $status
