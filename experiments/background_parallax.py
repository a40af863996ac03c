"""How far the model's own image formation moves the background when a head turns.

    python experiments/background_parallax.py

The model rotates its whole canonical depth map, background included, about a pivot at depth
``renderer.rot_center_depth``. A head standing in front of a flat background is drawn as a
hemisphere of the frame's given area fraction on a plane, and rendered at a few yaws with our
renderer, once with the background at the pivot and once after the paper's per-image mean
centring (which puts the image's mean depth at the pivot, so the background lands behind it).
For the background pixels of each view it reports how far (in pixels) the renderer fetches
them from in the canonical frame: what the albedo would have to absorb, per image, for the
reconstruction to match a photo whose background did not move. Writes
``experiments/results/background_parallax.json``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from unsup3d_cli.geometry import euler_to_rotation
from unsup3d_cli.render import Renderer

SIZE = 64


def head_on_plane(fraction: float, renderer: Renderer) -> tuple[torch.Tensor, torch.Tensor]:
    """Canonical depth (1, 1, S, S) of a hemisphere covering ``fraction`` of the frame on a
    plane at the pivot depth, and its head mask (1, 1, S, S)."""
    pivot = renderer.cfg.rot_center_depth
    pixel = 2 * math.tan(math.radians(renderer.cfg.fov_deg) / 2) * pivot / (SIZE - 1)
    radius_px = math.sqrt(fraction * SIZE * SIZE / math.pi)
    coords = torch.arange(SIZE, dtype=torch.float64) - (SIZE - 1) / 2
    rho = torch.hypot(coords[None, :], coords[:, None])  # (S, S) pixels from the centre
    inside = rho < radius_px
    bulge = torch.sqrt((radius_px**2 - rho**2).clamp(min=0)) * pixel  # world units
    depth = pivot - bulge * inside
    return depth[None, None], inside[None, None]


def background_motion(
    depth: torch.Tensor, head: torch.Tensor, yaw_deg: float, renderer: Renderer
) -> dict:
    """Statistics of the canonical source offset of the view's background pixels at ``yaw_deg``."""
    angles = torch.tensor([[0.0, math.radians(yaw_deg), 0.0]], dtype=torch.float64)
    rotation = euler_to_rotation(angles)
    translation = torch.zeros(1, 3, dtype=torch.float64)
    view_depth, valid, _ = renderer.warp_depth(depth, rotation, translation, (0.7, 1.3))
    grid = renderer.inverse_grid(view_depth, rotation, translation)[0]  # (S, S, 2) in [-1, 1]
    identity = torch.stack(
        torch.meshgrid(torch.linspace(-1, 1, SIZE, dtype=torch.float64),
                       torch.linspace(-1, 1, SIZE, dtype=torch.float64), indexing="xy"),
        dim=-1,
    )  # fmt: skip
    offset = (grid - identity).norm(dim=-1) * (SIZE - 1) / 2  # (S, S) pixels
    # background of the view: not the head (the head mask moved by at most a few pixels is a
    # conservative stand-in: pixels near the silhouette are left out)
    ring = torch.nn.functional.max_pool2d(head.double(), 9, stride=1, padding=4)[0, 0] > 0
    background = (~ring) & (valid[0, 0] > 0)
    moved = offset[background]
    return {
        "yaw_deg": yaw_deg,
        "mean_offset_px": round(moved.mean().item(), 3),
        "share_over_1px": round((moved > 1).double().mean().item(), 4),
        "share_over_3px": round((moved > 3).double().mean().item(), 4),
        "invalid_share": round(1 - valid.double().mean().item(), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", default="0.3,0.5,0.7")
    parser.add_argument("--yaws", default="10,20,30,45")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "background_parallax.json"
    )
    args = parser.parse_args()
    renderer = Renderer()
    rows = []
    for fraction in (float(x) for x in args.fractions.split(",")):
        depth, head = head_on_plane(fraction, renderer)
        centred = depth - depth.mean() + renderer.cfg.rot_center_depth  # the paper's centring
        behind = (centred - depth)[0, 0, 0, 0].item()
        for yaw in (float(x) for x in args.yaws.split(",")):
            for name, canonical in (("background at pivot", depth), ("mean-centred", centred)):
                row = {
                    "fraction": fraction,
                    "decoding": name,
                    "background_behind_pivot": round(behind * (name == "mean-centred"), 5),
                }
                row.update(background_motion(canonical, head, yaw, renderer))
                rows.append(row)
                print(json.dumps(row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
