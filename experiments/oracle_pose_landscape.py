"""Does the model's image formation prefer the true pose on the mesh faces? An oracle test.

    python experiments/oracle_pose_landscape.py --num 24

For mesh faces (``unsup3d synth --style mesh``) the generator is asked for the exact canonical
frame: the same head un-rotated (``R^T (P − c − t) + c``), shaded by the same light (which is
attached to the head), over the same background. Our renderer then warps that canonical image
and depth to the view, as the model does, at the true pose with the yaw moved by Δ, and the L1
photometric error against the real input is measured on the head and on the background
separately. The canonical background's depth is taken three ways: the generator's (1.1, behind
the pivot), at the rotation pivot (1.0), and after the paper's per-image mean centring.

A perfect decomposition has its lowest error at Δ = 0. If the background term instead falls as
the yaw goes to 0 (Δ = −yaw), the image formation itself pushes the pose towards the front.
Writes ``experiments/results/oracle_pose_landscape.json``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from unsup3d_cli.render import Renderer, sample_canonical
from unsup3d_cli.synth_mesh import (
    MeshSynthConfig,
    Scene,
    build_scene,
    euler_rotation,
    render_scene,
    sample_mesh_face,
)

BACKGROUND = 1.1  # the generator's background depth


def canonical_scene(scene: Scene, pivot: float) -> Scene:
    """The posed scene taken back to the canonical frame (no rotation, no translation)."""
    centre = scene.vertices.new_tensor([0.0, 0.0, pivot])
    vertices = (scene.vertices - scene.translation - centre) @ scene.rotation + centre
    normals = scene.normals @ scene.rotation  # R^T n, row vectors
    eye = torch.eye(3, dtype=scene.rotation.dtype)
    return Scene(vertices, scene.faces, normals, scene.albedo, scene.is_head, eye,
                 torch.zeros_like(scene.translation), scene.scale)  # fmt: skip


def canonical_frame(scene: Scene, spec, cfg: MeshSynthConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The generator's exact canonical image (3, S, S) and depth (1, S, S) of a posed face,
    the depth's background moved to the rotation pivot (the model's canonical frame)."""
    image, depth, _ = render_scene(canonical_scene(scene, cfg.rot_center_depth), spec, cfg)
    pivot = torch.full_like(depth, cfg.rot_center_depth)
    return image, torch.where(depth < BACKGROUND, depth, pivot)


def render_at(
    renderer: Renderer,
    image: torch.Tensor,
    depth: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The canonical image (3, S, S) and depth (1, S, S) seen from a pose, and its valid mask."""
    rot, shift = rotation[None].float(), translation[None].float()
    view_depth, valid, _ = renderer.warp_depth(depth[None], rot, shift, (0.75, 1.25))
    grid = renderer.inverse_grid(view_depth, rot, shift)
    return sample_canonical(image[None] - 0.5, grid)[0] + 0.5, valid[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=24, help="faces with |yaw| over --min-yaw")
    parser.add_argument("--min-yaw", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--offsets", default="-30,-20,-10,-5,0,5,10,20,30")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "oracle_pose_landscape.json"
    )
    args = parser.parse_args()
    cfg, renderer = MeshSynthConfig(), Renderer()
    offsets = [float(x) for x in args.offsets.split(",")] + ["frontal"]
    modes = ("generator (1.1)", "at pivot (1.0)", "mean-centred")
    sums = {(m, o, part): 0.0 for m in modes for o in offsets for part in ("head", "background")}
    index = done = 0
    while done < args.num:
        spec = sample_mesh_face(index, args.seed, cfg)
        index += 1
        yaw = float(spec.angles[1])
        if abs(math.degrees(yaw)) < args.min_yaw:
            continue
        scene = build_scene(spec, cfg)
        target, view_depth, _ = render_scene(scene, spec, cfg)
        head = (view_depth < BACKGROUND).float()  # (1, S, S) head and neck in the view
        canon = canonical_scene(scene, cfg.rot_center_depth)
        canon_image, canon_depth, _ = render_scene(canon, spec, cfg)
        object_mask = canon_depth < BACKGROUND
        depths = {
            "generator (1.1)": canon_depth,
            "at pivot (1.0)": torch.where(object_mask, canon_depth, torch.ones_like(canon_depth)),
        }
        depths["mean-centred"] = canon_depth - canon_depth.mean() + 1.0
        for mode, depth in depths.items():
            for offset in offsets:
                angles = spec.angles.clone()
                angles[1] = (
                    0.0
                    if offset == "frontal"
                    else angles[1] + math.radians(offset) * math.copysign(1, yaw)
                )
                rotation = euler_rotation(angles)
                image, valid = render_at(renderer, canon_image, depth, rotation, scene.translation)
                error = (image - target).abs().mean(0, keepdim=True) * valid  # (1, S, S)
                pixels = target.shape[-1] ** 2
                sums[(mode, offset, "head")] += float((error * head).sum()) / pixels / args.num
                sums[(mode, offset, "background")] += (
                    float((error * (1 - head)).sum()) / pixels / args.num
                )
        done += 1
    rows = []
    for mode in modes:
        for offset in offsets:
            head_err, bg_err = sums[(mode, offset, "head")], sums[(mode, offset, "background")]
            rows.append({"background_depth": mode, "yaw_offset_deg": offset,
                         "head_l1": round(head_err, 5), "background_l1": round(bg_err, 5),
                         "total_l1": round(head_err + bg_err, 5)})  # fmt: skip
            print(json.dumps(rows[-1]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": "python experiments/oracle_pose_landscape.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "note": "yaw offsets are signed away from the front (+ = more turned); 'frontal' = yaw 0; "
        "L1 per image pixel, summed over the part (head and neck, or background), mean over faces",
        "rows": rows}  # fmt: skip
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
