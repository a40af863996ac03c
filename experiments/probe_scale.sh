#!/usr/bin/env bash
# A 14-minute probe of configs/synth_mesh.yaml at lr 4e-4 (the sixteenth probe's baseline)
# with a predicted size per face: model.scale_range 0.3, so the viewpoint network also scales
# the canonical head about the pivot by 1/1.3 to 1.3. experiments/oracle_blur_landscape.py
# found that one mean head brought to each face's size prefers the true yaw (k = 1), where one
# mean head at one size prefers half of it. Run alone:
#   nohup bash experiments/probe_scale.sh > runs/probe_scale.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
RANGE=${RANGE:-0.3}
MINUTES=${MINUTES:-14}
mkdir -p runs/probes
"$PY" experiments/probe_recipe.py --config configs/synth_mesh.yaml \
    --set data.root=data/synth_mesh --set train.lr_decay_fraction=0 \
    --set train.precision=fp32 --set train.lr=0.0004 \
    --set model.scale_range="$RANGE" \
    --steps 100000 --minutes "$MINUTES" --every 500 --val 256 --threads 2 \
    --label "mesh-recipe-lr4e-4-scale$RANGE" --out "runs/probes/mesh_lr4e-4_scale$RANGE.jsonl" \
    --save "runs/probes/mesh_lr4e-4_scale$RANGE.pt"
