"""Pinhole camera: intrinsics, back-projection of depth maps and projection of points."""

from __future__ import annotations

import math

import torch
from kornia.geometry.depth import depth_to_3d_v2
from torch import Tensor

from unsup3d_cli.checks import check_shape

MAX_FOV_DEG = 180.0
"""A pinhole camera's field of view is below this."""


def intrinsics_from_fov(fov_deg: float, size: int, like: Tensor) -> Tensor:
    """Intrinsic matrix of a square pinhole camera with the principal point at the image centre.

    Args:
        fov_deg: field of view in degrees, in (0, 180).
        size: side of the square image in pixels.
        like: a tensor whose device and dtype the result takes.

    Returns:
        K of shape (3, 3): ``[[f, 0, c], [0, f, c], [0, 0, 1]]``, ``c = (size-1)/2``,
        ``f = c / tan(fov/2)``.
    """
    if not 0.0 < fov_deg < MAX_FOV_DEG:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    centre = (size - 1) / 2.0
    focal = centre / math.tan(math.radians(fov_deg) / 2.0)
    # Filled on the device: building it from a Python list would copy from the host and
    # make a CUDA training step wait at every call.
    matrix = torch.eye(3, device=like.device, dtype=like.dtype)
    matrix[0, 0] = matrix[1, 1] = focal
    matrix[0, 2] = matrix[1, 2] = centre
    return matrix


def pixel_grid(height: int, width: int, like: Tensor) -> Tensor:
    """Integer pixel-centre coordinates (u, v) of an image.

    Returns:
        Tensor of shape (H, W, 2) with ``[..., 0] = u`` (column) and ``[..., 1] = v`` (row).
    """
    v, u = torch.meshgrid(
        torch.arange(height, device=like.device, dtype=like.dtype),
        torch.arange(width, device=like.device, dtype=like.dtype),
        indexing="ij",
    )
    return torch.stack([u, v], dim=-1)  # (H, W, 2)


def depth_to_points(depth: Tensor, intrinsics: Tensor) -> Tensor:
    """Back-project a depth map to camera-frame 3D points: ``P = D · K⁻¹ (u, v, 1)ᵀ``.

    Args:
        depth: z of each pixel, shape (B, 1, H, W).
        intrinsics: pinhole matrix K, shape (3, 3).

    Returns:
        Points, shape (B, H, W, 3).
    """
    check_shape(depth, "B 1 H W", "depth")
    check_shape(intrinsics, "3 3", "intrinsics")
    batch = depth.shape[0]
    camera = intrinsics.expand(batch, 3, 3)  # (B, 3, 3)
    return depth_to_3d_v2(depth[:, 0], camera)  # (B, H, W, 3)


def project_points(points: Tensor, intrinsics: Tensor) -> Tensor:
    """Project camera-frame points to pixel coordinates: ``(u, v) = (f X/Z + c, f Y/Z + c)``.

    Args:
        points: shape (..., 3), with Z > 0.
        intrinsics: pinhole matrix K, shape (3, 3).

    Returns:
        Pixel coordinates (u, v), shape (..., 2).
    """
    check_shape(intrinsics, "3 3", "intrinsics")
    xy = points[..., :2] / points[..., 2:3]  # (..., 2)
    focal = torch.stack([intrinsics[0, 0], intrinsics[1, 1]])
    centre = torch.stack([intrinsics[0, 2], intrinsics[1, 2]])
    return xy * focal + centre  # (..., 2)


def points_to_grid(points: Tensor, intrinsics: Tensor, height: int, width: int) -> Tensor:
    """Project points to a ``grid_sample`` grid in the ``align_corners=True`` convention.

    Args:
        points: shape (B, H', W', 3).
        intrinsics: pinhole matrix K, shape (3, 3).
        height: rows of the image that will be sampled.
        width: columns of the image that will be sampled.

    Returns:
        Normalised coordinates in [-1, 1] at the corner pixel centres, shape (B, H', W', 2).
    """
    uv = project_points(points, intrinsics)  # (B, H', W', 2)
    u, v = uv.unbind(-1)
    return torch.stack([u * (2.0 / (width - 1)), v * (2.0 / (height - 1))], dim=-1) - 1.0
