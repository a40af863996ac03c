"""Built-in synthetic source: procedurally generated symmetric "faces" with ground-truth depth.

A minimal stand-in so that training, tests and the demo need no downloaded data. Each sample is
a bilaterally symmetric relief (head ellipsoid, brow, eye sockets, nose, mouth) with a
symmetric albedo, posed by a random viewpoint, lit by a random Lambertian light and rendered by
our own renderer over a random background colour. Sample ``index`` of seed ``seed`` is always
the same image.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from unsup3d_cli.geometry import euler_to_rotation
from unsup3d_cli.render import Renderer, lambertian_shading

BACKGROUND_DEPTH = 1.1
"""Depth of the background, as in the synface layout (0 in the depth PNG)."""
POSE_RANGE_DEG = (15.0, 40.0, 5.0)
"""Largest |pitch|, |yaw|, |roll| of the sampled viewpoints, in degrees."""


def _bump(x: Tensor, y: Tensor, cx: float, cy: float, sx: float, sy: float) -> Tensor:
    return torch.exp(-(((x - cx) / sx) ** 2) - ((y - cy) / sy) ** 2)


def _relief(x: Tensor, y: Tensor, shape: Tensor) -> tuple[Tensor, Tensor]:
    """Canonical depth (S, S) and head mask of a symmetric face relief on the grid (x, y)."""
    width, height, nose, brow, eyes = shape.tolist()
    r2 = (x / width) ** 2 + (y / height) ** 2
    head = (r2 < 1).to(x.dtype)
    dome = 0.12 * torch.sqrt((1 - r2).clamp(min=0))
    detail = nose * _bump(x, y, 0.0, 0.1, 0.08, 0.22) + brow * _bump(x, y, 0.0, -0.32, 0.5, 0.07)
    detail = detail - eyes * (
        _bump(x, y, 0.28, -0.18, 0.13, 0.08) + _bump(x, y, -0.28, -0.18, 0.13, 0.08)
    )
    depth = BACKGROUND_DEPTH - head * (dome + detail)
    return depth.clamp(0.9, BACKGROUND_DEPTH), head


def _albedo(x: Tensor, y: Tensor, head: Tensor, skin: Tensor) -> Tensor:
    """Symmetric albedo (3, S, S): skin, darker eyes and brows, red lips."""
    eyes = _bump(x, y, 0.28, -0.18, 0.1, 0.05) + _bump(x, y, -0.28, -0.18, 0.1, 0.05)
    brows = _bump(x, y, 0.28, -0.33, 0.14, 0.03) + _bump(x, y, -0.28, -0.33, 0.14, 0.03)
    lips = _bump(x, y, 0.0, 0.5, 0.18, 0.05)
    dark = (0.8 * eyes + 0.6 * brows).clamp(max=1.0)
    albedo = skin[:, None, None] * (1 - dark)
    albedo = albedo + lips * (albedo.new_tensor([0.55, 0.1, 0.1])[:, None, None] - albedo)
    return albedo * head


def synthetic_sample(index: int, seed: int, size: int = 64) -> tuple[Tensor, Tensor]:
    """Generate one posed, lit face image and its ground-truth depth in the input view.

    Args:
        index: sample number.
        seed: dataset seed (different splits use different seeds).
        size: image side in pixels.

    Returns:
        Image (3, S, S) in [0, 1] and depth (1, S, S) in world units with the background at
        ``BACKGROUND_DEPTH``.
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)

    def uniform(n: int, lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)

    coords = torch.linspace(-1.0, 1.0, size, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    shape = torch.cat([uniform(1, 0.6, 0.75), uniform(1, 0.8, 0.92), uniform(1, 0.03, 0.06),
                       uniform(1, 0.0, 0.02), uniform(1, 0.01, 0.03)])  # fmt: skip
    depth, head = _relief(x, y, shape)
    albedo = _albedo(x, y, head, uniform(3, 0.45, 0.95))
    pose = torch.cat([uniform(1, -1, 1) * p for p in POSE_RANGE_DEG]).deg2rad()
    light = torch.cat([uniform(2, -0.8, 0.8), torch.ones(1, dtype=torch.float64)])
    return _render(depth, head, albedo, pose, light / light.norm(), uniform(5, 0.0, 1.0))


def _render(
    depth: Tensor, head: Tensor, albedo: Tensor, pose: Tensor, light: Tensor, draws: Tensor
) -> tuple[Tensor, Tensor]:
    renderer = Renderer()
    depth, head, albedo = depth[None, None], head[None, None], albedo[None]
    ambient, diffuse = 0.3 + 0.4 * draws[:1], 0.4 + 0.5 * draws[1:2]
    normal = renderer.normals(depth)
    shaded = albedo * lambertian_shading(normal, light[None], ambient, diffuse)
    rotation, translation = euler_to_rotation(pose[None]), depth.new_zeros(1, 3)
    colors = torch.cat([shaded, head], dim=1)  # (1, 4, S, S): rgb + head indicator
    rendered, _ = renderer.render_view(colors, depth, rotation, translation, background=0.0)
    view_depth, _ = renderer.warp_depth(depth, rotation, translation, (0.0, math.inf))
    in_head = rendered[:, 3:] > 0.5
    background = draws[2:5].view(1, 3, 1, 1)
    image = torch.where(in_head, rendered[:, :3], background).clamp(0, 1)
    gt_depth = torch.where(in_head, view_depth, depth.new_tensor(BACKGROUND_DEPTH))
    return image[0].float(), gt_depth[0].float()
