"""Is a trained model's under-rotated yaw a minimum of its own loss? A yaw scan.

    python experiments/yaw_landscape.py [--checkpoint CKPT] [--data data/synth_mesh/train]

For faces turned by at least ``--min-yaw`` degrees, the model predicts its decomposition once;
then only the yaw is changed, every other factor kept (depth, albedo, light, pitch, roll,
translation, confidence maps), and the reconstruction error is measured:

- ``scaled k``: the predicted yaw times k (k = 1 is the model's own answer);
- ``true``: the generator's yaw in place of the predicted one.

Two errors per setting, averaged over the faces, each on the pixels both reconstructions
cover: the plain L1 of the canonical and the mirrored reconstruction (in [0, 1] units), and
the model's training objective (the confidence-weighted photometric terms, ``L + λf·L'``).
If the errors fall for k > 1, the loss itself asks for more rotation and the views grow as
fast as the optimiser moves them; if k = 1 is the lowest, the rest of the decomposition has
settled around the under-rotated views. Also prints how the predicted x-translation follows
the true yaw (a turn the view leaves out can be taken as a sideways shift), and whether the
canonical albedo carries the turn: the mean albedo of the faces turned right against its mirror
and against the mean albedo of those turned left (both near 0: it does not).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import torch
from trained import load_eval_model, split_records

from unsup3d_cli.data import load_image
from unsup3d_cli.losses import photometric_nll
from unsup3d_cli.model.decomposition import Reconstruction
from unsup3d_cli.weights import bundled_model_path

REPO = Path(__file__).resolve().parents[1]
FACTORS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)


def errors(
    model, image: torch.Tensor, decomp, lam_flip: float, sigma_floor: float = 0.0
) -> dict[str, float]:
    """Plain L1 of both reconstructions and the confidence-weighted objective, per batch.

    ``sigma_floor`` is added to both confidence maps in the objective (0: the model's own).
    """
    recon = model.reconstruct(decomp)
    mine, flipped = Reconstruction.split(recon.image)
    sigma = decomp.confidence[:, :1] + sigma_floor
    sigma_flip = decomp.confidence[:, 1:] + sigma_floor
    objective = photometric_nll(mine, image, recon.mask, sigma) + lam_flip * photometric_nll(
        flipped, image, recon.mask, sigma_flip
    )
    return {  # without σ the NLL is the masked L1 in [-1, 1] units: halved, [0, 1] units
        "l1": float(photometric_nll(mine, image, recon.mask)) / 2,
        "l1_flip": float(photometric_nll(flipped, image, recon.mask)) / 2,
        "objective": float(objective),
    }


def symmetrized(decomp):
    """The decomposition with its canonical depth and albedo averaged with their mirror."""

    def sym(x: torch.Tensor) -> torch.Tensor:
        return (x + x.flip(-1)) / 2

    return replace(decomp, depth=sym(decomp.depth), albedo=sym(decomp.albedo))


def scan(
    checkpoint: Path,
    data: Path,
    min_yaw: float,
    limit: int,
    lam_flip: float,
    symmetric: bool,
    sigma_floor: float = 0.0,
) -> dict:
    model, _ = load_eval_model(checkpoint)
    records = split_records(data)
    all_true = torch.tensor([r["view_angles_rad"] for r in records])
    keep = [i for i, r in enumerate(records) if abs(r["view_angles_deg"][1]) >= min_yaw][:limit]
    images = torch.stack([load_image(data / records[i]["image"]) for i in keep])
    true = all_true[keep]
    rows: dict[str, list[dict[str, float]]] = {}
    tx, yaw_pred, albedos, sigmas = [], [], [], []
    with torch.no_grad():
        for start in range(0, len(keep), 32):
            image = images[start : start + 32]
            decomp = model(image)
            if symmetric:
                decomp = symmetrized(decomp)
            yaw_pred.append(decomp.view_angles[:, 1])
            tx.append(decomp.view_translation[:, 0])
            albedos.append(decomp.albedo)
            sigmas.append(decomp.confidence[:, :2])
            settings = {f"scaled {k:g}": decomp.view_angles[:, 1] * k for k in FACTORS}
            settings["true"] = true[start : start + 32, 1]
            for name, yaw in settings.items():
                angles = decomp.view_angles.clone()
                angles[:, 1] = yaw
                err = errors(
                    model, image, replace(decomp, view_angles=angles), lam_flip, sigma_floor
                )
                rows.setdefault(name, []).append(err | {"n": len(image)})
    table = {}
    for name, parts in rows.items():
        n = sum(p["n"] for p in parts)
        table[name] = {
            key: round(sum(p[key] * p["n"] for p in parts) / n, 5)
            for key in ("l1", "l1_flip", "objective")
        }
    yaw_t, yaw_p, shift = true[:, 1], torch.cat(yaw_pred), torch.cat(tx)

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        return round(float(torch.corrcoef(torch.stack([a, b]))[0, 1]), 3)

    albedo = torch.cat(albedos)
    right, left = albedo[yaw_t > 0].mean(0), albedo[yaw_t < 0].mean(0)
    return {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "faces": len(keep),
        "min_abs_yaw_deg": min_yaw,
        "lam_flip": lam_flip,
        "symmetrized": symmetric,
        "sigma_floor": sigma_floor,
        "mean_sigma": round(float(torch.cat(sigmas).mean()), 4),
        "mean_abs_yaw_deg": {
            "true": round(math.degrees(float(yaw_t.abs().mean())), 2),
            "predicted": round(math.degrees(float(yaw_p.abs().mean())), 2),
        },
        "x_translation_vs_true_yaw_corr": corr(shift, yaw_t),
        "x_translation_vs_predicted_yaw_corr": corr(shift, yaw_p),
        "mean_albedo_of_right_turned_faces": {
            "vs_its_mirror_l1": round(float((right - right.flip(-1)).abs().mean()), 5),
            "vs_left_turned_l1": round(float((right - left).abs().mean()), 5),
        },
        "errors": table,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: bundled model")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synth_mesh" / "train")
    parser.add_argument("--min-yaw", type=float, default=20.0, help="degrees")
    parser.add_argument("--limit", type=int, default=256, help="faces at most")
    parser.add_argument("--lam-flip", type=float, default=0.5)
    parser.add_argument(
        "--symmetrize", action="store_true", help="average depth and albedo with their mirror"
    )
    parser.add_argument(
        "--sigma-floor",
        type=float,
        default=0.0,
        help="added to the confidence maps in the objective: how far a floor on σ frees the view",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    row = scan(
        args.checkpoint or bundled_model_path(),
        args.data,
        args.min_yaw,
        args.limit,
        args.lam_flip,
        args.symmetrize,
        args.sigma_floor,
    )
    print(json.dumps(row, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
