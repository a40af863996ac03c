"""Does the predicted light take up the turn that the view leaves out? A light regression.

    python experiments/light_frame.py --checkpoint CKPT [--data data/synth_mesh/test] [--out F]

On a near-spherical head, turning the head and turning the light the other way shade it
alike. If the model under-rotates the view, the light it predicts (in the canonical frame)
can make up the turn. The generator records the main light in the head's frame
(``light.direction``) and in the camera's (``light.direction_view``). This script regresses
each component of the predicted light direction on the true canonical-frame component and the
sine of the true yaw (x) or pitch (y), jointly:

    predicted_x ≈ a·true_x + b·sin(yaw) + c

A model whose canonical frame is the head's gives b ≈ 0; one that treats every head as
unturned and lights it in the camera's frame gives |b| near the light's forward component
(|z| ≈ 0.8 here). The signs depend on the two axis conventions, so read the magnitudes. Also
prints the correlations of the predicted components with the canonical-frame and the
view-frame truths, the yaw slope, and the root-mean-square lateral part (x, y) of the predicted
and the true light direction and their mean diffuse strengths, for one row per checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch
from trained import load_eval_model, report_main, split_records

from unsup3d_cli.data import load_image


def _regress(target: torch.Tensor, *columns: torch.Tensor) -> list[float]:
    """Least-squares coefficients of ``target`` on ``columns`` and a constant (last)."""
    design = torch.stack([*columns, torch.ones_like(target)], dim=1).double()
    solution = torch.linalg.lstsq(design, target.double().unsqueeze(1)).solution
    return [round(float(v), 4) for v in solution.squeeze(1)]


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return round(float(torch.corrcoef(torch.stack([a, b]))[0, 1]), 4)


@torch.no_grad()
def report(checkpoint: Path, data: Path) -> dict:
    """One row: the regressions and correlations for ``checkpoint`` on ``data``."""
    model, path = load_eval_model(checkpoint)
    records = split_records(data)
    lights, views, diffuses = [], [], []
    for start in range(0, len(records), 64):
        batch = records[start : start + 64]
        image = torch.stack([load_image(data / r["image"]) for r in batch])
        decomp = model(image)
        lights.append(decomp.light_direction)
        views.append(decomp.view_angles)
        diffuses.append(decomp.diffuse)
    light, view = torch.cat(lights), torch.cat(views)
    canonical = torch.tensor([r["light"]["direction"] for r in records])
    camera = torch.tensor([r["light"]["direction_view"] for r in records])
    angles = torch.tensor([r["view_angles_rad"] for r in records])
    yaw, pitch = angles[:, 1], angles[:, 0]
    row = {"checkpoint": str(path), "data": str(data), "faces": len(records)}
    t = yaw - yaw.mean()
    yaw_slope = ((view[:, 1] - view[:, 1].mean()) * t).sum() / t.square().sum()
    row["yaw_slope"] = round(float(yaw_slope), 4)
    for axis, name, angle in ((0, "x", yaw), (1, "y", pitch)):
        turn = "yaw" if axis == 0 else "pitch"
        a, b, c = _regress(light[:, axis], canonical[:, axis], angle.sin())
        row[f"light_{name}"] = {
            "coef_true_canonical": a,
            f"coef_sin_{turn}": b,
            "intercept": c,
            "corr_canonical": _corr(light[:, axis], canonical[:, axis]),
            "corr_view_frame": _corr(light[:, axis], camera[:, axis]),
            f"corr_sin_{turn}": _corr(light[:, axis], angle.sin()),
        }
    row["true_forward_mean"] = round(float(canonical[:, 2].mean()), 4)
    # how far the light leaves the optical axis: a deeper relief needs a more frontal light to
    # cast the same shading (the generalised bas-relief ambiguity)
    row["lateral_rms"] = round(float(light[:, :2].square().sum(1).mean().sqrt()), 4)
    row["true_lateral_rms"] = round(float(canonical[:, :2].square().sum(1).mean().sqrt()), 4)
    row["diffuse_mean"] = round(float(torch.cat(diffuses).mean()), 4)
    row["true_diffuse_mean"] = round(
        float(torch.tensor([r["light"]["diffuse"] for r in records]).mean()), 4
    )
    return row


if __name__ == "__main__":
    torch.set_num_threads(2)
    report_main(__doc__.splitlines()[0], report)
