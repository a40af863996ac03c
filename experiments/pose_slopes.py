"""How well a model's predicted viewpoints follow the truth on a split of ``unsup3d synth``.

    python experiments/pose_slopes.py [--checkpoint CKPT] [--data data/synth_mesh/test]

For pitch, yaw and roll: the least-squares slope of the predicted angle on the true one (1 is
right; below 1 the views are under-rotated, which with a too-deep relief is the rotation/relief
ambiguity), and their correlation (1: the order and direction are right whatever the scale).
The default checkpoint is the bundled model. Prints one JSON line; ``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from unsup3d_cli.data import load_image
from unsup3d_cli.pretrained import build_model, load_into, load_weights
from unsup3d_cli.weights import bundled_model_path

REPO = Path(__file__).resolve().parents[1]


def slopes(pred: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """Per-axis slope and correlation of predicted (N, 3) on true (N, 3) angles."""
    out = {}
    for k, name in enumerate(("pitch", "yaw", "roll")):
        t, p = true[:, k] - true[:, k].mean(), pred[:, k] - pred[:, k].mean()
        out[f"{name}_slope"] = round(float((t * p).sum() / t.square().sum()), 3)
        out[f"{name}_corr"] = round(float((t * p).sum() / (t.norm() * p.norm())), 3)
    return out


def pose_slopes(checkpoint: Path, data: Path) -> dict:
    """Slopes, correlations and mean |yaw| of a checkpoint's views on a split (one JSON row)."""
    loaded = load_weights(checkpoint)
    model = build_model(loaded.config)
    load_into(model, loaded, str(checkpoint))
    model.eval()
    records = [json.loads(line) for line in (data / "meta.jsonl").read_text().splitlines()]
    images = torch.stack([load_image(data / r["image"]) for r in records])
    true = torch.tensor([r["view_angles_rad"] for r in records])
    with torch.no_grad():
        pred = torch.cat([model(images[i : i + 64]).view_angles for i in range(0, len(images), 64)])
    row = {"checkpoint": str(checkpoint), "data": str(data), "n": len(records)}
    row.update(slopes(pred, true))
    row["mean_abs_yaw_deg"] = {
        "predicted": round(float(pred[:, 1].abs().mean().rad2deg()), 2),
        "true": round(float(true[:, 1].abs().mean().rad2deg()), 2),
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: bundled model")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synth_mesh" / "test")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    row = pose_slopes(args.checkpoint or bundled_model_path(), args.data)
    print(json.dumps(row))
    if args.out is not None:
        args.out.write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
