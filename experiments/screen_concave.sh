#!/usr/bin/env bash
# Screen fixes for the concave twin: seed 2 with the range 0.93-1.02 and the rest at the pivot
# turns the wrong way by step 500 (probe notes, thirty-eighth probe). Each fix runs a 500-step
# probe_plain_faces.sh of seed 2 (5-9 minutes), one after another; a fix holds when the yaw
# correlation is positive and the nearest canonical depth sits in front of the rest at step 500.
# FIXES is a ';'-separated list of TAG=settings (settings space-separated key=value):
#   FIXES="dome06=model.dome_depth_init=0.06;hold500=train.depth_hold_steps=500" \
#       nohup bash experiments/screen_concave.sh > runs/screen_concave.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
BASE="model.min_depth=0.93 model.max_depth=1.02 model.depth_rest=1.0"
IFS=';' read -ra fixes <<< "${FIXES:?set FIXES}"
for fix in "${fixes[@]}"; do
    tag=${fix%%=*}
    sets=${fix#*=}
    echo "# $(date -u +%H:%M) screen $tag: $sets"
    VARIANT=default SEED=${SEED:-2} STEPS=${STEPS:-500} MINUTES=${MINUTES:-20} \
        TAG="range093_102_rest1_$tag" SETS="$BASE $sets" bash experiments/probe_plain_faces.sh
done
