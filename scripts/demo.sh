#!/usr/bin/env bash
# `make demo`: the G1 tabletop simulation driven by the shipped tiny DiT4DiT checkpoint through the
# ROS graph (sim_bridge -> policy_node -> action_executor), on held-out initial states.
#   EPISODES (5)  CHECKPOINT (demo/g1_tabletop_reach_tiny)  OUT (outputs/demo)  STRATEGY (crossfade)
# Simulation traffic stays on this machine (loopback discovery) and on ROS_DOMAIN_ID 1 unless set:
# domain 0 is the real robot's.
set -eo pipefail
# shellcheck source=scripts/sim_env.sh
. "$(dirname "${BASH_SOURCE[0]}")/sim_env.sh"
EPISODES="${EPISODES:-5}"
require_checkpoint demo demo
OUT="${OUT:-$ROOT/outputs/demo}"
echo "[demo] $EPISODES held-out episodes of 'reach the <colour> cube' with $CHECKPOINT"
python -m dit4dit_bringup.evaluate_closed_loop --checkpoint "$CHECKPOINT" --output "$OUT" \
  --episodes "$EPISODES" --strategy "${STRATEGY:-crossfade}" --videos all
echo "[demo] videos: $OUT/videos/  results: $OUT/results.json  plot: $OUT/success.png"
