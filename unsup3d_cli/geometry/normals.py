"""Surface normals of a depth map from its back-projected 3D points."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from unsup3d_cli.checks import check_shape

PAPER_NORMAL_EPS = 1e-7
"""The original code divides by ‖n‖ + 1e-7 (see :func:`points_to_normals`)."""


def points_to_normals(points: Tensor, paper_eps: bool = False) -> Tensor:
    """Normals of the surface through a grid of 3D points, by central differences.

    For interior pixels ``n = (P[r, c+1] − P[r, c−1]) × (P[r+1, c] − P[r−1, c])``; the one-pixel
    outer ring gets ``(0, 0, 1)``. A fronto-parallel plane gives ``(0, 0, +1)`` (away from the
    camera).

    Args:
        points: camera-frame points, shape (B, H, W, 3), H and W ≥ 3.
        paper_eps: divide by ``‖n‖ + 1e-7`` as the original code does. At 64×64 with the
            default camera ‖n‖ ≈ 3e-5, so those "unit" normals are ≈ 0.3% short; the default
            (False) returns true unit normals.

    Returns:
        Normals, shape (B, H, W, 3).
    """
    check_shape(points, "B H W 3", "points")
    if points.shape[1] < 3 or points.shape[2] < 3:
        raise ValueError(f"points: need H, W >= 3, got {tuple(points.shape)}")
    tangent_u = points[:, 1:-1, 2:] - points[:, 1:-1, :-2]  # (B, H-2, W-2, 3)
    tangent_v = points[:, 2:, 1:-1] - points[:, :-2, 1:-1]  # (B, H-2, W-2, 3)
    inner = torch.linalg.cross(tangent_u, tangent_v, dim=-1)  # (B, H-2, W-2, 3)
    if paper_eps:
        inner = inner / (inner.norm(dim=-1, keepdim=True) + PAPER_NORMAL_EPS)
    else:
        inner = F.normalize(inner, dim=-1, eps=1e-20)
    normals = F.pad(inner.permute(0, 3, 1, 2), (1, 1, 1, 1))  # (B, 3, H, W), zero ring
    ring = torch.ones_like(normals[:, 2:3])
    ring[:, :, 1:-1, 1:-1] = 0.0
    normals = normals + F.pad(ring, (0, 0, 0, 0, 2, 0))  # z = 1 on the ring
    return normals.permute(0, 2, 3, 1)  # (B, H, W, 3)
