"""Which yaw does a blurred but otherwise exact canonical image prefer? An oracle test.

    python experiments/oracle_blur_landscape.py --num 24

As ``oracle_pose_landscape.py`` (the generator's exact canonical frame of each face, its
background at the rotation pivot, warped by our renderer to the true pose), but the yaw is
scaled by k (k = 1 is the truth, k = 0 the front) and the canonical image is blurred with a
Gaussian of σ pixels before the warp, the way a trained model's canonical albedo is a blurred
head. The depth stays exact. The L1 per image pixel against the real input, mean over the faces
whose |yaw| is at least ``--min-yaw``, says at which k each blur has its minimum: if it moves
below 1 as σ grows, a blurred canonical image by itself asks for under-rotated views.
Writes ``experiments/results/oracle_blur_landscape.json``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import NamedTuple

import torch
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import scale
from oracle_pose_landscape import canonical_frame, render_at
from trained import load_eval_model

from unsup3d_cli.render import Renderer
from unsup3d_cli.synth_mesh import (
    MeshFaceSpec,
    MeshSynthConfig,
    Scene,
    build_scene,
    euler_rotation,
    render_scene,
    sample_mesh_face,
)
from unsup3d_cli.weights import bundled_model_path


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """(C, H, W) blurred with a Gaussian of ``sigma`` pixels (window ±3σ), edges replicated."""
    if sigma <= 0:
        return image
    size = 2 * max(1, math.ceil(3 * sigma)) + 1
    return gaussian_blur2d(image[None], (size, size), (sigma, sigma), border_type="replicate")[0]


def model_canonical(model, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A trained model's canonical image (albedo × shading) and depth for one input (3, S, S)."""
    with torch.no_grad():
        decomp = model(target[None].float())
        recon = model.reconstruct(decomp, mirror=False)
    return recon.canonical_image[0], decomp.depth[0]


class TurnedFace(NamedTuple):
    """One generated face and the generator's exact answers for it."""

    spec: MeshFaceSpec
    scene: Scene  # the posed head
    image: torch.Tensor  # the input image (3, S, S)
    canon_image: torch.Tensor  # the exact canonical image (3, S, S)
    canon_depth: torch.Tensor  # the exact canonical depth, background at the pivot (1, S, S)
    view_depth: torch.Tensor  # the input-view depth, background at its max (1, S, S)


def turned_faces(num: int, min_yaw: float, seed: int, cfg: MeshSynthConfig) -> list[TurnedFace]:
    """``num`` faces turned by at least ``min_yaw`` degrees."""
    faces, index = [], 0
    while len(faces) < num:
        spec = sample_mesh_face(index, seed, cfg)
        index += 1
        if abs(math.degrees(float(spec.angles[1]))) < min_yaw:
            continue
        scene = build_scene(spec, cfg)
        target, view_depth, _ = render_scene(scene, spec, cfg)
        canon_image, depth = canonical_frame(scene, spec, cfg)
        faces.append(TurnedFace(spec, scene, target, canon_image, depth, view_depth))
    return faces


def magnified(image: torch.Tensor, factor: float, padding: str = "zeros") -> torch.Tensor:
    """(C, S, S) magnified by ``factor`` about the image centre (bilinear)."""
    centre = image.new_full((1, 2), (image.shape[-1] - 1) / 2)
    factors = image.new_full((1,), factor)
    return scale(image[None], factors, centre, padding_mode=padding, align_corners=True)[0]


def rescaled_relief(depth: torch.Tensor, factor: float) -> torch.Tensor:
    """The relief ``1 − depth`` (1, S, S) magnified by ``factor`` about the image centre, in
    the image plane and in depth (a head ``factor`` times as large at the same pivot)."""
    return magnified(1 - depth, factor) * factor


def size_fitted_mean_heads(faces: list[TurnedFace]) -> tuple[list[torch.Tensor], tuple]:
    """For each face, the mean of all the faces' exact heads brought to that face's size;
    and (the mean head at the mean size, the mean size).

    Each head's relief is first brought to the mean size (``Scene.scale``, the generator's
    head size in world units) and averaged; the average is then scaled to each face's size.
    So the heads differ only in size: one mean shape, fitted per face.
    """
    scales = torch.tensor([face.scene.scale for face in faces])
    mean_scale = float(scales.mean())
    mean_relief = torch.stack([rescaled_relief(face.canon_depth, mean_scale / float(s))
                               for face, s in zip(faces, scales, strict=True)]).mean(0)  # fmt: skip
    return [1 - rescaled_relief(1 - mean_relief, float(s) / mean_scale) for s in scales], (
        1 - mean_relief,
        mean_scale,
    )


def size_by_distance(face: TurnedFace, mean_head: torch.Tensor, mean_scale: float) -> dict:
    """Canonical frames with every head at the mean size, the face's own size coming from a
    translation along the view axis instead (``model.z_translation_range``).

    Magnifying the whole scene by f about the camera changes no pixel; for the canonical frame
    magnified by f about the pivot c, the translation becomes ``t' = (f − 1)·c + f·t``.
    """
    scene, image, depth = face.scene, face.canon_image, face.canon_depth
    factor = mean_scale / scene.scale
    shift = scene.translation * factor
    shift = shift + shift.new_tensor([0.0, 0.0, factor - 1.0])  # the pivot is at depth 1
    big_image = magnified(image, factor, padding="border")
    return {
        "exact image and depth at the mean size; its size from a z-translation": (
            big_image, 1 - rescaled_relief(depth, factor), shift),
        "exact image at the mean size; mean exact head; its size from a z-translation": (
            big_image, mean_head, shift),
    }  # fmt: skip


def canonical_variants(face, mean_depth, fitted_depth, blurs, depth_blurs, model) -> dict:
    """The canonical (image, depth) pairs to warp for one face, by name."""
    target, image, depth = face.image, face.canon_image, face.canon_depth
    variants = {f"exact image, blur {b:g} px; exact depth": (gaussian_blur(image, b), depth)
                for b in blurs}  # fmt: skip
    for b in depth_blurs:
        variants[f"exact image; exact depth, blur {b:g} px"] = (image, gaussian_blur(depth, b))
    variants["exact image; mean exact depth"] = (image, mean_depth)
    variants["exact image; mean exact head fitted to the face's size"] = (image, fitted_depth)
    if model is not None:
        model_image, model_depth = model_canonical(model, target)
        variants["exact image; model depth"] = (image, model_depth)
        variants["model image; exact depth"] = (model_image, depth)
        variants["model image; model depth"] = (model_image, model_depth)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=24, help="faces with |yaw| over --min-yaw")
    parser.add_argument("--min-yaw", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--factors", default="0,0.25,0.5,0.75,1,1.25")
    parser.add_argument("--blurs", default="0,1,2,3,4,6", help="Gaussian σ in pixels")
    parser.add_argument("--depth-blurs", default="1,2,4", help="Gaussian σ for the depth alone")
    parser.add_argument(
        "--loss-blurs", default="0",
        help="Gaussian σ in pixels applied to both the warped image and the input before the "
        "L1, each a row of its own (0: the plain L1): a coarse-to-fine loss's landscape",
    )  # fmt: skip
    parser.add_argument(
        "--model", action="store_true",
        help="also swap in a trained model's canonical image and depth (default: the bundle)",
    )  # fmt: skip
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "oracle_blur_landscape.json"
    )
    args = parser.parse_args()
    cfg, renderer = MeshSynthConfig(), Renderer()
    model, checkpoint = None, args.checkpoint or bundled_model_path()
    if args.model:
        model, _ = load_eval_model(checkpoint)
    factors = [float(x) for x in args.factors.split(",")]
    blurs = [float(x) for x in args.blurs.split(",")]
    depth_blurs = [float(x) for x in args.depth_blurs.split(",") if x]
    loss_blurs = [float(x) for x in args.loss_blurs.split(",")]
    faces = turned_faces(args.num, args.min_yaw, args.seed, cfg)
    mean_depth = torch.stack([face.canon_depth for face in faces]).mean(0)  # a generic mean head
    fitted, (mean_head, mean_scale) = size_fitted_mean_heads(faces)
    sums: dict[tuple[str, float], float] = {}
    for face, fitted_depth in zip(faces, fitted, strict=True):
        spec, scene, target = face.spec, face.scene, face.image
        variants = canonical_variants(face, mean_depth, fitted_depth, blurs, depth_blurs, model)
        variants |= size_by_distance(face, mean_head, mean_scale)
        for name, (image_c, depth_c, *shift) in variants.items():
            for k in factors:
                angles = spec.angles.clone()
                angles[1] = angles[1] * k
                image, valid = render_at(
                    renderer, image_c.float(), depth_c.float(), euler_rotation(angles),
                    shift[0] if shift else scene.translation,
                )  # fmt: skip
                for b in loss_blurs:  # the L1 of both images blurred alike (0: plain)
                    error = (gaussian_blur(image, b) - gaussian_blur(target, b)).abs()
                    error = error.mean(0, keepdim=True) * valid  # (1, S, S)
                    key = (name if b == 0 else f"{name}; loss blur {b:g} px", k)
                    sums[key] = sums.get(key, 0.0) + float(error.mean()) / args.num
    rows = []
    for name in dict.fromkeys(n for n, _ in sums):
        row = {"canonical": name, "l1_by_factor": {f"{k:g}": round(sums[(name, k)], 5)
                                                   for k in factors}}  # fmt: skip
        row["best_factor"] = min(factors, key=lambda k: sums[(name, k)])
        rows.append(row)
        print(json.dumps(row))
    options = [f"--num {args.num}", f"--min-yaw {args.min_yaw:g}", f"--seed {args.seed}",
               f"--factors {args.factors}", f"--blurs {args.blurs}",
               f"--depth-blurs {args.depth_blurs}", f"--loss-blurs {args.loss_blurs}"]  # fmt: skip
    options += ["--model"] if args.model else []
    record = {"command": "python experiments/oracle_blur_landscape.py " + " ".join(options),
              "checkpoint": str(checkpoint) if args.model else None,
              "note": "yaw = k × true yaw; pitch, roll and translation true; the canonical "
              "background at the pivot (1.0); L1 per image pixel over the whole frame, mean "
              "over faces", "rows": rows}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
