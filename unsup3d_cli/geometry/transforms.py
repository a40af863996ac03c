"""Rotations and the pivoted rigid transform of the viewpoint."""

from __future__ import annotations

import torch
from torch import Tensor

from unsup3d_cli.checks import check_shape


def _axis_rotation(angle: Tensor, axis: int) -> Tensor:
    """Right-handed rotation by ``angle`` (B,) about coordinate axis 0, 1 or 2 → (B, 3, 3)."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = [one, zero, zero, zero, cos, -sin, zero, sin, cos]
    elif axis == 1:
        rows = [cos, zero, sin, zero, one, zero, -sin, zero, cos]
    elif axis == 2:
        rows = [cos, -sin, zero, sin, cos, zero, zero, zero, one]
    else:
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    return torch.stack(rows, dim=-1).reshape(*angle.shape, 3, 3)  # (B, 3, 3)


def euler_to_rotation(angles: Tensor) -> Tensor:
    """Rotation matrices ``R = Rz · Ry · Rx`` from Euler angles.

    Args:
        angles: (rx, ry, rz) in radians, shape (B, 3).

    Returns:
        Rotation matrices, shape (B, 3, 3).
    """
    check_shape(angles, "B 3", "angles")
    rx, ry, rz = angles.unbind(-1)
    return _axis_rotation(rz, 2) @ _axis_rotation(ry, 1) @ _axis_rotation(rx, 0)


def _pivot(points: Tensor, pivot_depth: float) -> Tensor:
    pivot = points.new_zeros(3)  # filled on the device: no host-to-device copy
    pivot[2] = pivot_depth
    return pivot


def rigid_transform(
    points: Tensor,
    rotation: Tensor,
    translation: Tensor,
    pivot_depth: float,
    scale: Tensor | None = None,
) -> Tensor:
    """Apply the viewpoint transform ``P' = s R (P − c) + c + t`` with pivot ``c = (0, 0, d)``.

    Args:
        points: shape (B, ..., 3).
        rotation: shape (B, 3, 3).
        translation: shape (B, 3).
        pivot_depth: z of the pivot.
        scale: the object's size change s about the pivot, shape (B,); None is 1 (a rigid
            motion).

    Returns:
        Transformed points, same shape as ``points``.
    """
    check_shape(rotation, "B 3 3", "rotation")
    check_shape(translation, "B 3", "translation")
    batch = points.shape[0]
    centre = _pivot(points, pivot_depth)
    flat = (points - centre).reshape(batch, -1, 3)  # (B, N, 3)
    if scale is not None:
        check_shape(scale, "B", "scale")
        flat = flat * scale[:, None, None]
    moved = flat @ rotation.transpose(1, 2) + centre + translation[:, None, :]  # (B, N, 3)
    return moved.reshape(points.shape)


def inverse_rigid_transform(
    points: Tensor,
    rotation: Tensor,
    translation: Tensor,
    pivot_depth: float,
    scale: Tensor | None = None,
) -> Tensor:
    """Undo :func:`rigid_transform`: ``P = Rᵀ (P' − t − c) / s + c``.

    Args:
        points: shape (B, ..., 3).
        rotation: shape (B, 3, 3).
        translation: shape (B, 3).
        pivot_depth: z of the pivot.
        scale: the size change s of the forward transform, shape (B,); None is 1.

    Returns:
        Points in the canonical frame, same shape as ``points``.
    """
    check_shape(rotation, "B 3 3", "rotation")
    check_shape(translation, "B 3", "translation")
    batch = points.shape[0]
    centre = _pivot(points, pivot_depth)
    flat = points.reshape(batch, -1, 3) - translation[:, None, :] - centre  # (B, N, 3)
    unrotated = flat @ rotation  # row-vector form of Rᵀ p
    if scale is not None:
        check_shape(scale, "B", "scale")
        unrotated = unrotated / scale[:, None, None]
    return (unrotated + centre).reshape(points.shape)
