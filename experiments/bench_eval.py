"""Evaluation benchmark: images per second of ``unsup3d eval`` on the CPU, and where time goes.

Measures, in one process on one device:

* **end to end**: ``api.evaluate`` on a generated test split (``N`` image/depth PNG pairs in the
  synface layout, 16-bit depth) with one checkpoint, as ``unsup3d eval --checkpoint CKPT --data
  SPLIT`` runs it: model load, PNG decoding, prediction, metrics and the report. Median over
  the rounds; this is the figure the target (≥ 200 images/s on CPU) is about;
* the same with the ``const`` baseline added (one more row costs only its metrics);
* per stage, on batches already in memory (median per batch): loading (PNG decode + resize),
  the prediction the evaluation uses (depth and viewpoint networks + rendering of the un-flipped
  branch, ``evaluation.predict_view_depth``), the full ``forward`` + ``reconstruct`` it replaces
  (for reference), and the metrics (§7.1 protocol: masks, SIDE, both MADs, MAE/MSE);
* how many CPU cores other processes kept busy meanwhile (the machine may be shared).

The model is randomly initialised from the config (default ``configs/synth_faces.yaml``, the
recipe the CPU experiments train), or loaded with ``--checkpoint``. The rendering cost depends
on the predicted views: an untrained model predicts views close to the identity, where every
pixel centre sits on a mesh vertex and the rasterizer tests each triangle against a 2×2 block of
pixels instead of about one pixel, so a random init gives a conservative figure.
The split holds ``--unique`` generated faces (``unsup3d_cli.synthetic``) repeated to
``--images`` files.

Usage::

    .venv/bin/python experiments/bench_eval.py                 # 512 images, batch 64, 3 rounds
    .venv/bin/python experiments/bench_eval.py --quick         # smoke check: 64 images, 1 round
    .venv/bin/python experiments/bench_eval.py --config configs/synface.yaml   # paper widths

Writes ``experiments/results/bench_eval_<device>[_<config>].json`` and a markdown table beside it
(``..._quick`` for ``--quick`` runs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import cpu_usage, device_name, other_cpu_cores  # noqa: E402

from unsup3d_cli import api  # noqa: E402
from unsup3d_cli.config import ExperimentConfig, config_to_dict, load_config  # noqa: E402
from unsup3d_cli.data import PairedDepthDataset, make_loader  # noqa: E402
from unsup3d_cli.engine.checkpoint import save_checkpoint  # noqa: E402
from unsup3d_cli.evaluation import EvalOptions, predict_view_depth  # noqa: E402
from unsup3d_cli.metrics import depth_metrics  # noqa: E402
from unsup3d_cli.synthetic import synthetic_sample  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "experiments" / "results"
DEFAULT_CONFIG = REPO / "configs" / "synth_faces.yaml"
TARGET_IMAGES_PER_S = 200.0
"""The issue's target for ``eval`` on the CPU."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shrinks the split and the rounds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=512, help="pairs in the split (512)")
    parser.add_argument("--unique", type=int, default=64, help="distinct generated faces (64)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (64)")
    parser.add_argument("--rounds", type=int, default=3, help="timed end-to-end rounds (3)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (cpu)")
    parser.add_argument("--config", type=Path, default=None,
                        help="model config (default: configs/synth_faces.yaml)")  # fmt: skip
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="trained checkpoint to use instead of a random init")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="the networks' arithmetic (eval --precision)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="JSON path (markdown beside it)")
    parser.add_argument("--quick", action="store_true", help="smoke check: 64 images, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.unique, args.rounds = 64, 8, 1
    if min(args.images, args.unique, args.batch_size, args.rounds) < 1:
        parser.error("--images, --unique, --batch-size and --rounds must be ≥ 1")
    return args


def load_experiment(args: argparse.Namespace) -> tuple[ExperimentConfig, str]:
    """The model's config and its label ('defaults' when no file is given or found)."""
    if args.checkpoint is not None:
        _, cfg = api.load_model(args.checkpoint, "cpu")
        return cfg, f"checkpoint-{cfg.name}"
    path = args.config
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    if path is None:
        return ExperimentConfig(name="bench"), "defaults"
    return load_config(path), path.stem


def write_split(root: Path, images: int, unique: int) -> Path:
    """``root/test/{image,depth}``: ``unique`` generated faces, repeated to ``images`` pairs."""
    split = root / "test"
    (split / "image").mkdir(parents=True)
    (split / "depth").mkdir()
    for index in range(unique):
        image, depth = synthetic_sample(index, seed=2)
        rgb = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(rgb).save(split / "image" / f"{index:06d}_image.png")
        values = np.clip(np.round(65535 * (1.1 - depth[0].numpy()) / 0.2), 0, 65535)
        Image.fromarray(values.astype(np.uint16)).save(split / "depth" / f"{index:06d}_depth.png")
    for index in range(unique, images):
        source = index % unique
        for kind in ("image", "depth"):
            shutil.copyfile(split / kind / f"{source:06d}_{kind}.png",
                            split / kind / f"{index:06d}_{kind}.png")  # fmt: skip
    return split


def write_checkpoint(cfg: ExperimentConfig, path: Path) -> Path:
    """A randomly initialised model of ``cfg``, saved like ``unsup3d train`` saves it."""
    api.seed_everything(0)
    model = api.build_model(cfg)
    save_checkpoint(path, {"model": model.state_dict(), "config": config_to_dict(cfg)})
    return path


def timed(fn: Callable[[], object], rounds: int, device: torch.device) -> tuple[float, float]:
    """Median wall time and median CPU time of this process (s) over ``rounds`` calls of ``fn``.

    One untimed call comes first. CPU time counts every thread of this process; with one
    thread it measures the work itself whatever other processes do, while with several,
    threads spinning at barriers under contention inflate it.
    """
    fn()
    walls, cpus = [], []
    for _ in range(rounds):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu_start)
    return statistics.median(walls), statistics.median(cpus)


def median_seconds(fn: Callable[[], object], rounds: int, device: torch.device) -> float:
    """Median wall time of ``fn`` over ``rounds`` calls after one untimed call."""
    return timed(fn, rounds, device)[0]


def stage_rates(
    split: Path, ckpt: Path, batch_size: int, device: torch.device, precision: str
) -> dict:
    """Images per second of each stage, per batch of ``batch_size`` (median of 5)."""
    model, _ = api.load_model(ckpt, str(device), precision)
    dataset = PairedDepthDataset(split)
    loader = make_loader(dataset, batch_size, shuffle=False, hflip=False, seed=0)
    batch = next(iter(loader))
    image, depth = batch["image"].to(device), batch["depth"].to(device)
    count = image.shape[0]
    prediction = predict_view_depth(model, image)

    def full() -> object:
        with torch.no_grad():
            return model.reconstruct(model(image))

    calls = {
        "loading": lambda: [dataset[i] for i in range(count)],
        "prediction": lambda: predict_view_depth(model, image),
        "full_reconstruct_reference": full,
        "metrics": lambda: depth_metrics(
            prediction.view_depth, prediction.view_mask, depth, model.renderer
        ),
    }
    return {name: count / median_seconds(fn, 5, device) for name, fn in calls.items()}


def run(args: argparse.Namespace, cfg: ExperimentConfig, work: Path) -> dict:
    """All measurements; returns the raw figures."""
    device = api.resolve_device(args.device)
    split = write_split(work, args.images, args.unique)
    ckpt = args.checkpoint or write_checkpoint(cfg, work / "model.pt")
    usage_start = cpu_usage()

    def end_to_end(baselines: tuple[str, ...] = ()) -> object:
        options = EvalOptions(tuple(baselines), device=str(device), batch_size=args.batch_size,
                              precision=args.precision)  # fmt: skip
        return api.evaluate(split, [ckpt], options)

    seconds, cpu_seconds = timed(end_to_end, args.rounds, device)
    with_const = median_seconds(lambda: end_to_end(("const",)), args.rounds, device)
    stages = stage_rates(split, ckpt, args.batch_size, device, args.precision)
    return {
        "device": str(device),
        "images_per_s": args.images / seconds,
        "cpu_ms_per_image": 1000 * cpu_seconds / args.images,
        "images_per_s_alone_estimate": args.images * torch.get_num_threads() / cpu_seconds,
        "images_per_s_with_const_baseline": args.images / with_const,
        "stage_images_per_s": stages,
        "other_processes_cpu_cores": other_cpu_cores(usage_start, cpu_usage()),
    }


def summarize(args: argparse.Namespace, label: str, raw: dict) -> dict:
    """The JSON record: figures, target verdict and the environment."""
    return {
        **raw,
        "target_images_per_s": TARGET_IMAGES_PER_S,
        "target_met": raw["images_per_s"] >= TARGET_IMAGES_PER_S,
        "environment": {
            "config": label,
            "checkpoint": str(args.checkpoint) if args.checkpoint else "random init",
            "images": args.images,
            "unique_images": args.unique,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "threads": torch.get_num_threads(),
            "precision": args.precision,
            "cpu": device_name(torch.device(raw["device"])),
            "torch": torch.__version__,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        },
    }


def markdown(result: dict) -> str:
    """A short report: the headline figure, the stage table and the conditions."""
    env = result["environment"]
    verdict = "met" if result["target_met"] else "not met"
    other = result["other_processes_cpu_cores"]
    lines = [
        f"# `unsup3d eval` throughput ({result['device']})",
        "",
        f"- End to end (`api.evaluate`, one checkpoint, {env['images']} pairs, batch "
        f"{env['batch_size']}, median of {env['rounds']}): **{result['images_per_s']:.0f} "
        f"images/s** (target ≥ {result['target_images_per_s']:.0f}: {verdict}).",
        f"- CPU time of this process: {result['cpu_ms_per_image']:.2f} ms per image, i.e. "
        f"≈ {result['images_per_s_alone_estimate']:.0f} images/s on {env['threads']} otherwise "
        "idle core(s) if every thread stayed busy (with --threads 1 this is the work itself, "
        "barely moved by other processes; with more threads, spinning under contention "
        "inflates the CPU time).",
        f"- With the `const` baseline as a second row: "
        f"{result['images_per_s_with_const_baseline']:.0f} images/s.",
        f"- Model `{env['config']}` ({env['checkpoint']}); networks in "
        f"{env.get('precision', 'fp32')}; {env['cpu']}, {env['threads']} torch threads, torch "
        f"{env['torch']}; {env['date']}; `{env['command']}`.",
        f"- Other processes kept {other:.2f} CPU cores busy on average during the run."
        if other is not None
        else "- Load of other processes unknown (no /proc).",
        "",
        "| stage (one batch in memory) | images/s |",
        "|---|---:|",
    ]
    for name, rate in result["stage_images_per_s"].items():
        lines.append(f"| {name.replace('_', ' ')} | {rate:.0f} |")
    lines += [
        "",
        "`prediction` is what eval runs (depth + viewpoint networks, rendering of the un-flipped "
        "branch); `full reconstruct reference` is the whole forward + 2B reconstruction it "
        "replaces, giving the same compared depth.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run, print and save the benchmark."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg, label = load_experiment(args)
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as work:
        result = summarize(args, label, run(args, cfg, Path(work)))
    device = result["device"].split(":")[0]
    suffix = ("" if label == "synth_faces" else f"_{label}") + ("_quick" if args.quick else "")
    suffix += "" if args.precision == "fp32" else f"_{args.precision}"
    out = args.out or RESULTS_DIR / f"bench_eval_{device}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    out.with_suffix(".md").write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main()
