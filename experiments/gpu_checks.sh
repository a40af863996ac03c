#!/usr/bin/env bash
# Every check of the scale-out work that needs a GPU, in one run, for a session lent one:
# the CUDA tests (among them the training step under torch.cuda.set_sync_debug_mode("error")),
# the rasterizer's exact and fixed-size visibility passes, the paper recipe's training
# throughput and the reconstruct throughput. Results land in $OUT (the device tool's folder)
# or runs/gpu_checks/; copy the JSON/markdown into experiments/results/ once read.
#
# The device machine has no network. Its python3 holds torch, torchvision, typer, pyyaml,
# scikit-image, safetensors, tensorboard, imageio, tqdm and rich, but not kornia or trimesh,
# so carry those as wheels. Once, in the repository root of this checkout:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 -d .whl kornia kornia-rs trimesh
#
# then, with the device tool: run(command="bash experiments/gpu_checks.sh", carry=[".whl"],
# timeout_s=540). No synthetic data travels (data/ is ignored): the benchmarks that use it fall
# back to random depths and generated faces.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_checks}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
PY=${PY:-python3}

step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

step "device"
nvidia-smi -L 2>&1 | tee "$OUT/device.txt"
$PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/device.txt"

step "CUDA tests (the sync check included)"
timeout 240 $PY -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tee "$OUT/gpu_tests.log"

step "rasterizer: exact against fixed-size visibility, batch 128"
timeout 60 $PY experiments/bench_raster.py --device cuda --out "$OUT/bench_raster_cuda.json"

step "training step, paper recipe (width 64, batch 64, VGG16 on random weights)"
timeout 180 $PY experiments/bench_train.py --device cuda --steps 20 \
    --out "$OUT/bench_train_cuda.json" 2>&1 | tail -40

step "reconstruct throughput"
timeout 150 $PY experiments/bench_reconstruct.py --device cuda --images 2048 \
    --throughput-images 2048 --batch-size 256 --workdir /tmp/bench_reconstruct 2>&1 | tail -30
for ext in json md; do  # it writes experiments/results/bench_reconstruct_paper.*
    cp "experiments/results/bench_reconstruct_paper.$ext" "$OUT/bench_reconstruct_cuda.$ext"
done

step "done"
ls -l "$OUT"
