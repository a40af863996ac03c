"""Shared steps of the paper-table experiments: generate data, train, evaluate, record.

Every step shells out to the ``unsup3d`` CLI so that the recorded commands are exactly what a
user would type; each command is printed and appended to the experiment's command log.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UNSUP3D = [sys.executable, "-m", "unsup3d_cli"]
PAPER_ITERATIONS = 50_000
"""The paper's ablation models were trained for 50k iterations (reference §7.2)."""


@dataclass(frozen=True)
class Budget:
    """How long each model trains."""

    name: str
    overrides: tuple[str, ...]


BUDGETS = {
    # 60 minutes of optimisation steps on the machine at hand (a 2-core CPU here).
    "cpu": Budget("cpu", ("train.max_minutes=60", "train.num_epochs=1000")),
    # The paper's 50k iterations at batch 64 with the ImageNet VGG16 perceptual loss.
    "paper": Budget(
        "paper",
        (
            f"train.max_steps={PAPER_ITERATIONS}",
            "train.num_epochs=100000",
            "train.batch_size=64",
            "model.width=64",
            "loss.perceptual_weights=imagenet",
        ),
    ),
}


@dataclass
class Recorder:
    """Runs commands, echoing them and keeping a log of what ran and how long it took."""

    log: list[dict] = field(default_factory=list)

    def run(self, args: list[str], label: str) -> float:
        shown = " ".join(shlex.quote(a) for a in ["unsup3d", *args])
        print(f"\n$ {shown}", flush=True)
        start = time.perf_counter()
        subprocess.run([*UNSUP3D, *args], cwd=REPO, check=True)
        seconds = time.perf_counter() - start
        self.log.append({"label": label, "command": shown, "seconds": round(seconds, 1)})
        return seconds


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data and --style: where the synthetic faces are, and which generator makes them."""
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synth_mesh")
    parser.add_argument(
        "--style",
        choices=("mesh", "heightfield"),
        default="mesh",
        help="generator of the data when --data has none yet (mesh: independent of the model's "
        "renderer; heightfield: drawn by it, so the model is scored on its own images)",
    )


def results_stem(data_dir: Path) -> str:
    """'synth_mesh' or 'synth_faces' (heightfield): the results' file stem for the data's style."""
    info = json.loads((data_dir / "dataset.json").read_text())
    return "synth_faces" if info.get("style", "heightfield") == "heightfield" else "synth_mesh"


def ensure_data(rec: Recorder, data_dir: Path, num: int, seed: int, workers: int,
                style: str = "mesh") -> None:  # fmt: skip
    """Generate the synthetic faces once (skipped when ``dataset.json`` is already there)."""
    if (data_dir / "dataset.json").is_file():
        print(f"using existing data in {data_dir}")
        return
    args = ["synth", str(data_dir), "--num", str(num), "--seed", str(seed), "--style", style]
    rec.run([*args, "--workers", str(workers)], "generate data")


def train(rec: Recorder, config: Path, run_dir: Path, data_dir: Path, overrides: list[str]) -> Path:
    """Train (resuming if the run folder has a checkpoint) and return the last checkpoint."""
    sets = [f"data.root={data_dir}", *overrides]
    args = ["train", "--config", str(config), "--run-dir", str(run_dir)]
    for item in sets:
        args += ["--set", item]
    rec.run(args, f"train {run_dir.name}")
    return run_dir / "checkpoints" / "last.pt"


def evaluate(rec: Recorder, checkpoints: dict[str, Path], data_dir: Path, out: Path,
             baselines: list[str]) -> dict:  # fmt: skip
    """Evaluate checkpoints and baselines on the test split into one JSON table."""
    args = ["eval", "--data", str(data_dir / "test"), "--out", str(out)]
    for path in checkpoints.values():
        args += ["--checkpoint", str(path)]
    for name in baselines:
        args += ["--baseline", name]
    rec.run([*args, "--markdown", str(out.with_suffix(".md"))], "evaluate")
    return json.loads(out.read_text())


def row_by_checkpoint(report: dict, checkpoint: Path) -> dict:
    """The report row of one checkpoint."""
    for row in report["rows"]:
        if row.get("checkpoint") and Path(row["checkpoint"]).resolve() == checkpoint.resolve():
            return row
    raise KeyError(f"no row for {checkpoint}")


def fmt(stat: dict, scale: float = 1.0, digits: int = 3) -> str:
    """``mean ± std`` of a {"mean", "std"} record."""
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"
