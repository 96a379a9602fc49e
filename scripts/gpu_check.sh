#!/usr/bin/env bash
# One-shot check of the 2B configuration on a machine with a CUDA GPU (after `make setup` with a
# CUDA build of torch). Random weights of the real architecture, nothing downloaded:
#   1. the query benchmark in bf16 (python -m dit4dit_policy.bench --random-weights): query Hz,
#      stage times, FLOPs of the early exit vs the official recipe, peak memory;
#   2. a few training steps of the 2B recipe at batch 1 per GPU (config/training/cosmos_2b_g1.yaml
#      through config/accelerate/fsdp2_bf16.yaml: FSDP2, bf16, activation checkpointing) on a
#      small synthetic dataset: samples/s and peak memory per GPU.
#   OUT (outputs/gpu_check)  GPUS (all visible)  STEPS (3)  ITERS (20)
# Without a CUDA GPU it says so and exits 0. GPU_CHECK_DEVICE=cpu with GPU_CHECK_OVERRIDES (model
# overrides, e.g. smaller) runs the same steps on the CPU in one process: how the tests check it.
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. "$ROOT/env.sh"
set -u
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
if [ "$DEVICE" = cuda ] && ! python -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  echo "[gpu_check] no CUDA GPU here (torch $(python -c 'import torch; print(torch.__version__)')," \
    "torch.cuda.is_available() is False): nothing to check"
  exit 0
fi
OUT="${OUT:-$ROOT/outputs/gpu_check}"
STEPS="${STEPS:-3}"
ITERS="${ITERS:-20}"
read -r -a EXTRA <<< "${GPU_CHECK_OVERRIDES:-}"
OVERRIDES=(text.encoder=bytes "${EXTRA[@]}")
BENCH=()
for o in "${OVERRIDES[@]}"; do BENCH+=(--override "$o"); done
MODEL="$(python -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${OVERRIDES[@]}")"
rm -rf "$OUT" && mkdir -p "$OUT"

if [ "$DEVICE" = cuda ]; then DTYPE=bf16; WARMUP=3; else DTYPE=fp32; ITERS=1; WARMUP=0; fi
echo "[gpu_check] 1/2 query benchmark of cosmos-predict2.5-2b ($DTYPE, random weights) on $DEVICE"
python -m dit4dit_policy.bench --preset cosmos-predict2.5-2b --random-weights "${BENCH[@]}" \
  --device "$DEVICE" --dtype "$DTYPE" --iters "$ITERS" --warmup "$WARMUP" \
  --out "$OUT/bench_2b.json"

echo "[gpu_check] 2/2 $STEPS training steps of the 2B recipe at batch 1 per process"
python -m dit4dit_train.synthetic_bags "$OUT/synthetic" --seconds 4 --size 224x224
TRAIN=(-m dit4dit_train.train --config src/dit4dit_train/config/training/cosmos_2b_g1.yaml
  --dataset "$OUT/synthetic/data" --output "$OUT/train" --no-progress "steps=$STEPS"
  batch_size=1 num_workers=2 warmup_steps=1 log_every=1 "save_every=$STEPS" random_weights=true
  "model+=$MODEL")
if [ "$DEVICE" = cuda ]; then
  GPUS="${GPUS:-$(python -c 'import torch; print(torch.cuda.device_count())')}"
  accelerate launch --config_file src/dit4dit_train/config/accelerate/fsdp2_bf16.yaml \
    --num_processes "$GPUS" "${TRAIN[@]}" | tee "$OUT/train.log"
else
  python "${TRAIN[@]}" mixed_precision=no | tee "$OUT/train.log"
fi
python - "$OUT/bench_2b.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"[gpu_check] 2B query on {r['device']} ({r['dtype']}): {r['query_hz']:.2f} Hz "
      f"(p50 {r['query']['total']['p50_ms']:.1f} ms), official recipe "
      f"{r['official_over_query']:.2f}x slower and {r['flops']['official_over_query']:.2f}x "
      f"the FLOPs; peak memory {r['peak_memory_mb']:.0f} MB ({r['peak_memory_kind']})")
PY
grep '^\[train\]' "$OUT/train.log" | tail -1 | sed 's/^\[train\]/[gpu_check] 2B training:/'
echo "[gpu_check] reports: $OUT/bench_2b.json $OUT/train/metrics.jsonl"
