"""Differentiable depth rasterization of triangle meshes, in pure PyTorch.

Two passes (the split PyTorch3D and nvdiffrast also make):

1. **Visibility** (no gradient): every triangle is projected and paired with the integer pixel
   centres it may contain; an edge-function test keeps those inside the triangle (either
   winding: faces are two-sided), and a z-buffer keeps the nearest. Depth and triangle id are
   packed into one int64 key (the IEEE bits of a positive float32 sort like the float), so a
   single ``scatter_reduce(amin)`` resolves visibility. The candidates come three ways, all
   tested alike: a depth-map mesh has triangles of about a pixel, most with at most one pixel
   centre in their bounding box (tested in place, one candidate each) and the rest within a
   2×2 block (e.g. vertices exactly on pixel centres, as in a head-on view); larger triangles
   are enumerated along their scanline spans. Candidates are processed in chunks of at most
   ``max_candidates`` so memory stays bounded whatever the triangles' sizes.

   Off the CPU (``fixed_size=None`` on a GPU) the pass is **fixed-size** instead, so a
   training step never waits for the device to report how many candidates there are: every
   triangle is tested against the 2×2 block at its box's corner (masked unless its box is
   that small), and the pixel boxes of the larger ones are laid end to end over a fixed
   number of candidate slots (``slots_per_pixel`` per output pixel) with a cumulative sum and
   ``searchsorted``. Every shape then depends only on the input's shape. Candidates past the
   last slot are dropped and counted in ``RasterOutput.dropped``. Measured on 64×64 depth-map
   meshes (the shipped model's depths, and a new model's dome, seen from up to 90° of yaw and
   11° of pitch), the larger boxes need at most 1.6 slots per pixel; the default is 4.
2. **Interpolation** (differentiable; fixed-size: every pixel is computed and the empty ones
   masked): for each covered pixel, the screen-space barycentrics of the pixel centre in its
   visible triangle are recomputed from the projected vertices, and the depth is interpolated
   perspective-correctly, ``z = 1 / Σ w_k / z_k``. Gradients reach every
   vertex coordinate (x, y through the projection, z directly), hence the depth map and the
   viewpoint. As in other exact (non-soft) rasterizers, visibility changes give no gradient.
"""

from __future__ import annotations

import math
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
_FLAT_EDGE = 1e-12
"""A triangle edge whose rows differ by less than this (pixels) is horizontal."""
_EDGE_SLACK = 1e-6
"""Slack on an edge's parameter range, so rows through a vertex still hit both its edges."""


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
        dropped: (triangle, pixel) candidates the fixed-size visibility pass had no slot for,
            a 0-dim int64 tensor on the device (always 0 for the exact pass). Where it is not
            0 some pixels may be missing; raise ``slots_per_pixel``.
    """

    depth: Tensor
    face_index: Tensor
    barycentric: Tensor
    covered: Tensor
    dropped: Tensor


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
    slanted = dy.abs() > _FLAT_EDGE  # horizontal edges are covered by their neighbours' ends
    t = (v[:, None] - start[..., 1]) / torch.where(slanted, dy, torch.ones_like(dy))
    hits = slanted & (t >= -_EDGE_SLACK) & (t <= 1 + _EDGE_SLACK)
    u = start[..., 0] + t.clamp(0.0, 1.0) * (end[..., 0] - start[..., 0])  # (R, 3)
    inf = torch.full_like(u, float("inf"))
    return torch.where(hits, u, inf).amin(dim=1), torch.where(hits, u, -inf).amax(dim=1)


Vertices = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]
"""A triangle per entry as nine flat columns: (u, v, z) of corner a, then of b, then of c.
Contiguous 1-D columns keep the visibility pass's elementwise arithmetic fast."""


def _vertex_columns(tri_uv: Tensor, tri_z: Tensor) -> Vertices:
    """(T, 3, 2) projected vertices and (T, 3) depths → :data:`Vertices` of (T,) columns."""
    return tuple(  # type: ignore[return-value]
        column.contiguous()
        for k in range(3)
        for column in (tri_uv[:, k, 0], tri_uv[:, k, 1], tri_z[:, k])
    )


def _store_nearest(
    zbuf: Tensor,
    tri: Tensor,
    u: Tensor,
    v: Tensor,
    verts: Vertices,
    meta: tuple,
    *,
    keep: Tensor | None = None,
) -> None:
    """Edge-test candidate pixels and fold the inside ones into the packed z-buffer in place.

    Args:
        zbuf: (B·H·W,) packed keys, updated in place.
        tri: flat triangle index of each candidate, (...).
        u: candidate pixel column, (...), long.
        v: candidate pixel row, (...), long.
        verts: each candidate's triangle, columns broadcastable to (...).
        meta: (F, H, W, near).
        keep: candidates to consider, (...) bool (None: all).
    """
    num_faces, height, width, near = meta
    au, av, az, bu, bv, bz, cu, cv, cz = verts
    pu, pv = u.to(au.dtype), v.to(au.dtype)
    area = (bu - au) * (cv - av) - (bv - av) * (cu - au)  # signed, doubled
    safe = torch.where(area.abs() > MIN_AREA, area, torch.ones_like(area))
    w0 = ((cu - bu) * (pv - bv) - (cv - bv) * (pu - bu)) / safe  # edge (b, c), weight of a
    w1 = ((au - cu) * (pv - cv) - (av - cv) * (pu - cu)) / safe  # edge (c, a), weight of b
    w2 = ((bu - au) * (pv - av) - (bv - av) * (pu - au)) / safe  # edge (a, b), weight of c
    depth = 1.0 / (w0 / az + w1 / bz + w2 / cz)  # (...) perspective-correct z
    inside = torch.minimum(torch.minimum(w0, w1), w2) >= -INSIDE_EPS
    inside &= (area.abs() > MIN_AREA) & (depth > near)
    if keep is not None:
        inside &= keep
    # Masked rather than compacted: outside candidates carry the EMPTY key, which never wins.
    pixel = (tri // num_faces) * (height * width) + v * width + u  # (...)
    key = (depth.float().view(torch.int32).to(torch.int64) << 32) | tri
    key = torch.where(inside, key, EMPTY)
    zbuf.scatter_reduce_(0, pixel.reshape(-1), key.reshape(-1), reduce="amin")


def rasterize_depth(
    vertices: Tensor,
    faces: Tensor,
    intrinsics: Tensor,
    image_size: tuple[int, int],
    *,
    background: float = 100.0,
    near: float = 1e-3,
    max_candidates: int = 4_000_000,
    fixed_size: bool | None = None,
    slots_per_pixel: float = 4.0,
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
        fixed_size: use the fixed-size visibility pass (no host–device synchronisation, see
            the module notes); None picks it everywhere but on the CPU, where the exact pass,
            which sizes its work to the triangles, is faster.
        slots_per_pixel: the fixed-size pass's candidate slots for the triangles that cover
            more than one pixel centre, per output pixel (B·H·W of them).

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
    if fixed_size is None:
        fixed_size = vertices.device.type != "cpu"
    face_index, dropped = _zbuffer(
        tri_uv.detach().reshape(-1, 3, 2),
        tri_z.detach().reshape(-1, 3),
        num_faces,
        (batch, height, width),
        near,
        max_candidates,
        slots_per_pixel=slots_per_pixel if fixed_size else None,
    )  # (B·H·W,) flat triangle index or -1
    return _interpolate(tri_uv, tri_z, face_index, dropped, (batch, height, width), background)


def _pixel_range(low: Tensor, high: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """First and last integer pixel centre within [low, high] along one axis, per triangle.

    Args:
        low: (T,) smallest vertex coordinate (u or v) of each triangle, in pixels.
        high: (T,) largest.
        size: number of pixels along the axis.

    Returns:
        lo, hi (T,) as floats, clipped to the image; lo > hi where no centre lies in range.
    """
    # Clamped on both sides, so that every later conversion to int64 is in range even for
    # huge coordinates; an empty range stays lo > hi.
    lo = torch.ceil(low - 1e-4).clamp(0, size).nan_to_num(0.0)
    hi = torch.floor(high + 1e-4).clamp(-1, size - 1).nan_to_num(-1.0)
    return lo, hi


def _min3(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    return torch.minimum(torch.minimum(a, b), c)


def _max3(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    return torch.maximum(torch.maximum(a, b), c)


def _store_blocks(
    zbuf: Tensor,
    select: Tensor,
    ranges: tuple[Tensor, Tensor, Tensor, Tensor],
    verts: Vertices,
    meta: tuple,
    *,
    max_candidates: int,
) -> None:
    """Fold triangles whose pixel range is at most 2×2 into the z-buffer.

    Triangles with at most one candidate pixel centre (most of a depth-map mesh seen at an
    angle: a triangle spans about a pixel) are tested in place, one candidate each, without
    gathering; the others (a 2×1, 1×2 or 2×2 block, e.g. vertices exactly on pixel centres)
    are gathered and tested against their 4-pixel block.

    Args:
        zbuf: (B·H·W,) packed keys, updated in place.
        select: (T,) bool, the triangles to fold (the others are left to the row pass).
        ranges: u_lo, u_hi, v_lo, v_hi of every triangle, (T,) floats.
        verts: every triangle, (T,) columns.
        meta: (F, H, W, near).
        max_candidates: most (triangle, pixel) pairs tested at once.
    """
    u_lo, u_hi, v_lo, v_hi = ranges
    single = select & (u_hi - u_lo <= 0) & (v_hi - v_lo <= 0)  # (T,) at most one candidate
    for start in range(0, len(select), max_candidates):
        part = slice(start, start + max_candidates)
        u, v = u_lo[part].to(torch.int64), v_lo[part].to(torch.int64)  # (S,)
        keep = single[part] & (u_lo[part] <= u_hi[part]) & (v_lo[part] <= v_hi[part])
        tri = torch.arange(start, start + len(u), device=zbuf.device)
        u, v = u * keep, v * keep  # dropped candidates point at pixel (0, 0), never inside
        part_verts = tuple(column[part] for column in verts)
        _store_nearest(zbuf, tri, u, v, part_verts, meta, keep=keep)  # type: ignore[arg-type]
    for tri in (select & ~single).nonzero().squeeze(1).split(max(1, max_candidates // 4)):
        _store_block(zbuf, tri, None, ranges, verts, meta)


def _store_block(
    zbuf: Tensor,
    tri: Tensor,
    take: Tensor | None,
    ranges: tuple[Tensor, Tensor, Tensor, Tensor],
    verts: Vertices,
    meta: tuple,
) -> None:
    """Test the triangles ``tri`` against the 2×2 pixel block at their box's corner.

    Args:
        zbuf: (B·H·W,) packed keys, updated in place.
        tri: (S,) triangle indices.
        take: (S,) bool, the triangles to keep (None: all); the others are masked.
        ranges: u_lo, u_hi, v_lo, v_hi of every triangle, (T,) floats.
        verts: every triangle, (T,) columns.
        meta: (F, H, W, near).
    """
    u_lo, u_hi, v_lo, v_hi = ranges
    step = torch.arange(4, device=zbuf.device)  # the 2×2 block, (u, v) = (k % 2, k // 2)
    u = u_lo[tri].to(torch.int64)[:, None] + step % 2  # (S, 4)
    v = v_lo[tri].to(torch.int64)[:, None] + step // 2
    keep = (u <= u_hi[tri, None]) & (v <= v_hi[tri, None])  # (S, 4)
    if take is not None:
        keep &= take[:, None]
    u, v = u * keep, v * keep  # masked candidates point at pixel (0, 0), never inside
    block_verts = tuple(column[tri, None] for column in verts)  # (S, 1) each
    _store_nearest(zbuf, tri[:, None].expand_as(u), u, v, block_verts, meta, keep=keep)  # type: ignore[arg-type]


def _store_rows(
    zbuf: Tensor,
    select: Tensor,
    v_range: tuple[Tensor, Tensor],
    tri_uv: Tensor,
    verts: Vertices,
    meta: tuple,
    *,
    max_candidates: int,
) -> None:
    """Fold any triangles into the z-buffer row by row (scanline spans, then pixels).

    Args:
        zbuf: (B·H·W,) packed keys, updated in place.
        select: (T,) bool, the triangles to fold.
        v_range: v_lo, v_hi of every triangle, (T,) floats.
        tri_uv: (T, 3, 2) projected vertices.
        verts: every triangle, (T,) columns.
        meta: (F, H, W, near).
        max_candidates: most (triangle, pixel) pairs tested at once.
    """
    width = meta[2]
    v_lo, v_hi = v_range
    rows = ((v_hi - v_lo + 1).clamp(min=0) * select).to(torch.int64)  # (T,)
    v_lo = v_lo.to(torch.int64)
    for start, stop in _chunks(rows, max_candidates):
        tri, rank = _expand(rows[start:stop], start)  # one entry per (triangle, row)
        v = v_lo[tri] + rank
        u_min, u_max = _row_spans(tri_uv[tri], v.to(tri_uv.dtype))
        row_lo = torch.ceil(u_min - 1e-4).clamp(min=0)
        row_hi = torch.floor(u_max + 1e-4).clamp(max=width - 1)
        cols = (row_hi - row_lo + 1).clamp(min=0).nan_to_num(0.0).to(torch.int64)
        row_lo = row_lo.clamp(max=width).to(torch.int64)
        for first, last in _chunks(cols, max_candidates):
            row, col = _expand(cols[first:last], first)
            pair_tri = tri[row]
            pair_verts = tuple(column[pair_tri] for column in verts)
            _store_nearest(zbuf, pair_tri, row_lo[row] + col, v[row], pair_verts, meta)  # type: ignore[arg-type]


def _store_windows(
    zbuf: Tensor,
    small: Tensor,
    ranges: tuple[Tensor, Tensor, Tensor, Tensor],
    verts: Vertices,
    meta: tuple,
    *,
    max_candidates: int,
) -> None:
    """Test every triangle against the 2×2 pixel block at its box's corner, keeping ``small``.

    The fixed-size counterpart of :func:`_store_blocks`: no triangle is gathered, so the sizes
    depend only on the number of triangles. Pixels outside a box, and triangles not ``small``,
    are masked.

    Args:
        zbuf: (B·H·W,) packed keys, updated in place.
        small: (T,) bool, triangles whose box spans at most 2×2 pixel centres.
        ranges: u_lo, u_hi, v_lo, v_hi of every triangle, (T,) floats.
        verts: every triangle, (T,) columns.
        meta: (F, H, W, near).
        max_candidates: most (triangle, pixel) pairs tested at once.
    """
    per_chunk = max(1, max_candidates // 4)
    for start in range(0, len(small), per_chunk):
        tri = torch.arange(start, min(start + per_chunk, len(small)), device=zbuf.device)
        _store_block(zbuf, tri, small[tri], ranges, verts, meta)


def _store_slots(
    zbuf: Tensor,
    select: Tensor,
    ranges: tuple[Tensor, Tensor, Tensor, Tensor],
    verts: Vertices,
    meta: tuple,
    *,
    slots: int,
    max_candidates: int,
) -> Tensor:
    """Fold the pixel boxes of the ``select``-ed triangles into the z-buffer over fixed slots.

    The boxes are laid end to end (a cumulative sum of their pixel counts) and slot ``s`` is
    given to the triangle whose run holds it (``searchsorted``) and to the pixel at its rank in
    that box, row-major. Slots past the last box are masked, and boxes past the last slot are
    dropped. Every tensor has a size fixed by ``slots`` and the number of triangles, so the
    device never has to report a count to the host.

    Args:
        zbuf: (B·H·W,) packed keys, updated in place.
        select: (T,) bool, the triangles to fold.
        ranges: u_lo, u_hi, v_lo, v_hi of every triangle, (T,) floats.
        verts: every triangle, (T,) columns.
        meta: (F, H, W, near).
        slots: candidate slots in all.
        max_candidates: most slots tested at once.

    Returns:
        The number of candidates dropped, a 0-dim int64 tensor.
    """
    u_lo, u_hi, v_lo, v_hi = ranges
    cols = (u_hi - u_lo + 1).clamp(min=0).to(torch.int64)  # (T,)
    rows = (v_hi - v_lo + 1).clamp(min=0).to(torch.int64)
    count = cols * rows * select  # (T,) pixels in each selected box
    ends = torch.cumsum(count, 0)  # (T,) where each box's run of slots ends
    last = len(count) - 1
    if last < 0:  # no triangles
        return count.new_zeros(())
    for start in range(0, slots, max_candidates):
        slot = torch.arange(start, min(start + max_candidates, slots), device=zbuf.device)
        tri = torch.searchsorted(ends, slot, right=True).clamp(max=last)  # (S,) owner
        rank = slot - (ends[tri] - count[tri])  # (S,) index within the owner's box
        keep = (slot < ends[last]) & (rank >= 0)
        width = cols[tri].clamp(min=1)
        u = (u_lo[tri].to(torch.int64) + rank % width) * keep  # masked slots point at (0, 0)
        v = (v_lo[tri].to(torch.int64) + rank // width) * keep
        slot_verts = tuple(column[tri] for column in verts)
        _store_nearest(zbuf, tri, u, v, slot_verts, meta, keep=keep)  # type: ignore[arg-type]
    return (ends[last] - slots).clamp(min=0)


@torch.no_grad()
def _zbuffer(
    tri_uv: Tensor,
    tri_z: Tensor,
    num_faces: int,
    shape: tuple[int, int, int],
    near: float,
    max_candidates: int,
    *,
    slots_per_pixel: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Visibility pass over triangles flattened across the batch (T = B·F).

    Args:
        tri_uv: (T, 3, 2) projected vertices.
        tri_z: (T, 3) vertex depths.
        num_faces: F, to recover each triangle's batch index.
        shape: (B, H, W).
        near: triangles or pixels closer than this are skipped.
        max_candidates: most (triangle, pixel) pairs tested at once.
        slots_per_pixel: None for the exact pass; otherwise the fixed-size pass, with this
            many candidate slots per output pixel for the triangles with more than one.

    Returns:
        Flat triangle index t = b·F + f of the nearest triangle per pixel, -1 where empty,
        shape (B·H·W,), and the number of candidates dropped (0-dim int64; 0 when exact).
    """
    batch, height, width = shape
    meta = (num_faces, height, width, near)
    verts = _vertex_columns(tri_uv, tri_z)
    au, av, az, bu, bv, bz, cu, cv, cz = verts
    finite = torch.isfinite(au + av + bu + bv + cu + cv)  # a NaN or ±inf anywhere spreads
    valid = (_min3(az, bz, cz) > near) & finite  # (T,)
    u_lo, u_hi = _pixel_range(_min3(au, bu, cu), _max3(au, bu, cu), width)  # (T,) each
    v_lo, v_hi = _pixel_range(_min3(av, bv, cv), _max3(av, bv, cv), height)
    zbuf = torch.full((batch * height * width,), EMPTY, dtype=torch.int64, device=tri_uv.device)
    if slots_per_pixel is not None:
        small = valid & (u_hi - u_lo <= 1) & (v_hi - v_lo <= 1)
        ranges = (u_lo, u_hi, v_lo, v_hi)
        _store_windows(zbuf, small, ranges, verts, meta, max_candidates=max_candidates)
        slots = math.ceil(slots_per_pixel * batch * height * width)
        dropped = _store_slots(zbuf, valid & ~small, ranges, verts, meta, slots=slots,
                               max_candidates=max_candidates)  # fmt: skip
        return _unpack(zbuf), dropped
    # Small triangles (the common case for a depth-map mesh: about a pixel each) have all their
    # candidate pixel centres in a 2×2 block: test them directly, with no enumeration. The
    # others (stretched by the view, or large meshes) go row by row.
    small = valid & (u_hi - u_lo <= 1) & (v_hi - v_lo <= 1)
    _store_blocks(zbuf, small, (u_lo, u_hi, v_lo, v_hi), verts, meta, max_candidates=max_candidates)
    _store_rows(
        zbuf, valid & ~small, (v_lo, v_hi), tri_uv, verts, meta, max_candidates=max_candidates
    )
    return _unpack(zbuf), torch.zeros((), dtype=torch.int64, device=zbuf.device)


def _unpack(zbuf: Tensor) -> Tensor:
    """Packed z-buffer keys → flat triangle index, -1 where empty."""
    return torch.where(zbuf == EMPTY, torch.full_like(zbuf, -1), zbuf & 0xFFFFFFFF)


def _interpolate(
    tri_uv: Tensor,
    tri_z: Tensor,
    face_index: Tensor,
    dropped: Tensor,
    shape: tuple[int, int, int],
    background: float,
) -> RasterOutput:
    """Differentiable pass: perspective-correct depth and barycentrics of the visible triangles.

    Every pixel is computed, covered or not (a fixed-size pass: no ``nonzero``, so no wait for
    the device to report how many pixels are covered). Empty pixels are given a unit triangle
    at depth 1 *before* the arithmetic, so that nothing infinite is formed there, and their
    results are then replaced by the background: their gradient is exactly zero.

    Args:
        tri_uv: (B, F, 3, 2) projected vertices.
        tri_z: (B, F, 3) vertex depths.
        face_index: (B·H·W,) flat visible triangle index or -1.
        dropped: the visibility pass's dropped candidates, passed through.
        shape: (B, H, W).
        background: depth of empty pixels.
    """
    batch, height, width = shape
    num_faces = tri_uv.shape[1]
    covered = face_index >= 0  # (B·H·W,)
    visible = face_index.clamp(min=0)  # (B·H·W,) any triangle where empty; replaced below
    # (3, 2) corners (0, 0), (1, 0), (0, 1): area 1. Made on the device (a tensor from a
    # Python list would be a blocking host-to-device copy).
    unit_uv = torch.eye(3, 2, dtype=tri_uv.dtype, device=tri_uv.device).roll(1, dims=0)
    uv = torch.where(covered[:, None, None], tri_uv.reshape(-1, 3, 2)[visible], unit_uv)
    z = torch.where(covered[:, None], tri_z.reshape(-1, 3)[visible], 1.0)  # (B·H·W, 3)
    within = torch.arange(height * width, device=face_index.device).repeat(batch)
    px = torch.stack([within % width, within // width], dim=-1).to(uv.dtype)  # (B·H·W, 2)
    weights, _ = _edge_weights(uv, px)  # (B·H·W, 3) screen-space
    inv_depth = (weights / z).sum(dim=-1, keepdim=True)  # (B·H·W, 1); 1 where empty
    bary = torch.where(covered[:, None], weights / z / inv_depth, 0.0)  # perspective-correct
    depth = torch.where(covered[:, None], 1.0 / inv_depth, background)  # (B·H·W, 1)
    local_face = torch.where(covered, face_index % num_faces, face_index)
    return RasterOutput(
        depth=depth.reshape(batch, 1, height, width),
        face_index=local_face.reshape(batch, height, width),
        barycentric=bary.reshape(batch, height, width, 3),
        covered=covered.reshape(batch, 1, height, width),
        dropped=dropped,
    )
