"""Is a model's relief too deep or too shallow, and does that depend on the head's size?

    python experiments/relief_by_fraction.py [--checkpoint CKPT] [--data data/synth_mesh/test]

On a split of ``unsup3d synth`` (mesh faces, which hold each head's ``face_fraction``), per
image and inside the evaluation mask (``depth_metrics``): the spread of the mean-centred log
depth of the model's view depth and of the ground truth (``relief_ratio`` = predicted /
true: above 1 the relief is too deep), and the probes' ``relief_scale`` (the least-squares
slope of the true log depth on the predicted one, ``probe_recipe.py``: below 1 the relief is
too deep or partly uncorrelated with the truth). Also the nearest predicted and true view
depth. All as medians over the faces in thirds of the face fraction, and the correlation of
the ratio with the fraction. Prints one JSON line; ``--out`` also writes it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from trained import load_eval_model, log_relief_fit, report_main, split_tensors

from unsup3d_cli.evaluation import predict_view_depth
from unsup3d_cli.metrics import depth_metrics

BINS = 3
"""Face-fraction bins (equal counts) of the report."""


def _median(values: torch.Tensor) -> float:
    return round(float(values.median()), 4)


def relief_by_fraction(checkpoint: Path, data: Path) -> dict:
    model, _ = load_eval_model(checkpoint)
    records, images, gt = split_tensors(data)
    fraction = torch.tensor([r["face_fraction"] for r in records])
    rows = []  # (fraction, ratio, scale, nearest predicted, nearest true)
    with torch.no_grad():
        for start in range(0, len(images), 64):
            truth = gt[start : start + 64]
            prediction = predict_view_depth(model, images[start : start + 64])
            mask = depth_metrics(
                prediction.view_depth, prediction.view_mask, truth, model.renderer
            ).mask
            pairs = zip(prediction.view_depth, truth, mask, strict=True)
            for k, (pred_d, gt_d, m) in enumerate(pairs):
                keep = m > 0
                if keep.sum() < 10:
                    continue
                scale, ratio = log_relief_fit(pred_d[keep], gt_d[keep])
                near_p, near_g = float(pred_d[keep].min()), float(gt_d[keep].min())
                rows.append((float(fraction[start + k]), ratio, scale, near_p, near_g))
    table = torch.tensor(rows, dtype=torch.float64)
    order = table[:, 0].argsort()
    report = {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "n": len(rows),
        "ratio_fraction_corr": round(float(torch.corrcoef(table[:, :2].T)[0, 1]), 3),
        "bins": [],
    }
    for part in order.tensor_split(BINS):
        chunk = table[part]
        low, high = float(chunk[:, 0].min()), float(chunk[:, 0].max())
        report["bins"].append({
            "face_fraction": [round(low, 3), round(high, 3)],
            "n": len(chunk),
            "relief_ratio": _median(chunk[:, 1]),
            "relief_scale": _median(chunk[:, 2]),
            "nearest_predicted": _median(chunk[:, 3]),
            "nearest_true": _median(chunk[:, 4]),
        })  # fmt: skip
    return report


def main() -> None:
    report_main(__doc__.splitlines()[0], relief_by_fraction)


if __name__ == "__main__":
    main()
