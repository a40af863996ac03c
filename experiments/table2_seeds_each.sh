#!/usr/bin/env bash
# table2_seeds.py one seed at a time, so each seed's Table 2 lands (and can be committed) as
# soon as it is trained, not only after the last one. Run alone:
#   NAME=seeds_range093_rest SEEDS="0 2 1" SETS="model.min_depth=0.93 model.max_depth=1.02 \
#       model.depth_rest=1.0" nohup bash experiments/table2_seeds_each.sh > runs/seeds.log 2>&1 &
# NAME names runs/NAME/seedN and experiments/results/NAME/seedN; SEEDS (default "0 1 2") the
# training seeds in the order they run; MINUTES (default 30) the budget of steps per seed;
# SETS adds config settings (space-separated key=value) for every seed. Extra arguments go to
# table2_seeds.py. SETS="train.validate=false" skips the per-epoch validation passes: last.pt
# is evaluated either way, and only the random stream differs; the wall time is shorter.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
NAME=${NAME:?set NAME, the runs/ and results/ folder name}
EXTRA=()
for setting in ${SETS:-}; do EXTRA+=(--set "$setting"); done
for seed in ${SEEDS:-0 1 2}; do
    "$PY" experiments/table2_seeds.py --config configs/synth_mesh.yaml --data data/synth_mesh \
        --seeds "$seed" --minutes "${MINUTES:-30}" "${EXTRA[@]}" "$@" \
        --runs "runs/$NAME/seed$seed" --out "experiments/results/$NAME/seed$seed"
done
