"""What the model predicts, what rendering makes of it, and the raw-output decoders."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from unsup3d_cli.checks import check_shape


def _map_tensors(obj, fn):
    changes = {f.name: fn(getattr(obj, f.name)) for f in fields(obj)}
    return replace(obj, **{k: v for k, v in changes.items() if isinstance(v, Tensor)})


class _TensorFields:
    def detach(self):
        """A copy with every tensor detached."""
        return _map_tensors(self, lambda t: t.detach() if isinstance(t, Tensor) else t)

    def to(self, *args, **kwargs):
        """A copy with every tensor moved/cast like ``Tensor.to``."""
        return _map_tensors(self, lambda t: t.to(*args, **kwargs) if isinstance(t, Tensor) else t)


@dataclass(frozen=True)
class Decomposition(_TensorFields):
    """The factors the model predicts for a batch of B images.

    Attributes:
        depth: canonical depth after the border fill, (B, 1, H, W), world units.
        depth_unbordered: canonical depth before the border fill, (B, 1, H, W).
        albedo: canonical albedo, (B, 3, H, W), in [0, 1].
        ambient: ambient light ka, (B,).
        diffuse: diffuse light kd, (B,).
        light_direction: unit vector towards the light, (B, 3).
        view_angles: rotation (rx, ry, rz) in radians, (B, 3).
        view_translation: translation (tx, ty, tz), (B, 3).
        view_scale: the object's size in the view relative to the canonical frame, about the
            rotation pivot, (B,); None when the model does not predict it (a size of 1).
        confidence: σ maps for the photometric loss, (B, 2, H, W), or None.
        perceptual_confidence: σ maps for the perceptual loss, (B, 2, H/4, W/4), or None.
    """

    depth: Tensor
    depth_unbordered: Tensor
    albedo: Tensor
    ambient: Tensor
    diffuse: Tensor
    light_direction: Tensor
    view_angles: Tensor
    view_translation: Tensor
    view_scale: Tensor | None = None
    confidence: Tensor | None = None
    perceptual_confidence: Tensor | None = None


@dataclass(frozen=True)
class Reconstruction(_TensorFields):
    """Both reconstructions of a batch, from the canonical frame and from its mirror image.

    Rows [0, B) come from the canonical frame and [B, 2B) from its mirror image; use
    :meth:`split` to get the two halves. ``Unsup3D.reconstruct(decomp, mirror=False)`` makes
    only the first half (every tensor B-batched, ``mask`` = ``view_mask``).

    Attributes:
        canonical_depth: (2B, 1, H, W). canonical_albedo: (2B, 3, H, W) in [0, 1].
        canonical_normal: (2B, H, W, 3). shading: (2B, 1, H, W).
        canonical_image: albedo × shading, (2B, 3, H, W) (not clamped).
        view_depth: canonical depth rendered in the input view and clamped, (2B, 1, H, W).
        view_mask: 1 where ``view_depth`` is valid, (2B, 1, H, W).
        mask: joint mask, valid in both branches, detached, (B, 1, H, W).
        image: reconstructed input, ``mask``-ed (0.5 where invalid), (2B, 3, H, W).
        grid: where each input-view pixel samples the canonical frame, in grid_sample's
            normalised coordinates, (2B, H, W, 2); None when not kept.
        raster_dropped: candidates the rasterizer's fixed-size pass dropped while warping the
            depth into the view (``RasterOutput.dropped``), 0-dim int64; None when not kept.
    """

    canonical_depth: Tensor
    canonical_albedo: Tensor
    canonical_normal: Tensor
    shading: Tensor
    canonical_image: Tensor
    view_depth: Tensor
    view_mask: Tensor
    mask: Tensor
    image: Tensor
    grid: Tensor | None = None
    raster_dropped: Tensor | None = None

    @staticmethod
    def split(x: Tensor) -> tuple[Tensor, Tensor]:
        """(un-flipped half, flipped half) of a 2B-batched tensor."""
        half = x.shape[0] // 2
        return x[:half], x[half:]


DEPTH_CENTRINGS = ("mean", "none")
"""Values of ``ModelConfig.depth_centring`` (see :func:`decode_depth`)."""


def decode_depth(
    raw: Tensor,
    min_depth: float,
    max_depth: float,
    centring: str = "mean",
    rest: float | None = None,
) -> Tensor:
    """Raw depth-network output → canonical depth in (min_depth, max_depth).

    With ``centring="mean"`` (the paper's) subtracts the per-image spatial mean, so the image's
    mean depth sits near the middle of the range; with "none" the raw output is used as it is.
    Then squashes with tanh and rescales (reference §2.2). With ``rest`` a constant is added
    before the tanh so that a raw 0 decodes to ``rest`` instead of the middle of the range.

    Args:
        raw: shape (B, 1, H, W).
        min_depth: lower end of the depth range.
        max_depth: upper end of the depth range.
        centring: 'mean' or 'none'.
        rest: depth of a raw 0, strictly inside the range (None: the middle, the paper's).

    Returns:
        Depth, shape (B, 1, H, W).
    """
    check_shape(raw, "B 1 H W", "raw depth")
    if centring not in DEPTH_CENTRINGS:
        raise ValueError(f"depth centring must be one of {DEPTH_CENTRINGS}, got {centring!r}")
    centred = raw - raw.mean(dim=(2, 3), keepdim=True) if centring == "mean" else raw
    if rest is not None:
        centred = centred + depth_to_raw(rest, min_depth, max_depth)
    squashed = torch.tanh(centred)
    return (1 + squashed) / 2 * max_depth + (1 - squashed) / 2 * min_depth


def depth_to_raw(depth: float, min_depth: float, max_depth: float) -> float:
    """The pre-tanh value that :func:`decode_depth` maps to ``depth`` (no centring, no rest).

    ``depth`` must lie strictly inside (min_depth, max_depth).
    """
    if not min_depth < depth < max_depth:
        raise ValueError(f"depth {depth} is not inside the range ({min_depth}, {max_depth})")
    return math.atanh((2 * depth - min_depth - max_depth) / (max_depth - min_depth))


def fill_border(depth: Tensor, border_depth: float, columns: int = 2) -> Tensor:
    """Set the ``columns`` leftmost and rightmost columns to ``border_depth`` (not in place).

    Args:
        depth: shape (B, 1, H, W).
        border_depth: the value written.
        columns: how many columns on each side.

    Returns:
        Shape (B, 1, H, W).
    """
    width = depth.shape[-1]
    col = torch.arange(width, device=depth.device)
    border = (col < columns) | (col >= width - columns)  # (W,)
    return depth.masked_fill(border, border_depth)


def _scale(unit: Tensor, low: float, high: float) -> Tensor:
    """Map a tanh output in (−1, 1) linearly onto (low, high)."""
    return (1 + unit) / 2 * high + (1 - unit) / 2 * low


def decode_light(
    raw: Tensor, ambient_range: tuple[float, float], diffuse_range: tuple[float, float]
) -> tuple[Tensor, Tensor, Tensor]:
    """Raw light-network output (B, 4) in (−1, 1) → ambient (B,), diffuse (B,), direction (B, 3).

    The direction is ``normalize(o2, o3, 1)``: at most ≈ 54.7° off the optical axis.
    """
    check_shape(raw, "B 4", "raw light")
    ambient = _scale(raw[:, 0], *ambient_range)
    diffuse = _scale(raw[:, 1], *diffuse_range)
    direction = torch.cat([raw[:, 2:4], torch.ones_like(raw[:, :1])], dim=1)  # (B, 3)
    return ambient, diffuse, direction / direction.norm(dim=1, keepdim=True)


def decode_view(
    raw: Tensor,
    rotation_range_deg: float,
    xy_range: float,
    z_range: float,
    scale_range: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Raw viewpoint-network output in (−1, 1) → angles (B, 3) rad, translation (B, 3), scale.

    ``raw`` is (B, 6), or (B, 7) with ``scale_range`` > 0: its last column o gives the scale
    ``(1 + scale_range) ** o`` (B,), symmetric in log-size. Without it the scale is None.
    """
    check_shape(raw, "B 7" if scale_range > 0 else "B 6", "raw view")
    angles = raw[:, :3] * math.radians(rotation_range_deg)
    translation = torch.cat([raw[:, 3:5] * xy_range, raw[:, 5:6] * z_range], dim=1)  # (B, 3)
    scale = None
    if scale_range > 0:
        scale = torch.exp(raw[:, 6] * math.log1p(scale_range))  # (B,)
    return angles, translation, scale
