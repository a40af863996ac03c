"""Lambertian shading with one ambient and one directional grey light."""

from __future__ import annotations

from torch import Tensor

from unsup3d_cli.checks import check_shape


def lambertian_shading(
    normals: Tensor, light_direction: Tensor, ambient: Tensor, diffuse: Tensor
) -> Tensor:
    """Shading ``ka + kd · max(0, n · l)``.

    Args:
        normals: unit normals, shape (B, H, W, 3).
        light_direction: unit vectors towards the light, shape (B, 3); +z faces the surface.
        ambient: ambient intensity ka, shape (B,).
        diffuse: diffuse intensity kd, shape (B,).

    Returns:
        Grey shading, shape (B, 1, H, W).
    """
    check_shape(normals, "B H W 3", "normals")
    check_shape(light_direction, "B 3", "light_direction")
    cosine = (normals * light_direction[:, None, None, :]).sum(dim=-1).clamp(min=0.0)  # (B, H, W)
    shading = ambient[:, None, None] + diffuse[:, None, None] * cosine  # (B, H, W)
    return shading[:, None]  # (B, 1, H, W)
