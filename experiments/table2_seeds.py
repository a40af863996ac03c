"""Table 2 of a recipe over several seeds: mean ± std of SIDE, MAD and the view slopes.

    python experiments/table2_seeds.py                      # 3 seeds × 30 minutes, mesh faces

Trains ``--config`` once per seed for ``--minutes`` minutes of steps (each run resumes if its
folder already has a checkpoint, so an interrupted sweep picks up where it stopped), scores
every seed's last checkpoint beside the constant and average-ground-truth baselines on the test
split (``unsup3d eval``), measures how its predicted views follow the true ones
(``pose_slopes.py``), and writes ``experiments/results/<stem>_seeds.md`` and ``.json``: one row
per seed, the mean ± std over seeds, and the issue's targets (SIDE ≤ 0.6× and MAD ≤ 0.8× the
average-ground-truth baseline, yaw slope ≥ 0.8, no seed collapsed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import (
    REPO,
    Recorder,
    add_data_arguments,
    ensure_data,
    evaluate,
    results_stem,
    row_by_checkpoint,
    train,
)
from pose_slopes import pose_slopes

SIDE_TARGET, MAD_TARGET, YAW_SLOPE_TARGET = 0.6, 0.8, 0.8
"""The targets: ratios to the average-ground-truth baseline, and the least yaw slope."""
COLLAPSE_YAW_CORR = 0.5
"""A seed whose predicted yaw correlates less than this with the truth has collapsed."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of steps per seed")
    parser.add_argument("--num", type=int, default=3750, help="images to generate in all")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "synth_mesh.yaml")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="extra config override for every seed",
    )  # fmt: skip
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "seeds")
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results")
    return parser.parse_args()


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std}


def seed_row(report: dict, checkpoint: Path, test: Path) -> dict:
    """One seed's test scores: SIDE (×10⁻²), MAD (°), view slopes and correlations."""
    row = row_by_checkpoint(report, checkpoint)
    views = pose_slopes(checkpoint, test)
    keys = ("yaw_slope", "yaw_corr", "pitch_slope", "pitch_corr", "roll_slope", "roll_corr")
    return {
        "side_1e2": row["side"]["mean"] * 100,
        "mad_deg": row["mad_deg"]["mean"],
        **{key: views[key] for key in keys},
    }


def baseline_rows(report: dict) -> dict[str, dict]:
    """SIDE (×10⁻²) and MAD (°) of the baselines in the report, by name."""
    return {
        row["name"]: {"side_1e2": row["side"]["mean"] * 100, "mad_deg": row["mad_deg"]["mean"]}
        for row in report["rows"]
        if row.get("name") in ("const", "avg-gt")
    }


def verdicts(summary: dict, seeds: dict[int, dict], baselines: dict) -> list[str]:
    """The targets, each with the measured value and met / not met."""
    avg = baselines["avg-gt"]
    side = summary["side_1e2"]["mean"] / avg["side_1e2"]
    mad = summary["mad_deg"]["mean"] / avg["mad_deg"]
    yaw = summary["yaw_slope"]["mean"]
    collapsed = [
        seed
        for seed, row in seeds.items()
        if row["yaw_corr"] < COLLAPSE_YAW_CORR or row["side_1e2"] > baselines["const"]["side_1e2"]
    ]
    word = {True: "met", False: "not met"}
    return [
        f"- SIDE / avg-gt: **{side:.2f}×** (target ≤ {SIDE_TARGET}×: {word[side <= SIDE_TARGET]})",
        f"- MAD / avg-gt: **{mad:.2f}×** (target ≤ {MAD_TARGET}×: {word[mad <= MAD_TARGET]})",
        f"- yaw slope: **{yaw:.3f}** (target ≥ {YAW_SLOPE_TARGET}: "
        f"{word[yaw >= YAW_SLOPE_TARGET]})",
        f"- collapsed seeds (yaw correlation < {COLLAPSE_YAW_CORR}, or SIDE worse than the flat "
        f"plane): {', '.join(map(str, collapsed)) or 'none'}",
    ]


def markdown(args, seeds: dict[int, dict], summary: dict, baselines: dict, rec: Recorder,
             seconds: float) -> str:  # fmt: skip
    columns = ("side_1e2", "mad_deg", "yaw_slope", "yaw_corr", "pitch_slope", "roll_slope")
    head = "| | SIDE ×10⁻² | MAD ° | yaw slope | yaw corr | pitch slope | roll slope |"
    lines = [
        f"# Table 2 over seeds: `{args.config.name}` on `{args.data.name}`",
        "",
        f"{len(seeds)} seeds × {args.minutes:g} minutes of steps, test split; total wall time "
        f"{seconds / 60:.1f} min. Reproduce with `{reproduce(args)}`.",
        "",
        head,
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for seed, row in seeds.items():
        cells = " | ".join(f"{row[key]:.3f}" for key in columns)
        lines.append(f"| seed {seed} | {cells} |")
    cells = " | ".join(f"{summary[k]['mean']:.3f} ± {summary[k]['std']:.3f}" for k in columns)
    lines.append(f"| **mean ± std** | {cells} |")
    for name, row in baselines.items():
        lines.append(f"| {name} | {row['side_1e2']:.3f} | {row['mad_deg']:.3f} | | | | |")
    lines += ["", *verdicts(summary, seeds, baselines), "", "## Commands and wall times", ""]
    lines += [f"- {e['label']} ({e['seconds'] / 60:.1f} min): `{e['command']}`" for e in rec.log]
    return "\n".join(lines) + "\n"


def _shown(path: Path) -> str:
    """A path as typed from the repository root, when it is inside it."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def reproduce(args: argparse.Namespace) -> str:
    """The command line that reruns this sweep."""
    parts = ["python experiments/table2_seeds.py", f"--config {_shown(args.config)}",
             f"--data {_shown(args.data)}", f"--seeds {args.seeds}", f"--minutes {args.minutes:g}",
             *[f"--set {item}" for item in args.overrides]]  # fmt: skip
    return " ".join(parts)


def main() -> None:
    args = parse_args()
    rec, started = Recorder(), time.perf_counter()
    ensure_data(rec, args.data, args.num, args.data_seed, args.workers, args.style)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    checkpoints = {}
    for seed in seeds:
        overrides = [f"train.seed={seed}", f"train.max_minutes={args.minutes}",
                     "train.num_epochs=100000", *args.overrides]  # fmt: skip
        run_dir = args.runs / f"seed{seed}"
        checkpoints[f"seed {seed}"] = train(rec, args.config, run_dir, args.data, overrides)
    stem = f"{results_stem(args.data)}_seeds"
    args.out.mkdir(parents=True, exist_ok=True)
    report = evaluate(rec, checkpoints, args.data, args.runs / "eval.json", ["const", "avg-gt"])
    rows = {seed: seed_row(report, checkpoints[f"seed {seed}"], args.data / "test")
            for seed in seeds}  # fmt: skip
    summary = {key: mean_std([row[key] for row in rows.values()]) for key in rows[seeds[0]]}
    baselines = baseline_rows(report)
    text = markdown(args, rows, summary, baselines, rec, time.perf_counter() - started)
    (args.out / f"{stem}.md").write_text(text)
    record = {"seeds": rows, "summary": summary, "baselines": baselines, "commands": rec.log}
    (args.out / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
