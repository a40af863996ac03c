#!/usr/bin/env bash
# A 14-minute probe of configs/synth_mesh.yaml at lr 4e-4 (the sixteenth probe's baseline)
# with the heads free to move along the view axis: model.z_translation_range 0.3, and the
# view depth clamp widened to 0.5-1.5 to keep them valid there. experiments/oracle_blur_landscape.py
# found that one mean head at one size, with each face's size from a z-translation, prefers
# the true yaw, where a mean head at one size prefers half of it. Run alone:
#   nohup bash experiments/probe_z_translation.sh > runs/probe_z_translation.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p runs/probes
"$PY" experiments/probe_recipe.py --config configs/synth_mesh.yaml \
    --set data.root=data/synth_mesh --set train.lr_decay_fraction=0 \
    --set train.precision=fp32 --set train.lr=0.0004 \
    --set model.z_translation_range=0.3 --set "model.view_depth_range=[0.5,1.5]" \
    --steps 100000 --minutes 14 --every 500 --val 256 --threads 2 \
    --label mesh-recipe-lr4e-4-z0.3 --out runs/probes/mesh_lr4e-4_z0.3.jsonl \
    --save runs/probes/mesh_lr4e-4_z0.3.pt
