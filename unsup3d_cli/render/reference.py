"""Naive per-pixel loop rasterizer: the readable reference that tests hold the fast one to.

Same inputs and outputs as :func:`unsup3d_cli.render.rasterize.rasterize_depth`, written as
the textbook algorithm (for every pixel, test every triangle, keep the nearest) with Python
loops. Only for tests and documentation: it is thousands of times slower.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unsup3d_cli.geometry import project_points
from unsup3d_cli.render.rasterize import INSIDE_EPS, MIN_AREA, RasterOutput


def _barycentric(tri: list[tuple[float, float]], u: float, v: float) -> tuple[list[float], float]:
    (ax, ay), (bx, by), (cx, cy) = tri
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    if abs(area) <= MIN_AREA:
        return [-1.0, -1.0, -1.0], area
    w0 = ((cx - bx) * (v - by) - (cy - by) * (u - bx)) / area
    w1 = ((ax - cx) * (v - cy) - (ay - cy) * (u - cx)) / area
    w2 = ((bx - ax) * (v - ay) - (by - ay) * (u - ax)) / area
    return [w0, w1, w2], area


def _nearest_face(uv: Tensor, z: Tensor, faces: Tensor, u: int, v: int, near: float) -> int:
    """Index of the nearest triangle covering pixel centre (u, v), or -1."""
    best, best_depth = -1, float("inf")
    for f, (i, j, k) in enumerate(faces.tolist()):
        if min(z[i], z[j], z[k]) <= near:
            continue
        tri = [(uv[n][0], uv[n][1]) for n in (i, j, k)]
        weights, _ = _barycentric(tri, float(u), float(v))
        if min(weights) < -INSIDE_EPS:
            continue
        depth = 1.0 / (weights[0] / z[i] + weights[1] / z[j] + weights[2] / z[k])
        if near < depth < best_depth:
            best, best_depth = f, depth
    return best


def rasterize_depth_reference(
    vertices: Tensor,
    faces: Tensor,
    intrinsics: Tensor,
    image_size: tuple[int, int],
    background: float = 100.0,
    near: float = 1e-3,
) -> RasterOutput:
    """Loop-based rasterization with the semantics of ``rasterize_depth`` (see there)."""
    height, width = image_size
    uv_all = project_points(vertices, intrinsics)  # (B, N, 2)
    depths, indices, barys = [], [], []
    for b in range(vertices.shape[0]):
        uv, z = uv_all[b].tolist(), vertices[b, :, 2].tolist()
        for v in range(height):
            for u in range(width):
                f = _nearest_face(uv, z, faces, u, v, near)
                indices.append(f)
                if f < 0:
                    depths.append(vertices.new_tensor(background))
                    barys.append(vertices.new_zeros(3))
                    continue
                corner = faces[f]
                tri_uv, tri_z = uv_all[b, corner], vertices[b, corner, 2]  # (3, 2), (3,)
                a, bb, c = tri_uv
                area = (bb[0] - a[0]) * (c[1] - a[1]) - (bb[1] - a[1]) * (c[0] - a[0])
                w0 = ((c[0] - bb[0]) * (v - bb[1]) - (c[1] - bb[1]) * (u - bb[0])) / area
                w1 = ((a[0] - c[0]) * (v - c[1]) - (a[1] - c[1]) * (u - c[0])) / area
                w2 = ((bb[0] - a[0]) * (v - a[1]) - (bb[1] - a[1]) * (u - a[0])) / area
                weights = torch.stack([w0, w1, w2]) / tri_z
                depths.append(1.0 / weights.sum())
                barys.append(weights / weights.sum())
    batch = vertices.shape[0]
    return RasterOutput(
        depth=torch.stack(depths).reshape(batch, 1, height, width),
        face_index=torch.tensor(indices, device=vertices.device).reshape(batch, height, width),
        barycentric=torch.stack(barys).reshape(batch, height, width, 3),
        covered=torch.tensor([i >= 0 for i in indices], device=vertices.device).reshape(
            batch, 1, height, width
        ),
        dropped=torch.zeros((), dtype=torch.int64, device=vertices.device),
    )
