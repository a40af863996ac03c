"""What a candidate predicts for a batch, and the model's predictors (with or without refinement).

A model's compared depth is ``Reconstruction.view_depth[:B]``, the canonical depth rendered
into the input view by the predicted viewpoint, with ``view_mask[:B]`` as its validity mask.
Without refinement only the depth and viewpoint networks run
(:meth:`~unsup3d_cli.model.Unsup3D.predict_view_depth`), since nothing else enters the metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from unsup3d_cli.geometry import euler_to_rotation
from unsup3d_cli.model import Decomposition, Unsup3D


@dataclass(frozen=True)
class Prediction:
    """What a candidate predicts for a batch of B images.

    Attributes:
        view_depth: depth in the input view, (B, 1, H, W).
        view_mask: 1 where ``view_depth`` is valid, (B, 1, H, W).
        rotation: predicted viewpoint rotation, (B, 3, 3), or None.
        photometric_before: per-image photometric error before refinement, (B,), or None.
        photometric_after: the same after refinement, (B,), or None.
    """

    view_depth: Tensor
    view_mask: Tensor
    rotation: Tensor | None = None
    photometric_before: Tensor | None = None
    photometric_after: Tensor | None = None


Predictor = Callable[[Tensor], Prediction]
"""Images (B, 3, H, W) in [0, 1] → :class:`Prediction`."""


@torch.no_grad()
def predict_view_depth(model: Unsup3D, image: Tensor) -> Prediction:
    """The model's input-view depth, without the networks the metrics do not use.

    The same tensors as ``model.reconstruct(model(image)).view_depth[:B]`` and
    ``view_mask[:B]`` (rendering is per image, so the mirrored half changes nothing), at a
    fraction of the cost (:meth:`Unsup3D.predict_view_depth`).

    Args:
        model: the model, in eval mode.
        image: shape (B, 3, 64, 64), in [0, 1].

    Returns:
        The :class:`Prediction` (depth, mask and viewpoint rotation).
    """
    view_depth, view_mask, rotation = model.predict_view_depth(image)
    return Prediction(view_depth, view_mask, rotation)


def refined_prediction(model: Unsup3D, image: Tensor, steps: int) -> Prediction:
    """Prediction after ``steps`` of test-time refinement (``unsup3d_cli.refine.refine``).

    Raises:
        ValueError: if ``unsup3d_cli.refine`` is not available.
    """
    try:
        from unsup3d_cli.refine import refine  # noqa: PLC0415 (only when refinement is asked for)
    except ImportError as err:
        raise ValueError(f"refine_steps={steps} needs unsup3d_cli.refine ({err})") from err
    with torch.no_grad():
        decomp: Decomposition = model(image)
    with torch.enable_grad():
        decomp, before, after = refine(model, image, decomp.detach(), steps)
    with torch.no_grad():
        recon = model.reconstruct(decomp)
    depth, _ = recon.split(recon.view_depth)
    mask, _ = recon.split(recon.view_mask)
    rotation = euler_to_rotation(decomp.view_angles)
    return Prediction(depth, mask, rotation, before.detach(), after.detach())


def model_predictor(model: Unsup3D, refine_steps: int = 0) -> Predictor:
    """A :data:`Predictor` running ``model`` (with refinement when ``refine_steps`` > 0)."""
    if refine_steps > 0:
        return lambda image: refined_prediction(model, image, refine_steps)
    return lambda image: predict_view_depth(model, image)
