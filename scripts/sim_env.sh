# Sourced by the simulation scripts (demo, demo_g1, demo_train): the built environment, DDS on
# loopback, and a domain that is not the robot's (ROS_DOMAIN_ID 1 unless set; 0, the real G1's,
# is refused: these graphs publish joint commands and LowCmd). Sets ROOT and cds there.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. "$ROOT/env.sh"
set -u
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-1}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
if [ "$ROS_DOMAIN_ID" = "0" ]; then
  echo "refusing ROS_DOMAIN_ID=0, the robot's domain: these graphs publish commands" >&2
  exit 1
fi

# The checkpoint a demo runs (CHECKPOINT, default: the shipped one), or a hint and exit 1.
#   require_checkpoint TAG TARGET
require_checkpoint() {
  CHECKPOINT="${CHECKPOINT:-$ROOT/demo/g1_tabletop_reach_tiny}"
  if [ ! -f "$CHECKPOINT/manifest.json" ]; then
    echo "[$1] no checkpoint at $CHECKPOINT (the shipped one is demo/g1_tabletop_reach_tiny)." >&2
    echo "[$1] Rebuild one with 'make demo-train', then" >&2
    echo "[$1] CHECKPOINT=outputs/demo_train/run/checkpoint make $2" >&2
    exit 1
  fi
}
