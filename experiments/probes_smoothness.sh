#!/usr/bin/env bash
# Two 14-minute probes, one after the other, of configs/synth_mesh.yaml at lr 4e-4 (the
# fourteenth probe's setting): the depth smoothness at the config's 0.5, then at 0.1. Each logs
# the head area's spread across faces (experiments/probe_recipe.py), to see whether a lighter
# smoothness lets the depth follow each head. Run alone:
#   nohup bash experiments/probes_smoothness.sh > runs/probes_smoothness.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p runs/probes
for smooth in 0.5 0.1; do
    "$PY" experiments/probe_recipe.py --config configs/synth_mesh.yaml \
        --set data.root=data/synth_mesh --set train.lr_decay_fraction=0 \
        --set train.precision=fp32 --set train.lr=0.0004 \
        --set loss.lam_depth_smooth="$smooth" \
        --steps 100000 --minutes 14 --every 500 --val 256 --threads 2 \
        --label "mesh-recipe-lr4e-4-smooth$smooth" --out "runs/probes/mesh_lr4e-4_smooth$smooth.jsonl"
done
