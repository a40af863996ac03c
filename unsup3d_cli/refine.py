"""Test-time refinement: fit the viewpoint and light of one prediction to its own image.

Starting from the network's :class:`Decomposition`, render-and-compare optimises, per image,
the 6 raw viewpoint parameters and the 4 raw light parameters (and, with ``residuals``, small
depth and albedo residual maps) on the photometric error of both reconstructions, as NeMo and
"To The Point" do at inference time. The raw parameters are the networks' tanh outputs, so a
refined view or light stays inside the model's ranges. The model's weights are not touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from unsup3d_cli.checks import check_shape
from unsup3d_cli.model import Decomposition, Reconstruction, Unsup3D
from unsup3d_cli.model.decomposition import decode_light, decode_view, fill_border

DEPTH_RESIDUAL_FRACTION = 0.1
"""Largest depth residual, as a fraction of the model's depth range (max − min)."""
ALBEDO_RESIDUAL = 0.1
"""Largest albedo residual, in [0, 1] intensity units."""
_ATANH_LIMIT = 1 - 1e-4


def photometric_error(image: Tensor, recon: Reconstruction) -> Tensor:
    """Per-image mean absolute error of both reconstructions over the joint mask.

    The error of the un-flipped and of the mirrored reconstruction, each averaged over the
    channels and the pixels valid in both (``recon.mask``), in [0, 1] intensity units, then
    averaged over the two branches. No confidence weighting.

    Args:
        image: input images (B, 3, H, W) in [0, 1].
        recon: their reconstruction, 2B-batched.

    Returns:
        Shape (B,).
    """
    check_shape(image, "B 3 H W", "image")
    original, mirrored = Reconstruction.split(recon.image)  # (B, 3, H, W) each
    weight = recon.mask  # (B, 1, H, W)
    pixels = weight.sum(dim=(1, 2, 3)).clamp(min=1.0)  # (B,)

    def branch(rendered: Tensor) -> Tensor:
        diff = (rendered - image).abs().mean(dim=1, keepdim=True)  # (B, 1, H, W)
        return (diff * weight).sum(dim=(1, 2, 3)) / pixels  # (B,)

    return (branch(original) + branch(mirrored)) / 2


def _atanh(x: Tensor) -> Tensor:
    return torch.atanh(x.clamp(-_ATANH_LIMIT, _ATANH_LIMIT))


def _unscale(value: Tensor, low: float, high: float) -> Tensor:
    """Inverse of the decoders' linear map of (−1, 1) onto (low, high)."""
    if high <= low:
        return torch.zeros_like(value)
    return (2 * value - (high + low)) / (high - low)


@dataclass(frozen=True)
class _Start:
    """The prediction being refined and the model settings that decode parameters."""

    decomp: Decomposition
    model: Unsup3D


class _Parameters(torch.nn.Module):
    """Unconstrained per-image variables whose tanh are the raw view/light outputs."""

    def __init__(self, start: _Start, residuals: bool) -> None:
        super().__init__()
        cfg, decomp = start.model.cfg, start.decomp
        xy, z = cfg.xy_translation_range, cfg.z_translation_range
        columns = [
            decomp.view_angles / math.radians(cfg.rotation_range_deg),
            decomp.view_translation[:, :2] / xy if xy > 0 else decomp.view_translation[:, :2],
            decomp.view_translation[:, 2:] / z if z > 0 else decomp.view_translation[:, 2:],
        ]
        if decomp.view_scale is not None and cfg.scale_range > 0:
            columns.append(decomp.view_scale.log()[:, None] / math.log1p(cfg.scale_range))
        raw_view = torch.cat(columns, dim=1)  # (B, 6), or (B, 7) with a scale
        self.view = torch.nn.Parameter(_atanh(raw_view))
        self.light = None
        if start.model.light_net is not None:
            direction = decomp.light_direction  # (B, 3), z > 0
            raw_light = torch.stack(
                [
                    _unscale(decomp.ambient, cfg.min_ambient, cfg.max_ambient),
                    _unscale(decomp.diffuse, cfg.min_diffuse, cfg.max_diffuse),
                    direction[:, 0] / direction[:, 2],
                    direction[:, 1] / direction[:, 2],
                ],
                dim=1,
            )  # (B, 4)
            self.light = torch.nn.Parameter(_atanh(raw_light))
        self.depth = self.albedo = None
        if residuals:
            self.depth = torch.nn.Parameter(torch.zeros_like(decomp.depth_unbordered))
            self.albedo = torch.nn.Parameter(torch.zeros_like(decomp.albedo))

    def decomposition(self, start: _Start) -> Decomposition:
        """The prediction with the current view, light and residuals."""
        cfg, decomp = start.model.cfg, start.decomp
        angles, translation, scale = decode_view(
            torch.tanh(self.view), cfg.rotation_range_deg, cfg.xy_translation_range,
            cfg.z_translation_range, cfg.scale_range,
        )  # fmt: skip
        changes: dict[str, Tensor] = {"view_angles": angles, "view_translation": translation}
        if scale is not None:
            changes["view_scale"] = scale
        if self.light is not None:
            ambient, diffuse, direction = decode_light(
                torch.tanh(self.light), (cfg.min_ambient, cfg.max_ambient),
                (cfg.min_diffuse, cfg.max_diffuse),
            )  # fmt: skip
            changes.update(ambient=ambient, diffuse=diffuse, light_direction=direction)
        if self.depth is not None and self.albedo is not None:
            scale = DEPTH_RESIDUAL_FRACTION * (cfg.max_depth - cfg.min_depth)
            depth = decomp.depth_unbordered + scale * torch.tanh(self.depth)
            depth = depth.clamp(cfg.min_depth, cfg.max_depth)  # (B, 1, H, W)
            albedo = decomp.albedo + ALBEDO_RESIDUAL * torch.tanh(self.albedo)
            changes.update(
                depth=fill_border(depth, start.model.border_depth),
                depth_unbordered=depth,
                albedo=albedo.clamp(0.0, 1.0),
            )
        return replace(decomp, **changes)


def _select(better: Tensor, new: Decomposition, old: Decomposition) -> Decomposition:
    """Per image, ``new``'s tensors where ``better`` (B,) is set and ``old``'s elsewhere."""
    changes = {}
    for name in ("depth", "depth_unbordered", "albedo", "ambient", "diffuse",
                 "light_direction", "view_angles", "view_translation", "view_scale"):  # fmt: skip
        if getattr(old, name) is None:
            continue
        a, b = getattr(new, name).detach(), getattr(old, name)
        keep = better.view(-1, *([1] * (a.dim() - 1)))
        changes[name] = torch.where(keep, a, b)
    return replace(old, **changes)


def refine(
    model: Unsup3D,
    image: Tensor,
    decomp: Decomposition,
    steps: int,
    lr: float = 0.05,
    residuals: bool = False,
) -> tuple[Decomposition, Tensor, Tensor]:
    """Refine a prediction by render-and-compare on the photometric error.

    Adam optimises, per image, the raw viewpoint (6) and light (4) parameters, and with
    ``residuals`` a depth residual (at most 10% of the depth range) and an albedo residual (at
    most 0.1), to lower :func:`photometric_error` of both branches. Each image keeps its best
    iterate, so its error never goes up. Works inside ``torch.inference_mode`` too.

    Args:
        model: the trained model (its weights are not changed).
        image: the input images (B, 3, H, W) in [0, 1].
        decomp: the model's prediction for ``image``.
        steps: optimisation steps (0 returns the prediction and its error twice).
        lr: Adam learning rate on the unconstrained parameters.
        residuals: also optimise the depth and albedo residuals.

    Returns:
        The refined decomposition (detached), and the per-image photometric error (B,) before
        and after.
    """
    check_shape(image, "B 3 H W", "image")
    if steps < 0:
        raise ValueError(f"refine steps must be >= 0, got {steps}")
    with torch.inference_mode(False), torch.enable_grad():
        image = image.detach().clone()
        start = _Start(_clone(decomp), model)
        params = _Parameters(start, residuals)
        optimizer = torch.optim.Adam(params.parameters(), lr=lr)
        best = start.decomp
        before = best_error = None
        for step in range(steps + 1):
            current = params.decomposition(start)
            error = photometric_error(image, model.reconstruct(current))  # (B,)
            if before is None:
                before, best_error = error.detach(), error.detach()
            better = error.detach() < best_error
            best = _select(better, current, best)
            best_error = torch.minimum(best_error, error.detach())
            if step == steps:
                break
            optimizer.zero_grad(set_to_none=True)
            error.sum().backward()
            optimizer.step()
    return best.detach(), before, best_error


def _clone(decomp: Decomposition) -> Decomposition:
    """A detached copy usable with autograd (inference-mode tensors cannot be saved)."""
    return decomp.detach().to(copy=True)
