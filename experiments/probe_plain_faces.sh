#!/usr/bin/env bash
# Which of the mesh generator's factors slow the pose? The fourteen-minute lr 4e-4 probe of
# configs/synth_mesh.yaml (the sixteenth probe's baseline) on a variant of the mesh faces made
# by experiments/synth_variant.py (default 'plain': no fill light, no highlight, no hair, neck
# or expressions, flat backgrounds). Same seed, so the same heads, poses and framing. Run alone:
#   nohup bash experiments/probe_plain_faces.sh > runs/probe_plain_faces.log 2>&1 &
#   VARIANT=flat-background nohup bash experiments/probe_plain_faces.sh > runs/probe_flat_bg.log 2>&1 &
# VARIANT=default probes the default mesh faces (data/synth_mesh, made by `unsup3d synth`);
# SEED (default 0) is train.seed, for the run-to-run spread; MINUTES (default 14) the budget;
# STEPS (default no limit) stops it at a step count first, for a screen at step 500.
# SETS adds config settings (space-separated key=value) and TAG names them in the output files:
#   VARIANT=default SETS="loss.lam_gradient=1" TAG=grad1 nohup bash experiments/probe_plain_faces.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
VARIANT=${VARIANT:-plain}
SEED=${SEED:-0}
DATA=data/synth_mesh_$VARIANT
NAME=mesh_${VARIANT}_lr4e-4
SETS=${SETS:-}
TAG=${TAG:-}
if [ -n "$TAG" ]; then NAME=${NAME}_$TAG; fi
if [ "$SEED" != 0 ]; then NAME=${NAME}_seed$SEED; fi
EXTRA=()
for setting in $SETS; do EXTRA+=(--set "$setting"); done
mkdir -p runs/probes
if [ "$VARIANT" = default ]; then
    DATA=data/synth_mesh
    [ -d "$DATA/train" ] || .venv/bin/unsup3d synth "$DATA" --num 3750 --seed 0 --workers 2
elif [ ! -f "$DATA/variant.json" ]; then
    "$PY" experiments/synth_variant.py "$DATA" --variant "$VARIANT" --num 3750 --seed 0 \
        --workers 2 --force
fi
"$PY" experiments/probe_recipe.py --config configs/synth_mesh.yaml \
    --set data.root="$DATA" --set train.lr_decay_fraction=0 \
    --set train.precision=fp32 --set train.lr=0.0004 --set train.seed="$SEED" "${EXTRA[@]}" \
    --steps "${STEPS:-100000}" --minutes "${MINUTES:-14}" --every 500 --val 256 --threads 2 \
    --label "$NAME" --out "runs/probes/$NAME.jsonl" --save "runs/probes/$NAME.pt"
