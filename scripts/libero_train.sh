#!/usr/bin/env bash
# `make libero-train`: the tiny LIBERO policy from nothing on this machine, with the suite's own
# pipeline: the scripted LIBERO expert through ROS on training placements (rosbag, one bag per
# task) -> LeRobot v3 dataset (--map libero) -> tiny multi-task DiT4DiT trained on the CPU ->
# the benchmark harness on the tasks' official initial states (held out from collection).
#   TASKS (libero_spatial indices: "0 1 2 3 5 6 8 9", the tasks the expert solves on training
#   placements; 4, the drawer, it does not solve, 7 it solves on the official states but 0/8 on
#   training placements)  EPISODES (8 per task)  TRIALS (5 per task)  STEPS (the recipe's)
#   OUT (outputs/libero_train)  RUN (OUT/run)  EXTRA (more training overrides). Collection and
#   conversion are skipped when OUT already holds them, so the no-video-loss run at equal data
#   and steps is, after a first run:
#   RUN=outputs/libero_train/run_novideo EXTRA=model+=objective.video_loss=false make libero-train
# Measured here: collection 4-8 min per task, conversion 26 s, training 1500 steps ~55 min (two
# cores), evaluation ~4 min per task at 5 trials.
set -eo pipefail
# shellcheck source=scripts/sim_env.sh
. "$(dirname "${BASH_SOURCE[0]}")/sim_env.sh"
OUT="${OUT:-$ROOT/outputs/libero_train}"
RUN="${RUN:-$OUT/run}"
TASKS="${TASKS:-0 1 2 3 5 6 8 9}"
EPISODES="${EPISODES:-8}"
TRIALS="${TRIALS:-5}"
STEPS="${STEPS:-}"
mkdir -p "$OUT/bags"
start=$SECONDS
for k in $TASKS; do
  if [ ! -f "$OUT/bags/libero_spatial_$k/metadata.yaml" ]; then
    echo "[libero-train] 1/4 collecting $EPISODES expert demonstrations of libero_spatial/$k"
    rm -rf "$OUT/bags/libero_spatial_$k"          # a run cut short leaves no usable bag
    python -m dit4dit_bringup.collect_demos environment:=libero task:=libero_spatial/"$k" \
      episodes:="$EPISODES" render_size:=128 output:="$OUT/bags/libero_spatial_$k"
  fi
done
if [ ! -f "$OUT/data/meta/info.json" ]; then
  echo "[libero-train] 2/4 converting -> $OUT/data (the expert's successes only)"
  python -m dit4dit_train.convert "$OUT"/bags/libero_spatial_* --map libero --output "$OUT/data"
fi
echo "[libero-train] 3/4 training ${STEPS:-the recipe} steps -> $RUN"
# shellcheck disable=SC2086
python -m dit4dit_train.train --config "$ROOT/src/dit4dit_train/config/training/libero_spatial_tiny.yaml" \
  --dataset "$OUT/data" --output "$RUN" ${STEPS:+steps="$STEPS"} ${EXTRA:-}
echo "[libero-train] 4/4 the benchmark harness: $TRIALS official initial states per task"
# shellcheck disable=SC2086
python -m dit4dit_bringup.evaluate_closed_loop --env libero --checkpoint "$RUN/checkpoint" \
  --output "$RUN/eval" --suite libero_spatial --tasks $TASKS --trials-per-task "$TRIALS"
echo "[libero-train] done in $(( (SECONDS - start) / 60 )) min; checkpoint $RUN/checkpoint, table $RUN/eval/table.md"
