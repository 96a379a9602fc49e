#!/usr/bin/env bash
# Build the workspace with colcon (part of `make setup`). Extra arguments go to `colcon build`.
# tools/unitree_hg and tools/unitree_api are built only when no unitree_hg package is installed
# elsewhere (e.g. a sourced unitree_ros2), so such a user keeps Unitree's own packages.
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. "$ROOT/env.sh"
set -u

external_unitree=""
IFS=: read -r -a prefixes <<< "${AMENT_PREFIX_PATH:-}"
for p in "${prefixes[@]}"; do
  case "$p" in "$ROOT/install"*) continue ;; esac
  if [ -n "$p" ] && [ -f "$p/share/unitree_hg/package.xml" ]; then external_unitree="$p"; break; fi
done

base_paths=(src)
if [ -n "$external_unitree" ]; then
  echo "[build] unitree_hg found in $external_unitree: using it, not building tools/unitree_*"
else
  base_paths+=(tools)
fi

start=$SECONDS
colcon build --base-paths "${base_paths[@]}" --event-handlers console_cohesion- summary+ "$@"
echo "[build] workspace built in $((SECONDS - start)) s"
