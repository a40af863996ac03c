#!/usr/bin/env bash
# configs/synth_mesh.yaml (today's recipe, as it stands) on mesh faces framed tighter or looser
# than the default, for the issue's face-fraction probes: one 20-minute probe_recipe.py run per
# fraction, one after another, with its diagnostics every 250 steps. Run alone:
#   nohup bash experiments/probe_face_fraction.sh > runs/probe_face_fraction.log 2>&1 &
# FRACTIONS (default "30 70") picks them: NN makes data/synth_mesh_fNN with heads covering
# (NN-5)% to (NN+5)% of the frame (NN from 15 to 94), as the earlier face-fraction probes did.
# MINUTES (default 20). TAG (default "recipe") names the runs. Output:
# runs/probes/mesh_fNN_<TAG>_<date>.jsonl, and the last step's weights beside it (.pt).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p runs/probes
for nn in ${FRACTIONS:-30 70}; do
    data=data/synth_mesh_f$nn
    range=$(printf '0.%02d,0.%02d' $((nn - 5)) $((nn + 5)))
    [ -d "$data/train" ] || "$PY" -m unsup3d_cli synth "$data" --num 3750 --seed 0 --workers 2 \
        --face-fraction "$range"
    name=mesh_f${nn}_${TAG:-recipe}_$(date +%F)
    "$PY" experiments/probe_recipe.py --config configs/synth_mesh.yaml \
        --set data.root="$data" --set train.lr_decay_fraction=0 --set train.precision=fp32 \
        --steps 100000 --minutes "${MINUTES:-20}" --every 250 --val 256 --threads 2 \
        --label "$name" --out "runs/probes/$name.jsonl" --save "runs/probes/$name.pt"
done
