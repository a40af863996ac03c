"""Triangulation of a depth-map grid."""

from __future__ import annotations

import torch


def grid_faces(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Two triangles per grid cell of an H×W vertex grid (vertex index ``r·W + c``).

    Cell (r, c) gives ``(i(r,c), i(r+1,c), i(r,c+1))`` and ``(i(r,c+1), i(r+1,c), i(r+1,c+1))``.
    The mesh is one continuous sheet; the rasterizer treats both windings as visible.

    Returns:
        Long tensor of shape (2·(H−1)·(W−1), 3).
    """
    if height < 2 or width < 2:
        raise ValueError(f"grid needs at least 2×2 vertices, got {height}×{width}")
    index = torch.arange(height * width, device=device).reshape(height, width)
    top_left, top_right = index[:-1, :-1], index[:-1, 1:]  # (H-1, W-1)
    bottom_left, bottom_right = index[1:, :-1], index[1:, 1:]
    first = torch.stack([top_left, bottom_left, top_right], dim=-1)  # (H-1, W-1, 3)
    second = torch.stack([top_right, bottom_left, bottom_right], dim=-1)
    return torch.stack([first, second], dim=2).reshape(-1, 3)  # (2(H-1)(W-1), 3)
