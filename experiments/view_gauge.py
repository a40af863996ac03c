"""Where a trained model puts its canonical frame: the batch mean of its predicted views.

    python experiments/view_gauge.py [--checkpoint CKPT] [--num 64]

The objective barely changes when every view turns or shifts by the same amount and the
canonical frame moves back, so the batch mean of the predicted rotation and x/y translation
is a gauge (``loss.lam_view_centre`` fixes the rotation's, ``loss.lam_translation_centre`` the
translation's). On the first ``--num`` validation faces this prints the mean and spread of the
predicted angles (degrees) and translation, beside the generator's, and the canonical depth
along the middle row and column (is the head centred and convex?). One JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from trained import REPO, load_eval_model, split_records

from unsup3d_cli.data import PairedDepthDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the bundle")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synth_mesh" / "val")
    parser.add_argument("--num", type=int, default=64)
    args = parser.parse_args()
    model, checkpoint = load_eval_model(args.checkpoint)
    dataset = PairedDepthDataset(args.data)
    count = min(args.num, len(dataset))
    images = torch.stack([dataset[i]["image"] for i in range(count)])
    meta = {Path(r["image"]).name: r for r in split_records(args.data)}
    records = [meta[Path(dataset[i]["path"]).name] for i in range(count)]
    true_shift = torch.tensor([r["translation"] for r in records])
    with torch.no_grad():
        decomp = model(images)
    angles, shift = decomp.view_angles.rad2deg(), decomp.view_translation
    depth = decomp.depth_unbordered.mean(0)[0]  # (H, W), mean over the faces
    middle = depth.shape[-1] // 2

    def rounded(values: torch.Tensor) -> list[float]:
        return [round(float(v), 4) for v in values]

    row = {
        "checkpoint": str(checkpoint),
        "faces": count,
        "angles_mean_deg": rounded(angles.mean(0)),
        "angles_std_deg": rounded(angles.std(0)),
        "translation_mean": rounded(shift.mean(0)),
        "translation_std": rounded(shift.std(0)),
        "true_translation_mean": rounded(true_shift.mean(0)),
        "true_translation_std": rounded(true_shift.std(0)),
        "canonical_depth_middle_row": rounded(depth[middle, ::6]),
        "canonical_depth_middle_column": rounded(depth[::6, middle]),
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
