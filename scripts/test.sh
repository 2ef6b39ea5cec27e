#!/usr/bin/env bash
# Builds and runs every test: unit and integration tests (ctest), the same
# tests under ASan+UBSan, a bounded fuzz smoke run of every decoder, and the
# example built against the installed package, and the Python package
# installed with pip and its tests. Our own builds treat warnings as errors
# (IMPROTO_WERROR; off by default for consumers).
source "$(dirname "$0")/lib.sh"

# xvfb, python3-tk, python3-pil: the chat window's test (a private X server,
# Tk, its screenshot); iproute2, nftables: the lossy-link test (network
# namespaces joined by a veth pair, random drop); libpq-dev: the PostgreSQL
# stores; postgresql: the throwaway server the store and integration tests
# start (tests/support/postgres.py); libnats-dev, nats-server: the relay
# cluster (IMPROTO_WITH_NATS=ON) and its tests' NATS servers.
ensure_packages "${BUILD_PACKAGES[@]}" clang libclang-rt-14-dev curl \
  libpq-dev postgresql postgresql-common libnats-dev nats-server \
  python3-venv python3-pip python3-setuptools python3-wheel \
  xvfb python3-tk python3-pil iproute2 nftables

log "build and test (g++, RelWithDebInfo)"
configure_build "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMPROTO_WERROR=ON -DIMPROTO_WITH_NATS=ON
ctest --test-dir "$ROOT/build" --output-on-failure -j "$JOBS"

log "tests under AddressSanitizer + UndefinedBehaviorSanitizer (clang)"
configure_build "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
  -DIMPROTO_SANITIZE=address,undefined -DIMPROTO_WERROR=ON -DIMPROTO_BUILD_PYTHON=OFF \
  -DIMPROTO_WITH_NATS=ON
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$ROOT/build-asan" --output-on-failure -j "$JOBS"

log "fuzz smoke run (libFuzzer, ${FUZZ_SECONDS:-20} s per target)"
configure_build "$ROOT/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DIMPROTO_BUILD_FUZZERS=ON -DIMPROTO_BUILD_TESTS=OFF \
  -DIMPROTO_BUILD_TOOLS=OFF -DIMPROTO_BUILD_PYTHON=OFF \
  -DIMPROTO_SANITIZE=fuzzer-no-link,address,undefined -DIMPROTO_WERROR=ON
bash "$ROOT/tests/fuzz/smoke.sh" "$ROOT/build-fuzz" "${FUZZ_SECONDS:-20}"

log "install, then build the examples against the installed package"
prefix="$ROOT/build/_install"
rm -rf "$prefix"
cmake --install "$ROOT/build" --prefix "$prefix" >/dev/null
build_source "$ROOT/examples" "$ROOT/build/_examples" -DCMAKE_PREFIX_PATH="$prefix"
ctest --test-dir "$ROOT/build/_examples" --output-on-failure

log "Python: pip-install bindings/python into a temporary venv, run tests/python against it"
pyenv="$(mktemp -d)"
/usr/bin/python3 -m venv --system-site-packages "$pyenv/venv"
# build/_python keeps pip's CMake build between runs (incremental rebuilds).
IMPROTO_PYTHON_BUILD_DIR="$ROOT/build/_python" "$pyenv/venv/bin/python" -m pip install \
  --quiet --no-build-isolation --no-index "$ROOT/bindings/python"
# IMPROTO_BIN_DIR: the client tests run against the real servers (build/tools) too;
# the GUI test's screenshot lands in build/test-output.
(cd "$pyenv" && IMPROTO_EXPECT_INSTALLED=1 IMPROTO_BIN_DIR="$ROOT/build/tools" \
  IMPROTO_TEST_OUTPUT="$ROOT/build/test-output" \
  "$pyenv/venv/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/tests/python")
rm -rf "$pyenv"

log "all tests passed"
