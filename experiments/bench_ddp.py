"""Multi-process training overhead: time per global batch on 1 process against N under torchrun.

Runs ``unsup3d train`` twice on the same config and global batch: once as one process using
every core, once as ``torchrun --standalone --nproc_per_node=N`` (gloo on the CPU, nccl on
GPUs), each process with cores/N threads on the CPU. The figure is the median time per global
batch over the logged windows after warm-up (``metrics.jsonl``'s ``images_per_s``, which the
main process computes for the whole batch of all processes). On one CPU the processes share
the same cores, so the ratio measures the overhead of DDP (gradient all-reduce, loss-normaliser
sums, stop agreement, a process per shard), not a speed-up.

    python experiments/bench_ddp.py [--nproc 2] [--steps 60] [--batch-size 32] [--device cpu]

Writes ``experiments/results/bench_ddp_<device>.json`` and ``.md``. Target (CPU, 2 processes):
at most 1.3x the single-process time per global batch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results"
TARGET_RATIO = 1.3
LOG_EVERY = 5


def train(nproc: int, args: argparse.Namespace, run: Path) -> list[float]:
    """Run one training; the per-window seconds per global batch after warm-up."""
    sets = [f"train.max_steps={args.steps}", f"train.batch_size={args.batch_size}",
            f"train.log_every_steps={LOG_EVERY}", "train.validate=false",
            "train.tensorboard=false",
            f"data.synthetic_train_size={args.batch_size * 8}"]  # fmt: skip
    command = ["-m", "unsup3d_cli", "train", "--config", str(args.config), "--device",
               args.device, "--run-dir", str(run), "--no-resume"]  # fmt: skip
    for item in sets:
        command += ["--set", item]
    cores = os.cpu_count() or 1
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // nproc))}
    if nproc == 1:
        argv = [sys.executable, *command]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        argv = [*launcher, f"--nproc_per_node={nproc}", *command]
    print(" ".join(argv[1:]), flush=True)
    subprocess.run(argv, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_s"] for r in records if r["kind"] == "train" and r["step"] > args.warmup]
    return [args.batch_size / rate for rate in rates]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2, help="processes of the DDP run (2)")
    parser.add_argument("--steps", type=int, default=60, help="steps per run (60)")
    parser.add_argument("--warmup", type=int, default=10, help="steps left out (10)")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch (32)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cpu)")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "smoke.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        single = train(1, args, Path(tmp) / "one")
        multi = train(args.nproc, args, Path(tmp) / "many")
    one, many = statistics.median(single), statistics.median(multi)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": args.device,
        "cpu_cores": os.cpu_count(),
        "torch_version": torch.__version__,
        "config": str(args.config.relative_to(REPO)),
        "global_batch": args.batch_size,
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "nproc": args.nproc,
        "single_s_per_batch": one,
        "multi_s_per_batch": many,
        "ratio": many / one,
        "target_ratio_max": TARGET_RATIO,
        "windows_single": single,
        "windows_multi": multi,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"bench_ddp_{args.device}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    verdict = "met" if result["ratio"] <= TARGET_RATIO else "missed"
    text = (
        f"# DDP overhead ({args.device}, {os.cpu_count()} cores)\n\n"
        f"`python experiments/bench_ddp.py --nproc {args.nproc} --steps {args.steps} "
        f"--batch-size {args.batch_size} --device {args.device}` on {result['config']}, "
        f"{result['date']}.\n\n"
        f"| run | s per global batch of {args.batch_size} (median) |\n|---|---|\n"
        f"| 1 process | {one:.3f} |\n| {args.nproc} processes (torchrun) | {many:.3f} |\n\n"
        f"Ratio {many / one:.2f} (target ≤ {TARGET_RATIO}: {verdict}).\n"
    )
    stem.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
