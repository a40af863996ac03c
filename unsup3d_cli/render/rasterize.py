"""Differentiable depth rasterization of triangle meshes, in pure PyTorch.

Two passes (the split PyTorch3D and nvdiffrast also make):

1. **Visibility** (no gradient): every triangle is projected, the integer pixel centres inside its
   scanline spans become (triangle, pixel) candidates, an edge-function test keeps those inside
   the triangle (either winding: faces are two-sided), and a z-buffer keeps the nearest. Depth and
   triangle id are packed into one int64 key (the IEEE bits of a positive float32 sort like the
   float), so a single ``scatter_reduce(amin)`` resolves visibility. Candidates are processed in
   chunks of at most ``max_candidates`` so memory stays bounded whatever the triangles' sizes.
2. **Interpolation** (differentiable): for each covered pixel, the screen-space barycentrics of
   the pixel centre in its visible triangle are recomputed from the projected vertices, and the
   depth is interpolated perspective-correctly, ``z = 1 / Σ w_k / z_k``. Gradients reach every
   vertex coordinate (x, y through the projection, z directly), hence the depth map and the
   viewpoint. As in other exact (non-soft) rasterizers, visibility changes give no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from unsup3d_cli.checks import check_shape
from unsup3d_cli.geometry import project_points

INSIDE_EPS = 1e-5
"""Barycentric slack of the inside test, so pixel centres on a shared edge are never dropped."""
MIN_AREA = 1e-9
"""Triangles with a smaller projected area (pixels²) are skipped as degenerate."""
EMPTY = torch.iinfo(torch.int64).max


@dataclass(frozen=True)
class RasterOutput:
    """What a rasterization produces per pixel.

    Attributes:
        depth: perspective-correct z of the visible surface, ``background`` where empty,
            shape (B, 1, H, W).
        face_index: index of the visible triangle, -1 where empty, shape (B, H, W).
        barycentric: perspective-correct barycentric weights of the visible triangle's vertices
            (sum to 1; zero where empty), shape (B, H, W, 3).
        covered: True where a triangle covers the pixel centre, shape (B, 1, H, W).
    """

    depth: Tensor
    face_index: Tensor
    barycentric: Tensor
    covered: Tensor


def _edge_weights(tri: Tensor, px: Tensor) -> tuple[Tensor, Tensor]:
    """Screen-space barycentrics of points ``px`` (..., 2) in triangles ``tri`` (..., 3, 2).

    Returns:
        Weights (..., 3) and the signed doubled area (...,) of each triangle.
    """
    a, b, c = tri.unbind(-2)  # (..., 2) each
    area = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        c[..., 0] - a[..., 0]
    )

    def edge(p: Tensor, q: Tensor) -> Tensor:
        return (q[..., 0] - p[..., 0]) * (px[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (
            px[..., 0] - p[..., 0]
        )

    safe = torch.where(area.abs() > MIN_AREA, area, torch.ones_like(area))
    weights = torch.stack([edge(b, c), edge(c, a), edge(a, b)], dim=-1) / safe[..., None]
    return weights, area


def _chunks(count: Tensor, max_candidates: int) -> list[tuple[int, int]]:
    """Split items into contiguous runs whose ``count`` totals stay under ``max_candidates``."""
    ends = torch.cumsum(count, 0)
    bounds, start = [], 0
    total = int(ends[-1]) if len(ends) else 0
    while start < len(count) and total > 0:
        base = int(ends[start - 1]) if start > 0 else 0
        stop = int(torch.searchsorted(ends, base + max_candidates, right=True))
        stop = max(stop, start + 1)  # one huge item still gets a chunk of its own
        bounds.append((start, stop))
        start = stop
    return bounds


def _expand(count: Tensor, start: int) -> tuple[Tensor, Tensor]:
    """Enumerate ``count[i]`` entries per item: returns (owner item index + start, rank)."""
    owner = torch.repeat_interleave(torch.arange(len(count), device=count.device), count)
    first = torch.cumsum(count, 0) - count  # (N,)
    rank = torch.arange(len(owner), device=count.device) - first[owner]
    return owner + start, rank


def _row_spans(tri_uv: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Leftmost and rightmost u where the horizontal line ``v`` crosses each triangle.

    Args:
        tri_uv: (R, 3, 2) triangles.
        v: (R,) row coordinate per triangle.

    Returns:
        u_min, u_max, each (R,); u_min > u_max where the row misses the triangle.
    """
    start, end = tri_uv, tri_uv.roll(-1, dims=1)  # edges (k, k+1), (R, 3, 2)
    dy = end[..., 1] - start[..., 1]  # (R, 3)
    slanted = dy.abs() > 1e-12  # horizontal edges are covered by their neighbours' endpoints
    t = (v[:, None] - start[..., 1]) / torch.where(slanted, dy, torch.ones_like(dy))
    hits = slanted & (t >= -1e-6) & (t <= 1 + 1e-6)
    u = start[..., 0] + t.clamp(0.0, 1.0) * (end[..., 0] - start[..., 0])  # (R, 3)
    inf = torch.full_like(u, float("inf"))
    return torch.where(hits, u, inf).amin(dim=1), torch.where(hits, u, -inf).amax(dim=1)


def _store_nearest(
    zbuf: Tensor, tri: Tensor, u: Tensor, v: Tensor, tri_uv: Tensor, tri_z: Tensor, meta: tuple
) -> None:
    """Edge-test candidate pixels and fold the inside ones into the packed z-buffer in place."""
    num_faces, height, width, near = meta
    px = torch.stack([u, v], dim=-1).to(tri_uv.dtype)  # (C, 2)
    weights, area = _edge_weights(tri_uv[tri], px)  # (C, 3), (C,)
    depth = 1.0 / (weights / tri_z[tri]).sum(dim=-1)  # (C,) perspective-correct z
    inside = (weights >= -INSIDE_EPS).all(dim=-1) & (area.abs() > MIN_AREA) & (depth > near)
    tri, u, v, depth = tri[inside], u[inside], v[inside], depth[inside]
    pixel = (tri // num_faces) * (height * width) + v * width + u  # (C',)
    key = (depth.float().view(torch.int32).to(torch.int64) << 32) | tri
    zbuf.scatter_reduce_(0, pixel, key, reduce="amin")


def rasterize_depth(
    vertices: Tensor,
    faces: Tensor,
    intrinsics: Tensor,
    image_size: tuple[int, int],
    background: float = 100.0,
    near: float = 1e-3,
    max_candidates: int = 4_000_000,
) -> RasterOutput:
    """Rasterize triangle meshes into depth maps with a pinhole camera.

    Args:
        vertices: camera-frame vertices, shape (B, N, 3).
        faces: vertex indices of the triangles, shared by the batch, shape (F, 3), long.
        intrinsics: pinhole matrix K, shape (3, 3).
        image_size: (H, W) of the output.
        background: depth written where no triangle covers the pixel centre.
        near: triangles with a vertex closer than this are skipped.
        max_candidates: most (triangle, pixel) pairs tested at once.

    Returns:
        :class:`RasterOutput`; its ``depth`` and ``barycentric`` are differentiable with respect
        to ``vertices``.
    """
    check_shape(vertices, "B N 3", "vertices")
    check_shape(faces, "F 3", "faces")
    height, width = image_size
    batch, num_faces = vertices.shape[0], faces.shape[0]
    uv = project_points(vertices, intrinsics)  # (B, N, 2)
    tri_uv = uv[:, faces]  # (B, F, 3, 2)
    tri_z = vertices[:, faces, 2]  # (B, F, 3)
    face_index = _zbuffer(
        tri_uv.detach().reshape(-1, 3, 2),
        tri_z.detach().reshape(-1, 3),
        num_faces,
        (batch, height, width),
        near,
        max_candidates,
    )  # (B·H·W,) flat triangle index or -1
    return _interpolate(tri_uv, tri_z, face_index, (batch, height, width), background)


@torch.no_grad()
def _zbuffer(
    tri_uv: Tensor,
    tri_z: Tensor,
    num_faces: int,
    shape: tuple[int, int, int],
    near: float,
    max_candidates: int,
) -> Tensor:
    """Visibility pass over triangles flattened across the batch (T = B·F).

    Args:
        tri_uv: (T, 3, 2) projected vertices.
        tri_z: (T, 3) vertex depths.
        num_faces: F, to recover each triangle's batch index.
        shape: (B, H, W).
        near: triangles or pixels closer than this are skipped.
        max_candidates: most (triangle, pixel) pairs tested at once.

    Returns:
        Flat triangle index t = b·F + f of the nearest triangle per pixel, -1 where empty,
        shape (B·H·W,).
    """
    batch, height, width = shape
    meta = (num_faces, height, width, near)
    valid = (tri_z.amin(dim=1) > near) & torch.isfinite(tri_uv).all(dim=(1, 2))
    v_lo = torch.ceil(tri_uv[..., 1].amin(dim=1) - 1e-4).clamp(min=0).nan_to_num(0.0)
    v_hi = torch.floor(tri_uv[..., 1].amax(dim=1) + 1e-4).clamp(max=height - 1).nan_to_num(-1.0)
    rows = ((v_hi - v_lo + 1).clamp(min=0) * valid).to(torch.int64)  # (T,)
    v_lo = v_lo.to(torch.int64)
    zbuf = torch.full((batch * height * width,), EMPTY, dtype=torch.int64, device=tri_uv.device)
    for start, stop in _chunks(rows, max_candidates):
        tri, rank = _expand(rows[start:stop], start)  # one entry per (triangle, row)
        v = v_lo[tri] + rank
        u_min, u_max = _row_spans(tri_uv[tri], v.to(tri_uv.dtype))
        u_lo = torch.ceil(u_min - 1e-4).clamp(min=0)
        u_hi = torch.floor(u_max + 1e-4).clamp(max=width - 1)
        cols = (u_hi - u_lo + 1).clamp(min=0).nan_to_num(0.0).to(torch.int64)
        u_lo = u_lo.clamp(max=width).to(torch.int64)
        for first, last in _chunks(cols, max_candidates):
            row, col = _expand(cols[first:last], first)
            _store_nearest(zbuf, tri[row], u_lo[row] + col, v[row], tri_uv, tri_z, meta)
    empty = zbuf == EMPTY
    return torch.where(empty, torch.full_like(zbuf, -1), zbuf & 0xFFFFFFFF)


def _interpolate(
    tri_uv: Tensor,
    tri_z: Tensor,
    face_index: Tensor,
    shape: tuple[int, int, int],
    background: float,
) -> RasterOutput:
    """Differentiable pass: perspective-correct depth and barycentrics of the visible triangles.

    Args:
        tri_uv: (B, F, 3, 2) projected vertices.
        tri_z: (B, F, 3) vertex depths.
        face_index: (B·H·W,) flat visible triangle index or -1.
        shape: (B, H, W).
        background: depth of empty pixels.
    """
    batch, height, width = shape
    num_faces = tri_uv.shape[1]
    covered = face_index >= 0  # (B·H·W,)
    pixel = covered.nonzero().squeeze(1)  # (P,) covered flat pixels
    visible = face_index[pixel]  # (P,)
    uv = tri_uv.reshape(-1, 3, 2)[visible]  # (P, 3, 2)
    z = tri_z.reshape(-1, 3)[visible]  # (P, 3)
    within = pixel % (height * width)
    px = torch.stack([within % width, within // width], dim=-1).to(uv.dtype)  # (P, 2)
    weights, _ = _edge_weights(uv, px)  # (P, 3) screen-space
    inv_depth = (weights / z).sum(dim=-1, keepdim=True)  # (P, 1)
    bary = weights / z / inv_depth  # (P, 3) perspective-correct, sums to 1
    depth = tri_z.new_full((batch * height * width, 1), background)
    depth = depth.index_put((pixel,), 1.0 / inv_depth)  # (B·H·W, 1)
    full_bary = tri_z.new_zeros((batch * height * width, 3)).index_put((pixel,), bary)
    local_face = torch.where(covered, face_index % num_faces, face_index)
    return RasterOutput(
        depth=depth.reshape(batch, 1, height, width),
        face_index=local_face.reshape(batch, height, width),
        barycentric=full_bary.reshape(batch, height, width, 3),
        covered=covered.reshape(batch, 1, height, width),
    )
