#!/usr/bin/env bash
# The main job: builds the tools, then runs the registry, buddy and relay
# servers on loopback with scripted clients going through every feature,
# and prints the conversation.
source "$(dirname "$0")/lib.sh"

ensure_packages "${BUILD_PACKAGES[@]}"
log "build (g++, Release)"
configure_build "$ROOT/build-release" -DCMAKE_BUILD_TYPE=Release -DIMPROTO_BUILD_TESTS=OFF
log "demo"
exec /usr/bin/python3 "$ROOT/scripts/demo.py" "$ROOT/build-release/tools"
