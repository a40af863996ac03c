"""Reproduce the paper's Table 2 (BFM baselines) on our synthetic faces, with one command.

    python experiments/table2.py --budget cpu

Generates the synthetic faces (``unsup3d synth``), trains our unsupervised model and the
supervised baseline (same depth network, depth loss in the input view), evaluates both beside
the constant-depth and average-ground-truth baselines (``unsup3d eval``), and writes
``experiments/results/synth_mesh.md`` (``synth_faces.md`` for heightfield data: table, commands,
seeds, wall times, the paper's numbers) with a picture of inputs, predicted and ground-truth
depth.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from common import (
    BUDGETS,
    REPO,
    Recorder,
    add_data_arguments,
    ensure_data,
    evaluate,
    fmt,
    results_stem,
    row_by_checkpoint,
    train,
)

PAPER = {  # Table 2 of the paper: SIDE (×10⁻²) and MAD (degrees), mean ± std
    "Supervised": ("0.410 ± 0.103", "10.78 ± 1.01"),
    "Constant null depth": ("2.723 ± 0.371", "43.34 ± 2.25"),
    "Average g.t. depth": ("1.990 ± 0.556", "23.26 ± 2.85"),
    "Ours (unsupervised)": ("0.793 ± 0.140", "16.51 ± 1.56"),
}
BASELINE_ROWS = {"const": "Constant null depth", "avg-gt": "Average g.t. depth"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    add_data_arguments(parser)
    parser.add_argument("--num", type=int, default=20_000, help="images to generate in all")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of training")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "table2")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "synth_mesh.yaml")
    parser.add_argument(
        "--supervised-minutes",
        type=float,
        default=None,
        help="time budget of the supervised baseline (default: the budget's)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    rec, started = Recorder(), time.perf_counter()
    budget = [*BUDGETS[args.budget].overrides, f"train.seed={args.seed}"]
    ensure_data(rec, args.data, args.num, args.seed, args.workers, args.style)
    stem = results_stem(args.data)
    ours = train(rec, args.config, args.runs / "ours", args.data, budget)
    supervised_budget = list(budget)
    if args.supervised_minutes is not None:
        supervised_budget.append(f"train.max_minutes={args.supervised_minutes}")
    # Same depth network, depth loss in the input view; the light, view and confidence
    # networks would get no gradient, so they are switched off.
    supervised_budget += [
        "loss.supervision=depth",
        "model.predict_view=false",
        "model.use_light=false",
        "model.use_confidence=false",
    ]
    supervised = train(rec, args.config, args.runs / "supervised", args.data, supervised_budget)
    checkpoints = {"Ours (unsupervised)": ours, "Supervised": supervised}
    args.out.mkdir(parents=True, exist_ok=True)
    report = evaluate(rec, checkpoints, args.data, args.out / f"{stem}_eval.json",
                      list(BASELINE_ROWS))  # fmt: skip
    picture = args.out / f"{stem}.png"
    save_picture(ours, supervised, args.data / "test", picture)
    text = markdown(args, report, checkpoints, rec, time.perf_counter() - started, picture)
    (args.out / f"{stem}.md").write_text(text)
    print(text)


def rows(report: dict, checkpoints: dict[str, Path]) -> list[tuple[str, dict]]:
    """(name, row) in the paper's order."""
    named = {name: row_by_checkpoint(report, path) for name, path in checkpoints.items()}
    for row in report["rows"]:
        if row.get("name") in BASELINE_ROWS:
            named[BASELINE_ROWS[row["name"]]] = row
    return [(name, named[name]) for name in PAPER if name in named]


def table(report: dict, checkpoints: dict[str, Path]) -> list[str]:
    lines = [
        "| method | SIDE (×10⁻²) ↓ | MAD (°) ↓ | MAD, paper's normals (°) ↓ "
        "| paper SIDE (×10⁻²) | paper MAD (°) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows(report, checkpoints):
        side, mad = fmt(row["side"], 100), fmt(row["mad_deg"], digits=2)
        mad_paper = fmt(row["mad_deg_paper"], digits=2)
        paper_side, paper_mad = PAPER[name]
        lines.append(f"| {name} | {side} | {mad} | {mad_paper} | {paper_side} | {paper_mad} |")
    return lines


def targets(report: dict, checkpoints: dict[str, Path]) -> list[str]:
    named = dict(rows(report, checkpoints))
    ours, avg = named["Ours (unsupervised)"], named["Average g.t. depth"]
    side_ratio = ours["side"]["mean"] / avg["side"]["mean"]
    mad_ratio = ours["mad_deg"]["mean"] / avg["mad_deg"]["mean"]
    verdict = {True: "met", False: "not met"}
    return [
        f"- SIDE of ours / average-g.t. baseline: **{side_ratio:.2f}×** (target ≤ 0.6×: "
        f"{verdict[side_ratio <= 0.6]}; the paper: 0.40×)",
        f"- MAD of ours / average-g.t. baseline: **{mad_ratio:.2f}×** (target ≤ 0.8×: "
        f"{verdict[mad_ratio <= 0.8]}; the paper: 0.71×)",
    ]


def markdown(args, report, checkpoints, rec, seconds, picture) -> str:
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    lines = [
        "# Table 2 on our synthetic faces",
        "",
        f"Budget `{args.budget}`, seed {args.seed}, {args.num} generated images "
        f"({machine}, torch {torch.__version__}); total wall time {seconds / 60:.1f} min.",
        "Reproduce with `python experiments/table2.py --budget cpu`.",
        "",
        *table(report, checkpoints),
        "",
        *targets(report, checkpoints),
        "",
        *recipe(checkpoints["Ours (unsupervised)"]),
        "Definitions (from `unsup3d eval`):",
        "",
        *[f"- `{k}`: {v}" for k, v in report.get("protocol", {}).items()],
        "",
        f"![inputs, predicted depth, ground-truth depth]({picture.name})",
        "",
        "Rows of the picture: input images; our predicted depth (input view); the supervised "
        "baseline's; the ground truth (near = bright).",
        "",
        "## Commands and wall times",
        "",
        *[f"- {name}: {training_summary(path)}" for name, path in checkpoints.items()],
        *[
            f"- {entry['label']} ({entry['seconds'] / 60:.1f} min): `{entry['command']}`"
            for entry in rec.log
        ],  # fmt: skip
        "",
    ]
    return "\n".join(lines)


def recipe(checkpoint: Path) -> list[str]:
    """What our row was trained with, read from the checkpoint's resolved config."""
    from unsup3d_cli.engine.checkpoint import load_checkpoint

    cfg = load_checkpoint(checkpoint)["config"]
    model, loss, train = cfg["model"], cfg["loss"], cfg["train"]
    return [
        "Our row's recipe (from its checkpoint): networks of width "
        f"{model['width']} (the paper: 64), batch {train['batch_size']}, lr {train['lr']}"
        f"{decay(train.get('lr_decay_fraction', 0.0))}, "
        f"perceptual weights `{loss['perceptual_weights']}`, λ_flip {loss['lam_flip']}, "
        f"view-centre prior λ {loss.get('lam_view_centre', 0.0)} (not in the paper: it keeps "
        "the batch-mean predicted rotation at zero; see `LossConfig.lam_view_centre`), "
        f"depth smoothness λ {loss.get('lam_depth_smooth', 0.0)} (the original's optional "
        "term, 0 in its configs), flat depth init "
        f"{'on' if model.get('flat_depth_init', False) else 'off'} (not in the paper: the depth "
        "network's last convolution starts at zero; see `ModelConfig.flat_depth_init`), "
        f"network arithmetic {train.get('precision', 'fp32')} (`TrainConfig.precision`), "
        f"{weights(train.get('ema_decay', 0.0))}.",
        "",
    ]


def decay(fraction: float) -> str:
    """How the learning rate ends a run."""
    if fraction <= 0:
        return " (constant, as in the paper)"
    return (
        f" falling linearly to 0 over the last {fraction:.0%} of the run (not in the paper; "
        "see `TrainConfig.lr_decay_fraction`)"
    )


def weights(ema_decay: float) -> str:
    """Which weights a row is evaluated with."""
    if ema_decay <= 0:
        return "evaluated with the last step's weights"
    return (
        f"evaluated with a moving average of the weights (decay {ema_decay}, about the last "
        f"{round(1 / (1 - ema_decay))} steps; not in the paper, see `TrainConfig.ema_decay`)"
    )


def training_summary(checkpoint: Path) -> str:
    """Steps, epochs and optimisation minutes recorded in a checkpoint."""
    from unsup3d_cli.engine.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    minutes = state.get("elapsed_s", 0.0) / 60
    return f"{state['step']} steps ({state['epoch']} epochs), {minutes:.1f} min of training steps"


def save_picture(ours: Path, supervised: Path, split_dir: Path, out: Path, count: int = 8) -> None:
    """Grid: inputs, our input-view depth, the supervised baseline's, the ground truth."""
    from torchvision.utils import save_image

    from unsup3d_cli import api
    from unsup3d_cli.data import PairedDepthDataset

    dataset = PairedDepthDataset(split_dir)
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    image = torch.stack([item["image"] for item in items])
    gt = torch.stack([item["depth"] for item in items])
    rows_ = [image]
    for checkpoint in (ours, supervised):
        model, _ = api.load_model(checkpoint, device="cpu")
        with torch.no_grad():
            view = model.reconstruct(model(image)).view_depth[: len(items)]
        rows_.append(depth_image(view))
    rows_.append(depth_image(gt))
    save_image(torch.cat(rows_), out, nrow=len(items), padding=1)


def depth_image(depth: torch.Tensor) -> torch.Tensor:
    """Depth (N, 1, H, W) → grey images, near = bright, over the 0.9–1.1 range."""
    return ((1.1 - depth) / 0.2).clamp(0, 1).expand(-1, 3, -1, -1)


if __name__ == "__main__":
    main()
