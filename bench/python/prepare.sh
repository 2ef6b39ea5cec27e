#!/usr/bin/env bash
# Installs bindings/python into $BENCH_BUILD/python-venv (Release), as a user
# installs it. bench/run.sh runs this after its build, outside the suite's
# time budget (compiling the module takes minutes on a loaded machine);
# suite.sh runs it itself when it is run alone.
source "$(dirname "$0")/../lib/common.sh"
BENCH_SUITE=python

venv="$BENCH_BUILD/python-venv"
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
bench_log "installing bindings/python into $venv (Release)"
mkdir -p "$BENCH_BUILD"
# build-bench/_python keeps the module's CMake build between runs (or
# BENCH_PYTHON_BUILD_DIR: reuse another Release build of it, e.g. scripts/test.sh's build/_python).
IMPROTO_PYTHON_BUILD_DIR="${BENCH_PYTHON_BUILD_DIR:-$BENCH_BUILD/_python}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$venv/bin/python" -m pip install --quiet --no-build-isolation --no-index --force-reinstall --no-deps \
  "$BENCH_ROOT/bindings/python" >"$BENCH_BUILD/python-pip.log" 2>&1 ||
  { tail -30 "$BENCH_BUILD/python-pip.log" >&2; exit 1; }
