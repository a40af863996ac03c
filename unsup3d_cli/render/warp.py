"""Canonical → view depth warp (rasterized) and view → canonical sampling grid."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from unsup3d_cli.checks import check_shape
from unsup3d_cli.geometry import (
    depth_to_points,
    inverse_rigid_transform,
    points_to_grid,
    rigid_transform,
)
from unsup3d_cli.render.mesh import grid_faces
from unsup3d_cli.render.rasterize import RasterOutput, rasterize_depth


class WarpedDepth(NamedTuple):
    """A canonical depth map rendered in a view (:func:`warp_depth`).

    Attributes:
        depth: view depth clamped to the depth range, (B, 1, H, W).
        mask: 1 where ``depth`` is below the range's top, float, (B, 1, H, W).
        dropped: the rasterizer's dropped candidates (``RasterOutput.dropped``), 0-dim int64.
    """

    depth: Tensor
    mask: Tensor
    dropped: Tensor


def posed_mesh(
    canonical_depth: Tensor,
    rotation: Tensor,
    translation: Tensor,
    intrinsics: Tensor,
    pivot_depth: float,
    scale: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The depth map's grid mesh moved into the view: vertices (B, H·W, 3) and faces (F, 3).

    ``scale`` (B,) resizes the mesh about the pivot before the rigid motion (None: 1).
    """
    check_shape(canonical_depth, "B 1 H W", "canonical_depth")
    height, width = canonical_depth.shape[-2:]
    points = depth_to_points(canonical_depth, intrinsics)  # (B, H, W, 3)
    posed = rigid_transform(points, rotation, translation, pivot_depth, scale)  # (B, H, W, 3)
    faces = grid_faces(height, width, device=canonical_depth.device)
    return posed.reshape(points.shape[0], -1, 3), faces


def warp_depth(
    canonical_depth: Tensor,
    rotation: Tensor,
    translation: Tensor,
    intrinsics: Tensor,
    pivot_depth: float,
    depth_range: tuple[float, float],
    *,
    scale: Tensor | None = None,
    **raster_options,
) -> WarpedDepth:
    """Render the canonical depth map as a mesh seen from the viewpoint (R, t).

    Args:
        canonical_depth: shape (B, 1, H, W).
        rotation: shape (B, 3, 3).
        translation: shape (B, 3).
        intrinsics: pinhole matrix K, shape (3, 3).
        pivot_depth: z of the rotation pivot.
        depth_range: (lo, hi) clamp of the rendered depth; pixels at ``hi`` (background
            included) are invalid. The clamp stops gradients at clamped pixels, as in the original.
        scale: the object's size change about the pivot, shape (B,); None is 1.
        **raster_options: keyword arguments of :func:`rasterize_depth` (``max_candidates``,
            ``fixed_size``, ``slots_per_pixel``).

    Returns:
        The :class:`WarpedDepth`: view depth clamped to ``depth_range``, the validity mask (1
        where depth < hi) and the rasterizer's drop count.
    """
    vertices, faces = posed_mesh(
        canonical_depth, rotation, translation, intrinsics, pivot_depth, scale
    )
    size = tuple(canonical_depth.shape[-2:])
    raster = rasterize_depth(vertices, faces, intrinsics, size, **raster_options)
    lo, hi = depth_range
    depth = raster.depth.clamp(lo, hi)
    return WarpedDepth(depth, (depth < hi).to(depth.dtype), raster.dropped)


def inverse_warp_grid(
    view_depth: Tensor,
    rotation: Tensor,
    translation: Tensor,
    intrinsics: Tensor,
    pivot_depth: float,
    scale: Tensor | None = None,
) -> Tensor:
    """Where each view pixel lands in the canonical image, as a ``grid_sample`` grid.

    Back-projects the view depth, undoes the viewpoint transform and projects with K.

    Args:
        view_depth: shape (B, 1, H, W).
        rotation: shape (B, 3, 3).
        translation: shape (B, 3).
        intrinsics: shape (3, 3).
        pivot_depth: z of the rotation pivot.
        scale: the size change of the forward transform, shape (B,); None is 1.

    Returns:
        Sampling grid in the ``align_corners=True`` convention, shape (B, H, W, 2).
    """
    height, width = view_depth.shape[-2:]
    points = depth_to_points(view_depth, intrinsics)  # (B, H, W, 3)
    canonical = inverse_rigid_transform(points, rotation, translation, pivot_depth, scale)
    return points_to_grid(canonical, intrinsics, height, width)  # (B, H, W, 2)


def sample_canonical(image: Tensor, grid: Tensor) -> Tensor:
    """Bilinear lookup of a canonical image at a sampling grid (zeros outside).

    Args:
        image: shape (B, C, H, W).
        grid: shape (B, H', W', 2).

    Returns:
        Shape (B, C, H', W').
    """
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def interpolate_vertex_colors(raster: RasterOutput, faces: Tensor, colors: Tensor) -> Tensor:
    """Perspective-correct interpolation of per-vertex colours over the visible triangles.

    Args:
        raster: output of the rasterizer for B meshes.
        faces: (F, 3) faces that were rasterized.
        colors: per-vertex values, shape (B, N, C).

    Returns:
        Interpolated values, zero where empty, shape (B, C, H, W).
    """
    batch, height, width = raster.face_index.shape
    corner = faces[raster.face_index.clamp(min=0)]  # (B, H, W, 3)
    gathered = torch.gather(
        colors, 1, corner.reshape(batch, -1, 1).expand(-1, -1, colors.shape[-1])
    ).reshape(batch, height, width, 3, -1)  # (B, H, W, 3, C)
    values = (raster.barycentric[..., None] * gathered).sum(dim=-2)  # (B, H, W, C)
    return values.permute(0, 3, 1, 2) * raster.covered  # (B, C, H, W)
