#!/usr/bin/env bash
# `make demo-train`: rebuild the demo checkpoint from nothing on this machine, with the suite's own
# pipeline: scripted demonstrations through ROS (rosbag) -> LeRobot v3 dataset -> tiny DiT4DiT
# trained on the CPU -> closed-loop evaluation on the 20 held-out initial states.
#   EPISODES (900: 300 scenes, each cube named in turn)  STEPS (the recipe's)
#   OUT (outputs/demo_train)  RUN (OUT/run)  EXTRA (more training overrides). Collection and
#   conversion are skipped when OUT already holds them, so the no-video-loss ablation at equal
#   data and steps is, after a first run:
#   RUN=outputs/demo_train/run_novideo EXTRA=model+=objective.video_loss=false make demo-train
# Measured here: collection 40 min, conversion 6 min, training ~60 min (two cores), evaluation 3 min.
set -eo pipefail
# shellcheck source=scripts/sim_env.sh
. "$(dirname "${BASH_SOURCE[0]}")/sim_env.sh"
OUT="${OUT:-$ROOT/outputs/demo_train}"
RUN="${RUN:-$OUT/run}"
EPISODES="${EPISODES:-900}"
STEPS="${STEPS:-}"
mkdir -p "$OUT"
start=$SECONDS
if [ ! -f "$OUT/bags/reach/metadata.yaml" ]; then
  mkdir -p "$OUT/bags"
  echo "[demo-train] 1/4 collecting $EPISODES scripted demonstrations -> $OUT/bags/reach"
  python -m dit4dit_bringup.collect_demos output:="$OUT/bags/reach" episodes:="$EPISODES" \
    render_size:=96 first_index:=0 every_target:=true
fi
if [ ! -f "$OUT/data/meta/info.json" ]; then
  echo "[demo-train] 2/4 converting -> $OUT/data"
  python -m dit4dit_train.convert "$OUT/bags/reach" --map g1_tabletop --output "$OUT/data"
fi
echo "[demo-train] 3/4 training ${STEPS:-the recipe} steps -> $RUN"
# shellcheck disable=SC2086
python -m dit4dit_train.train --config "$ROOT/src/dit4dit_train/config/training/g1_tabletop_tiny.yaml" \
  --dataset "$OUT/data" --output "$RUN" ${STEPS:+steps="$STEPS"} ${EXTRA:-}
echo "[demo-train] 4/4 closed-loop evaluation on the 20 held-out initial states"
python -m dit4dit_bringup.evaluate_closed_loop --checkpoint "$RUN/checkpoint" \
  --output "$RUN/eval" --episodes 20 --videos first
echo "[demo-train] done in $(( (SECONDS - start) / 60 )) min; checkpoint $RUN/checkpoint"
