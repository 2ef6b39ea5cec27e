#!/usr/bin/env bash
# The main job: builds the tools, then runs the registry, buddy and relay
# servers on loopback with scripted clients going through every feature,
# and prints the conversation.
source "$(dirname "$0")/lib.sh"

ensure_packages "${BUILD_PACKAGES[@]}" python3-venv python3-pip python3-setuptools python3-wheel \
  libnats-dev nats-server  # imrelayd --cluster (scripts/cluster.sh)
log "build (g++, Release)"
# The module comes from pip below (build-release/_python): not built twice.
configure_build "$ROOT/build-release" -DCMAKE_BUILD_TYPE=Release -DIMPROTO_BUILD_TESTS=OFF -DIMPROTO_BUILD_PYTHON=OFF
log "Python: pip-install bindings/python into a temporary venv (as scripts/test.sh does)"
pyenv="$(mktemp -d)"
trap 'rm -rf "$pyenv"' EXIT
/usr/bin/python3 -m venv --system-site-packages "$pyenv/venv"
IMPROTO_PYTHON_BUILD_DIR="$ROOT/build-release/_python" "$pyenv/venv/bin/python" -m pip install \
  --quiet --no-build-isolation --no-index "$ROOT/bindings/python"
log "demo"
/usr/bin/python3 "$ROOT/scripts/demo.py" "$ROOT/build-release/tools" "$pyenv/venv/bin/python"
