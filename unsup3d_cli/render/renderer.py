"""Renderer settings and the thin module around the functional renderer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RendererConfig:
    """Settings of the pinhole camera and the depth rasterizer."""

    fov_deg: float = 10.0
    """Field of view of the square pinhole camera, in degrees (fx = fy = (S-1)/2 / tan(fov/2))."""
    rot_center_depth: float = 1.0
    """Depth of the pivot (0, 0, d) about which viewpoint rotations are applied, in world units."""
    max_candidates: int = 4_000_000
    """Most (triangle, pixel) candidate pairs the rasterizer's visibility pass holds at once."""
