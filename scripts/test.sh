#!/usr/bin/env bash
# Run `colcon test` on every package of the built workspace and end with each package's pytest
# summary line and a total. Exit non-zero if any test failed or errored, or a package ran no test.
# Extra arguments go to `colcon test` (e.g. --packages-select dit4dit_policy).
#
# Each run takes its own ROS_DOMAIN_ID (10-99, held by a lock for the run), so two runs on one
# machine never cross-talk; discovery stays on loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST).
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WS="${DIT4DIT_WS:-$ROOT}"
cd "$WS"
# shellcheck disable=SC1091
. "$ROOT/env.sh"
set -u

if [ -z "${DIT4DIT_TEST_DOMAIN:-}" ]; then
  for id in $(seq 10 99 | shuf); do
    exec {lockfd}>"/tmp/dit4dit_ros-domain-$id.lock"
    if flock -n "$lockfd"; then DIT4DIT_TEST_DOMAIN=$id; break; fi
    exec {lockfd}>&-
  done
fi
export ROS_DOMAIN_ID="${DIT4DIT_TEST_DOMAIN:?no free ROS_DOMAIN_ID in 10-99}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_LOG_DIR="$WS/log/ros"
export PYTHONDONTWRITEBYTECODE=1
echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID, discovery on loopback only"

start=$SECONDS
set +e
# Sequential: timing-sensitive wiring tests must not share the 2 cores with training tests.
colcon test --executor sequential --event-handlers console_cohesion- summary+ status- \
  --return-code-on-test-failure "$@"
rc=$?
set -e
echo "[test] colcon test finished in $((SECONDS - start)) s (exit $rc)"
python3 "$ROOT/scripts/test_summary.py" "$WS"
summary_rc=$?
if [ "$rc" -eq 0 ] && [ "$summary_rc" -ne 0 ]; then rc=$summary_rc; fi
exit "$rc"
