#!/usr/bin/env bash
# `make demo-g1`: the robot's own graph (policy_node -> action_executor -> g1_bridge -> LowCmd /
# HandCmd) against the G1 twin (MuJoCo physics behind Unitree's wire), the shipped tiny checkpoint,
# held-out tabletop episodes, the operator's steps of the README.
#   EPISODES (20)  CHECKPOINT (demo/g1_tabletop_reach_tiny)  OUT (outputs/demo_g1)  VIDEOS (all)
# Traffic stays on this machine (loopback discovery) and on ROS_DOMAIN_ID 1 unless set: domain 0
# is the real robot's, and this graph publishes LowCmd.
set -eo pipefail
# shellcheck source=scripts/sim_env.sh
. "$(dirname "${BASH_SOURCE[0]}")/sim_env.sh"
EPISODES="${EPISODES:-20}"
require_checkpoint demo-g1 demo-g1
OUT="${OUT:-$ROOT/outputs/demo_g1}"
echo "[demo-g1] $EPISODES held-out episodes through the G1 graph and the twin with $CHECKPOINT"
python -m dit4dit_bringup.evaluate_g1 --checkpoint "$CHECKPOINT" --output "$OUT" \
  --episodes "$EPISODES" --videos "${VIDEOS:-all}"
echo "[demo-g1] videos: $OUT/videos/  results: $OUT/results.json  weight: $OUT/arm_sdk_weight.png"
echo "[demo-g1] logs of every node: $OUT/logs/"
