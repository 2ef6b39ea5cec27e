# Shared by the scripts in this folder: package installs and build helpers.
# shellcheck shell=bash

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="$(nproc 2>/dev/null || echo 2)"

# The Debian packages a build needs; the scripts add their own extras.
BUILD_PACKAGES=(build-essential cmake ninja-build pkg-config libasio-dev libexpected-dev
  doctest-dev libsqlite3-dev libssl-dev pybind11-dev python3-dev python3-pytest)

log() { printf '\n==> %s\n' "$*" >&2; }

# Where ccache is installed (the scripts do not install it), builds go through
# it, with paths taken relative to this checkout and the build directory
# left out of the hash (it is in -g builds by default), so that a fresh clone
# anywhere reuses the objects of the last one. Set CMAKE_CXX_COMPILER_LAUNCHER
# (even empty) to choose otherwise.
if [ -z "${CMAKE_CXX_COMPILER_LAUNCHER+set}" ] && command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CCACHE_BASEDIR="${CCACHE_BASEDIR:-$ROOT}" \
    CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
fi

# Installs whatever of the given packages is missing (apt-get update first).
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

# configure_build DIR [cmake args...]: configure the project (Ninja) in DIR and build it.
configure_build() {
  build_source "$ROOT" "$@"
}

# build_source SOURCE DIR [cmake args...]: the same for another source tree.
build_source() {
  local source="$1" dir="$2"
  shift 2
  cmake -S "$source" -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}
