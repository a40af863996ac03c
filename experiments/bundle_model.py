"""Reproduce the model that ships in the package (``unsup3d_cli/weights/synth_faces.safetensors``).

    python experiments/bundle_model.py            # data (once), 60-minute training, bundle, eval

Generates the mesh faces when ``--data`` has none (``unsup3d synth --style mesh``), trains
``configs/synth_mesh.yaml`` (with any ``--set`` overrides) for ``--minutes`` minutes of
steps, writes the checkpoint with the lowest validation loss (``best.pt``; ``--use last``
takes the last step's) as a float16 safetensors bundle (``unsup3d convert``) into the
package, and scores the bundle beside the constant and average-ground-truth baselines on the
test split (``unsup3d eval``), then both training checkpoints (``bundle_model_eval_best.json``,
``bundle_model_eval_last.json``). Every command is printed and recorded with its wall time in
``experiments/results/bundle_model.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from common import REPO, Recorder, ensure_data

from unsup3d_cli.engine.checkpoint import load_checkpoint

BUNDLE = REPO / "unsup3d_cli" / "weights" / "synth_faces.safetensors"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synth_mesh")
    parser.add_argument("--num", type=int, default=3750, help="images to generate in all")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of training")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "synth_mesh.yaml")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="a config override passed to `unsup3d train` (repeatable)",
    )  # fmt: skip
    parser.add_argument("--run-dir", type=Path, default=REPO / "runs" / "bundle")
    parser.add_argument(
        "--use", choices=("best", "last"), default="best",
        help="the checkpoint to bundle: lowest validation loss, or last step",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=BUNDLE)
    parser.add_argument("--results", type=Path, default=REPO / "experiments" / "results")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    rec = Recorder()
    ensure_data(rec, args.data, args.num, args.seed, args.workers, "mesh")
    train = ["train", "--config", str(args.config), "--run-dir", str(args.run_dir),
             "--set", f"data.root={args.data}", "--set", f"train.max_minutes={args.minutes}",
             "--set", f"train.seed={args.seed}"]  # fmt: skip
    for item in args.overrides:
        train += ["--set", item]
    rec.run(train, "train")
    folder = args.run_dir / "checkpoints"
    checkpoint = folder / f"{args.use}.pt"
    other = folder / ("last.pt" if args.use == "best" else "best.pt")
    recipe = (f"{args.config.name}{''.join(f' --set {item}' for item in args.overrides)}, "
              f"{args.minutes:g} minutes of steps, seed {args.seed}, "
              f"{'lowest validation loss' if args.use == 'best' else 'last step'}")  # fmt: skip
    rec.run(["convert", str(checkpoint), "--out", str(args.out), "--recipe", recipe, "--force"],
            "bundle")  # fmt: skip
    report = args.results / "bundle_model_eval.json"
    rec.run(["eval", "--data", str(args.data / "test"), "--checkpoint", str(args.out),
             "--baseline", "const", "--baseline", "avg-gt", "--out", str(report)],
            "eval")  # fmt: skip
    for each in (checkpoint, other):  # both training checkpoints, float32, side by side
        if each.is_file():
            rec.run(["eval", "--data", str(args.data / "test"), "--checkpoint", str(each),
                     "--out", str(args.results / f"bundle_model_eval_{each.stem}.json")],
                    f"eval {each.name}")  # fmt: skip
    state = load_checkpoint(folder / "last.pt")  # the run's own totals (a resumed run logs it)
    bundled = load_checkpoint(checkpoint)
    record = {
        "bundle": str(args.out),
        "bytes": args.out.stat().st_size,
        "training": {"steps": state["step"], "minutes_of_steps": round(state["elapsed_s"] / 60, 2)},
        "bundled_checkpoint": {
            "file": checkpoint.name,
            "step": bundled["step"],
            "validation_loss": (bundled.get("best_val") or [None])[0],
        },
        "commands": rec.log,
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(),
        },  # fmt: skip
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "bundle_model.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
