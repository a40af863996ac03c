"""How much of a model's depth error is its pose, and how much its shape? An oracle test.

    python experiments/pose_or_shape.py [--checkpoint CKPT] [--num 128]

Fresh mesh faces (``unsup3d synth --style mesh``'s generator, seed ``--seed``, not the training
set) are scored with Table 2's SIDE and MAD (``unsup3d_cli.metrics.depth_metrics``, all faces in
one batch as ``eval`` does) for input-view depths made several ways. Each canonical depth is
warped to a pose by our renderer, as the model does:

- ``model``: the model as it is (its canonical depth at its own view);
- ``model depth at the true rotation``: its canonical depth, the generator's rotation, its own
  translation; and with the generator's translation as well;
- ``exact depth at the model's view``: the generator's own canonical head (the same head
  un-rotated, background at the pivot) at the model's view: what the pose error alone costs;
  and with the model's view partly corrected (the true rotation, the true translation, or only
  the true yaw) to tell which part of the view's error costs most;
- ``exact depth at the true pose``: the ceiling of this pipeline (only the warp's resampling);
- the exact heads held to the model's depth range: clamped to it (as a model whose head is
  centred on the pivot must be), and moved back along the view axis until their nearest point
  is at ``min_depth`` (then clamped), with the translation that puts the moved head where the
  unmoved one was: what the range leaves of an exact decomposition; and clamped to ranges
  with other near ends (``--near-ends``), to find the nearest end that costs little;
- ``mean exact head`` at the model's view and at the true pose: one mean of the exact
  canonical heads for every face;
- ``mean exact head fitted to each face's size`` (at both views): that mean brought to each
  head's size (``oracle_blur_landscape.size_fitted_mean_heads``);
- ``model depth, relief × r``: its canonical relief about the pivot scaled by r (``--reliefs``),
  at its own view: is its depth only too deep?
- the const and avg-gt baselines over the same faces.

If the model's depth at the true pose scores near the mean head's, the views are what is
missing; if the mean head at the true pose is already far from the target, the shape is.
Writes ``experiments/results/pose_or_shape.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from oracle_blur_landscape import size_fitted_mean_heads, turned_faces
from probe_recipe import NEAR_LIMIT, slope
from trained import load_eval_model

from unsup3d_cli.data import DEPTH_FAR
from unsup3d_cli.geometry import euler_to_rotation
from unsup3d_cli.metrics import depth_metrics
from unsup3d_cli.synth_mesh import MeshSynthConfig, euler_rotation
from unsup3d_cli.weights import bundled_model_path

CONST_DEPTH = 1.0


def average_face_depth(gt: torch.Tensor) -> torch.Tensor:
    """The avg-gt baseline's map over these faces: per pixel, the mean depth of the faces that
    cover it (``evaluation.baselines.average_gt_depth``), the background depth elsewhere."""
    face = (gt < DEPTH_FAR).double()
    count = face.sum(0, keepdim=True)
    mean = (gt * face).sum(0, keepdim=True) / count.clamp(min=1)
    return torch.where(count > 0, mean, torch.full_like(mean, DEPTH_FAR))


def scores(depth: torch.Tensor, valid: torch.Tensor, gt: torch.Tensor, renderer) -> dict:
    """Mean SIDE (×10⁻²) and MAD (°) over the faces (NaN-free faces only)."""
    result = depth_metrics(depth.float(), valid.float(), gt, renderer)
    side, mad = result.side * 100, result.mad_deg
    keep = side.isfinite() & mad.isfinite()
    return {
        "side_e2": round(float(side[keep].mean()), 4),
        "mad_deg": round(float(mad[keep].mean()), 2),
        "faces": int(keep.sum()),
    }


def range_fit(exact: torch.Tensor, own: torch.Tensor, low: float) -> dict:
    """Where the exact heads' and the model's canonical noses sit against the near end ``low``
    of the model's depth range; printed, and returned for the record."""
    nearest, own_nearest = exact.flatten(1).min(1).values, own.flatten(1).min(1).values
    clipped = (exact < low).flatten(1).float().sum(1)  # (N,) pixels per face
    pressed = float((own < low + NEAR_LIMIT).float().mean())
    print(
        f"model's nearest canonical depth: median {float(own_nearest.median()):.4f}, share of "
        f"its pixels within {NEAR_LIMIT:g} of min_depth: {pressed:.4f}\n"
        f"exact heads' nearest canonical depth: median {float(nearest.median()):.4f}, min "
        f"{float(nearest.min()):.4f}; pixels nearer than the model's min_depth {low:g}: "
        f"median {float(clipped.median()):.0f} per face"
    )
    return {
        "exact_nearest_canonical_depth_median": round(float(nearest.median()), 4),
        "exact_pixels_nearer_than_min_depth_median": float(clipped.median()),
        "model_nearest_canonical_depth_median": round(float(own_nearest.median()), 4),
        "model_share_within_0.002_of_min_depth": round(pressed, 4),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the bundle")
    parser.add_argument("--num", type=int, default=128, help="faces, all yaws")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "pose_or_shape.json"
    )
    parser.add_argument("--reliefs", default="0.5,0.7", help="factors for the model's relief")
    parser.add_argument(
        "--near-ends", default="0.9,0.91,0.92,0.93,0.94",
        help="near ends m of a range [m, max_depth] the exact heads are also clamped to",
    )  # fmt: skip
    parser.add_argument(
        "--face-fraction", default=None, help="LOW,HIGH share of the frame the heads cover "
        "(default: the generator's, 0.3-0.7), as `unsup3d synth --face-fraction`",
    )  # fmt: skip
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    reliefs = [float(x) for x in args.reliefs.split(",") if x]
    near_ends = [float(x) for x in args.near_ends.split(",") if x]
    framing = {}
    if args.face_fraction:
        low_frac, high_frac = (float(x) for x in args.face_fraction.split(","))
        framing["face_fraction_range"] = (low_frac, high_frac)
    checkpoint = args.checkpoint or bundled_model_path()
    model, _ = load_eval_model(checkpoint)
    renderer, depth_range = model.renderer, model.view_depth_range
    faces = turned_faces(args.num, 0.0, args.seed, MeshSynthConfig(**framing))
    specs = [face.spec for face in faces]
    images = torch.stack([face.image for face in faces])  # (N, 3, S, S)
    exact = torch.stack([face.canon_depth for face in faces]).float()  # background at the pivot
    fitted, _ = size_fitted_mean_heads(faces)
    fitted = torch.stack(fitted).float()
    mean_head = exact.mean(0, keepdim=True).expand_as(exact)
    true_rot = torch.stack([euler_rotation(spec.angles) for spec in specs]).float()
    true_shift = torch.stack([face.scene.translation for face in faces]).float()
    true_angles = torch.stack([spec.angles for spec in specs]).float()
    with torch.no_grad():
        # the generator's input-view depth, background at its max: (N, 1, S, S)
        gt = torch.stack([face.view_depth for face in faces]).double()
        decomp = model(images)
        model_depth, model_valid, model_rot = model.predict_view_depth(images)
        own_shift, own_scale = decomp.view_translation, decomp.view_scale
        true_yaw_angles = decomp.view_angles.clone()
        true_yaw_angles[:, 1] = true_angles[:, 1]

        def warp(depth, rotation, shift, scale=None):
            view, valid, _ = renderer.warp_depth(depth, rotation, shift, depth_range, scale)
            return view, valid

        # the exact heads moved back along the view axis until their nearest point is at the
        # model's min_depth, then clamped to its range: rotated about the pivot, a head moved
        # back by δ lands where the unmoved head does, shifted by R (0, 0, δ), which the
        # translation below takes back. What the depth range leaves of the exact heads.
        low, high = model.cfg.min_depth, model.cfg.max_depth
        back = (low - exact.flatten(1).min(1).values).clamp(min=0)  # (N,)
        moved = (exact + back[:, None, None, None]).clamp(low, high)
        moved_shift = true_shift - true_rot[:, :, 2] * back[:, None]
        rows = {
            "model": (model_depth, model_valid),
            "model depth at the true rotation, its own translation": warp(
                decomp.depth, true_rot, own_shift, own_scale),
            "model depth at the true rotation and translation": warp(
                decomp.depth, true_rot, true_shift),
            "exact depth at the model's view": warp(exact, model_rot, own_shift, own_scale),
            "exact depth at the true rotation, the model's translation": warp(
                exact, true_rot, own_shift, own_scale),
            "exact depth at the model's rotation, the true translation": warp(
                exact, model_rot, true_shift),
            "exact depth at the model's angles with the true yaw, its translation": warp(
                exact, euler_to_rotation(true_yaw_angles), own_shift, own_scale),
            "exact depth at the true pose": warp(exact, true_rot, true_shift),
            "exact depth clamped to the model's depth range, at the true pose": warp(
                exact.clamp(low, high), true_rot, true_shift),
            "exact depth clamped to the model's depth range, at the model's view": warp(
                exact.clamp(low, high), model_rot, own_shift,
                own_scale),
            "exact depth moved back into the model's depth range, at the true pose": warp(
                moved, true_rot, moved_shift),
            **{f"exact depth clamped to [{m:g}, max_depth], at the true pose": warp(
                exact.clamp(m, high), true_rot, true_shift) for m in near_ends},
            "mean exact head at the model's view": warp(mean_head, model_rot, own_shift, own_scale),
            "mean exact head at the true pose": warp(mean_head, true_rot, true_shift),
            "mean exact head fitted to each face's size, at the model's view": warp(
                fitted, model_rot, own_shift, own_scale),
            "mean exact head fitted to each face's size, at the true pose": warp(
                fitted, true_rot, true_shift),
            **{f"model depth, relief × {r:g}, at its own view": warp(
                1 - (1 - decomp.depth) * r, model_rot, own_shift, own_scale) for r in reliefs},
            "const": (torch.full_like(gt, CONST_DEPTH), torch.ones_like(gt)),
            "avg-gt": (average_face_depth(gt).expand_as(gt), torch.ones_like(gt)),
        }  # fmt: skip
    table = {}
    for name, (depth, valid) in rows.items():
        table[name] = scores(depth.double(), valid.double(), gt, renderer)
        print(f"{name:64s} SIDE {table[name]['side_e2']:.3f}  MAD {table[name]['mad_deg']:.1f}")
    yaw = slope(decomp.view_angles[:, 1].double(), true_angles[:, 1].double())
    print(f"model yaw slope on these faces: {yaw:.3f}")
    fits = range_fit(exact, decomp.depth_unbordered, low)
    record = {
        "command": f"python experiments/pose_or_shape.py --num {args.num} --seed {args.seed} "
        f"--reliefs {args.reliefs} --near-ends {args.near_ends}"
        + (f" --face-fraction {args.face_fraction}" if args.face_fraction else "")
        + (f" --checkpoint {args.checkpoint}" if args.checkpoint else ""),
        "checkpoint": str(checkpoint),
        "note": "fresh mesh faces of every yaw; SIDE ×10⁻² and MAD in degrees, mean over faces",
        "model_yaw_slope": round(yaw, 4),
        **fits,
        "rows": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
