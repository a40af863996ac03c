"""Does a model's canonical depth follow each head's size, or is it one mean head?

    python experiments/head_size.py [--checkpoint CKPT] [--data data/synth_mesh/test]

On a split of ``unsup3d synth``: the share of the canonical depth map nearer than a few
thresholds (the model's head area) against the generator's ``face_fraction`` (the share of
the frame the face covers), as their correlation and their spreads across the faces. A model
that follows each head has a spread like the truth's; one that draws a mean head has a small
one. Also the per-pixel spread of the canonical depth across faces against the ground truth's
view depth (background clipped to the pivot). Prints one JSON line; ``--out`` also writes it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from trained import load_eval_model, report_main, split_tensors


def head_size(checkpoint: Path, data: Path) -> dict:
    model, _ = load_eval_model(checkpoint)
    records, images, gt = split_tensors(data)
    fraction = torch.tensor([r["face_fraction"] for r in records])
    with torch.no_grad():
        depth = torch.cat(
            [model(images[i : i + 64]).depth_unbordered for i in range(0, len(images), 64)]
        )
    row = {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "n": len(records),
        "face_fraction": {
            "mean": round(float(fraction.mean()), 3),
            "std": round(float(fraction.std()), 3),
        },  # fmt: skip
    }
    for threshold in (0.99, 0.97, 0.95):
        area = (depth < threshold).float().mean(dim=(1, 2, 3))
        row[f"area_below_{threshold:g}"] = {
            "mean": round(float(area.mean()), 3),
            "std": round(float(area.std()), 3),
            "corr_with_face_fraction": round(
                float(torch.corrcoef(torch.stack([area, fraction]))[0, 1]), 3
            ),
        }
    row["per_pixel_depth_std"] = {
        "model_canonical": round(float(depth.std(0).mean()), 5),
        "ground_truth_view": round(float(gt.clamp(max=1.0).std(0).mean()), 5),
    }
    return row


def main() -> None:
    report_main(__doc__.splitlines()[0], head_size)


if __name__ == "__main__":
    main()
