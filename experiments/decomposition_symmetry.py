"""How a model's decomposition explains turned faces: asymmetry, errors and confidences.

    python experiments/decomposition_symmetry.py [--checkpoint CKPT] [--data data/synth_mesh/test]

For frontal (|yaw| < 10°) and turned (|yaw| > 30°) faces of a split of ``unsup3d synth``: the
canonical albedo's and depth's left–right asymmetry (mean |x − flip(x)|), the L1 error of the
un-flipped and the flipped reconstruction against the input, and the mean confidences σ and σ′.
A model that learned the view explains a turned face by turning a symmetric head (both errors
low); one that fakes the turn with an asymmetric albedo has a low un-flipped error, a high
flipped one and a large albedo asymmetry. The default checkpoint is the bundled model. Prints
one JSON object; ``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from trained import load_eval_model, split_records

from unsup3d_cli.data import load_image

REPO = Path(__file__).resolve().parents[1]
GROUPS = {"frontal (|yaw| < 10°)": (0.0, 10.0), "turned (|yaw| > 30°)": (30.0, 180.0)}


def _mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    return round(float(values[mask].mean()), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: bundled model")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synth_mesh" / "test")
    parser.add_argument("--num", type=int, default=192, help="first N faces of the split")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    model, checkpoint = load_eval_model(args.checkpoint)
    records = split_records(args.data, args.num)
    images = torch.stack([load_image(args.data / r["image"]) for r in records])
    yaw = torch.tensor([r["view_angles_rad"][1] for r in records]).rad2deg().abs()
    with torch.no_grad():
        decomp = model(images)
        original, flipped = model.reconstruct(decomp).image.chunk(2)
    per_image = {
        "albedo_asymmetry": (decomp.albedo - decomp.albedo.flip(-1)).abs().mean((1, 2, 3)),
        "depth_asymmetry": (decomp.depth_unbordered - decomp.depth_unbordered.flip(-1))
        .abs()
        .mean((1, 2, 3)),
        "l1_original": (original - images).abs().mean((1, 2, 3)),
        "l1_flipped": (flipped - images).abs().mean((1, 2, 3)),
    }
    if decomp.confidence is not None:
        per_image["sigma"] = decomp.confidence[:, 0].mean((1, 2))
        per_image["sigma_flipped"] = decomp.confidence[:, 1].mean((1, 2))
    result = {"checkpoint": str(checkpoint), "data": str(args.data), "groups": {}}
    for name, (low, high) in GROUPS.items():
        mask = (yaw >= low) & (yaw < high)
        group = {"n": int(mask.sum())}
        group.update({key: _mean(values, mask) for key, values in per_image.items()})
        result["groups"][name] = group
    print(json.dumps(result, indent=1, ensure_ascii=False))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
