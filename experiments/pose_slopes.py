"""How well a model's predicted viewpoints follow the truth on a split of ``unsup3d synth``.

    python experiments/pose_slopes.py [--checkpoint CKPT] [--data data/synth_mesh/test]

For pitch, yaw and roll: the least-squares slope of the predicted angle on the true one (1 is
right; below 1 the views are under-rotated, which with a too-deep relief is the rotation/relief
ambiguity), and their correlation (1: the order and direction are right whatever the scale).
The default checkpoint is the bundled model. Prints one JSON line; ``--out`` also writes it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from trained import load_eval_model, report_main, split_records

from unsup3d_cli.data import load_image


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
    model, _ = load_eval_model(checkpoint)
    records = split_records(data)
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
    report_main(__doc__.splitlines()[0], pose_slopes)


if __name__ == "__main__":
    main()
