"""Depth, normal and viewpoint metrics of the paper's BFM protocol (reference §7.1), pure functions.

Every function takes tensors and returns tensors, one value per image; nothing here reads or
writes files. :func:`depth_metrics` runs the whole protocol on a batch.

The protocol, step by step, and where we choose:

1. **GT mask**: ``[d_gt < max(d_gt)]`` with the maximum taken over the *whole batch tensor* (the
   original's ``depth_gt.max()``), i.e. every pixel except the pure background value, then
   eroded by one pixel (:func:`erode`). In the synface encoding the background is exactly 1.1
   (PNG value 0), so in practice this is ``[d_gt < 1.1]``; a batch in which no image shows any
   background would lose its farthest pixels, as in the original.
2. **Erosion**: 3×3 average pool, stride 1, *zero* padding 1 (``count_include_pad``), kept where
   the mean is > 0.99, so a pixel survives only when all nine neighbours are in the mask. The
   zero padding also strips the image's outer one-pixel ring.
3. **Prediction mask**: the validity mask of the *un-flipped* reconstruction,
   ``Reconstruction.view_mask[:B]`` (not the joint mask of both branches), eroded the same way.
4. **Compared depth**: the predicted canonical depth rendered into the input view,
   ``Reconstruction.view_depth[:B]`` (clamped to [0.8, 1.2]), against ``d_gt``.
5. **SIDE** (:func:`side`): natural log, population standard deviation of the log ratio inside
   the mask (Eigen et al.'s scale-invariant error). *EPS note*: the original adds no epsilon,
   neither inside the log (depths are ≥ 0.8 after the clamp and ≥ 0.9 in the GT encoding) nor
   in the division by the mask size; we keep both exact. An image whose mask is empty therefore
   scores NaN, as in the original, and the caller decides what to do with it
   (``evaluate`` leaves such images out and counts them).
6. **MAD** twice. :func:`mad_deg` uses true unit normals and measures the angle with Kahan's
   formula ``2 · atan2(‖a − b‖, ‖a + b‖)``: equal to ``arccos(a · b)`` for unit vectors, but
   well conditioned everywhere, so identical depth maps score exactly 0 (float32 ``arccos`` of
   a dot product one rounding step below 1 already reads ≈ 0.02°). :func:`mad_deg_paper`
   reproduces the original as coded: normals divided by ``‖n‖ + 1e-7``
   (``points_to_normals(paper_eps=True)``) and ``arccos(clamp(n_pred · n_gt, −1, 1))``. At
   64×64 with the 10° camera ``k = ‖n‖ ≈ 4 d² / f² ≈ 3.1e-5`` at depth 1, so those normals
   are ≈ 0.3% short and two identical depth maps already score ``arccos((k / (k + 1e-7))²) ≈
   6.5°`` on a fronto-parallel plane at depth 1 (less on slanted surfaces, where ``‖n‖`` grows
   as 1 / cos(slant): ≈ 5.9° measured on faces). The paper's MAD figures include that floor;
   ``mad_deg`` does not.
   Normals of both maps come from the same K-aware central-difference routine
   (:func:`depth_normals`); the GT normals from ``d_gt`` as loaded (after the crop and
   bilinear resize).
7. Also, as in the original and not in the paper: masked MAE and MSE of the depth.

Viewpoint error follows NeMo (Wang et al., ICLR 2021): the geodesic distance
``Δ(R1, R2) = ‖log(R1ᵀ R2)‖_F / √2``, which is the rotation angle of ``R1ᵀ R2`` in [0, π]
(:func:`geodesic_error`); its median in degrees and the accuracies at π/6 and π/18 (share of
images with an error strictly below the threshold) are in :func:`viewpoint_summary`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from unsup3d_cli.checks import check_shape
from unsup3d_cli.render import Renderer

EROSION_THRESHOLD = 0.99
"""A pixel survives erosion when the zero-padded 3×3 mean of the mask exceeds this."""
ACCURACY_THRESHOLDS_RAD = {"acc_pi_6": math.pi / 6, "acc_pi_18": math.pi / 18}
"""NeMo's viewpoint accuracy thresholds, by the key they are reported under."""


def erode(mask: Tensor) -> Tensor:
    """Erode a binary mask by one pixel, as the original does.

    3×3 average pool with stride 1 and zero padding 1, then ``> 0.99``: a pixel stays only if
    it and its eight neighbours are all set; the image's outer ring is always removed.

    Args:
        mask: shape (B, 1, H, W), values in {0, 1}.

    Returns:
        The eroded mask, shape (B, 1, H, W), same dtype as ``mask`` (float for bool input).
    """
    check_shape(mask, "B 1 H W", "mask")
    values = mask.float() if mask.dtype == torch.bool else mask
    pooled = F.avg_pool2d(values, 3, stride=1, padding=1, count_include_pad=True)
    return (pooled > EROSION_THRESHOLD).to(values.dtype)


def gt_mask(gt_depth: Tensor) -> Tensor:
    """Ground-truth mask: ``[d_gt < max over the whole batch]``, eroded by one pixel.

    Args:
        gt_depth: ground-truth depth, shape (B, 1, H, W).

    Returns:
        Mask of shape (B, 1, H, W), float in {0, 1}, same dtype as ``gt_depth``.
    """
    check_shape(gt_depth, "B 1 H W", "gt_depth")
    return erode((gt_depth < gt_depth.max()).to(gt_depth.dtype))


def prediction_mask(view_mask: Tensor) -> Tensor:
    """Prediction mask: the un-flipped branch's validity mask ``view_mask[:B]``, eroded.

    Args:
        view_mask: 1 where the rendered input-view depth is valid, shape (B, 1, H, W).

    Returns:
        Mask of shape (B, 1, H, W).
    """
    return erode(view_mask)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Σ values·mask / Σ mask per image (no epsilon: an empty mask gives NaN); (B, ...) → (B,)."""
    return (values * mask).flatten(1).sum(1) / mask.flatten(1).sum(1)


def side(pred_depth: Tensor, gt_depth: Tensor, mask: Tensor) -> Tensor:
    """Scale-invariant depth error per image (natural log; population std inside the mask).

    ``δ = ln d_pred − ln d_gt``, ``SIDE = sqrt(Σ (δ − δ̄)² m / Σ m)`` with ``δ̄ = Σ δ m / Σ m``.
    Zero when ``d_pred = c · d_gt`` for any c > 0. No epsilon anywhere (see the module notes):
    an empty mask gives NaN.

    Args:
        pred_depth: predicted depth, shape (B, 1, H, W), > 0.
        gt_depth: ground-truth depth, shape (B, 1, H, W), > 0.
        mask: pixels to score, shape (B, 1, H, W), in {0, 1}.

    Returns:
        SIDE per image, shape (B,), in log units (the paper's tables show it ×10⁻²).
    """
    check_shape(pred_depth, "B 1 H W", "pred_depth")
    check_shape(gt_depth, "B 1 H W", "gt_depth")
    check_shape(mask, "B 1 H W", "mask")
    delta = pred_depth.log() - gt_depth.log()  # (B, 1, H, W)
    mean = _masked_mean(delta, mask)  # (B,)
    centred = delta - mean.view(-1, 1, 1, 1)  # (B, 1, H, W)
    return _masked_mean(centred.square(), mask).sqrt()


def _check_normals(n_pred: Tensor, n_gt: Tensor, mask: Tensor) -> None:
    check_shape(n_pred, "B H W 3", "n_pred")
    check_shape(n_gt, "B H W 3", "n_gt")
    check_shape(mask, "B 1 H W", "mask")
    if n_pred.shape != n_gt.shape or mask.shape[-2:] != n_pred.shape[1:3]:
        raise ValueError(
            f"normals and mask disagree: n_pred {tuple(n_pred.shape)}, n_gt "
            f"{tuple(n_gt.shape)}, mask {tuple(mask.shape)}"
        )


def mad_deg(n_pred: Tensor, n_gt: Tensor, mask: Tensor) -> Tensor:
    """Mean angular deviation of unit normals inside the mask, in degrees, per image.

    The angle is ``2 · atan2(‖a − b‖, ‖a + b‖)`` (Kahan; equals ``arccos(a · b)`` for unit
    vectors, without its loss of precision near 0° and 180°). Identical normals give exactly
    0, orthogonal ones 90.

    Args:
        n_pred: predicted normals, shape (B, H, W, 3), unit length.
        n_gt: ground-truth normals, shape (B, H, W, 3), unit length.
        mask: pixels to score, shape (B, 1, H, W).

    Returns:
        MAD per image, shape (B,), degrees; NaN for an empty mask.
    """
    _check_normals(n_pred, n_gt, mask)
    apart = (n_pred - n_gt).square().sum(-1).sqrt()  # (B, H, W)
    together = (n_pred + n_gt).square().sum(-1).sqrt()  # (B, H, W)
    angle = torch.rad2deg(2 * torch.atan2(apart, together))  # (B, H, W)
    return _masked_mean(angle, mask[:, 0])


def mad_deg_paper(n_pred: Tensor, n_gt: Tensor, mask: Tensor) -> Tensor:
    """The original's MAD as coded: ``arccos(clamp(n_pred · n_gt, −1, 1))`` in degrees.

    Pass normals made with ``paper_eps=True`` (divided by ``‖n‖ + 1e-7``) to reproduce the
    paper's numbers, floor included (≈ 6° for identical 64×64 depth maps; module notes).

    Args:
        n_pred: predicted normals, shape (B, H, W, 3).
        n_gt: ground-truth normals, shape (B, H, W, 3).
        mask: pixels to score, shape (B, 1, H, W).

    Returns:
        MAD per image, shape (B,), degrees; NaN for an empty mask.
    """
    _check_normals(n_pred, n_gt, mask)
    dot = (n_pred * n_gt).sum(-1).clamp(-1.0, 1.0)  # (B, H, W)
    return _masked_mean(torch.rad2deg(torch.acos(dot)), mask[:, 0])


@dataclass(frozen=True)
class DepthScores:
    """Per-image scores of one batch under the §7.1 protocol.

    Attributes:
        side: scale-invariant depth error, (B,), log units.
        mad_deg: MAD of unit normals, (B,), degrees.
        mad_deg_paper: MAD of the original's ``n / (‖n‖ + 1e-7)`` normals, (B,), degrees.
        mae: masked mean absolute depth error, (B,), world units.
        mse: masked mean squared depth error, (B,), world units².
        mask_pixels: number of scored pixels, (B,); 0 means every score is NaN.
        mask: the scored pixels (GT mask × prediction mask), (B, 1, H, W).
    """

    side: Tensor
    mad_deg: Tensor
    mad_deg_paper: Tensor
    mae: Tensor
    mse: Tensor
    mask_pixels: Tensor
    mask: Tensor


def depth_normals(depth: Tensor, renderer: Renderer) -> tuple[Tensor, Tensor]:
    """Unit normals and the original's ``n / (‖n‖ + 1e-7)`` normals of a depth map, in one pass.

    ``renderer.normals(depth, paper_eps=True)`` gives the original's normals; normalising them
    again gives the unit normals of ``paper_eps=False`` (same direction; ring (0, 0, 1) kept)
    without a second cross product.

    Args:
        depth: shape (B, 1, H, W).
        renderer: supplies the camera.

    Returns:
        (unit normals, paper normals), each of shape (B, H, W, 3).
    """
    paper = renderer.normals(depth, paper_eps=True)  # (B, H, W, 3)
    return F.normalize(paper, dim=-1, eps=1e-20), paper


def depth_metrics(
    pred_depth: Tensor,
    pred_valid: Tensor,
    gt_depth: Tensor,
    renderer: Renderer,
    gt_normals: tuple[Tensor, Tensor] | None = None,
) -> DepthScores:
    """Score input-view depth predictions against ground truth, exactly as reference §7.1.

    Args:
        pred_depth: predicted depth in the input view (``view_depth[:B]``), (B, 1, H, W).
        pred_valid: its validity mask (``view_mask[:B]``), (B, 1, H, W), in {0, 1}.
        gt_depth: ground-truth depth in the input view, (B, 1, H, W); background at its max.
        renderer: supplies the camera for the normals of both maps.
        gt_normals: ``depth_normals(gt_depth, renderer)`` if already computed (it is the
            same for every candidate scored on a batch).

    Returns:
        The :class:`DepthScores`.
    """
    check_shape(pred_depth, "B 1 H W", "pred_depth")
    check_shape(pred_valid, "B 1 H W", "pred_valid")
    check_shape(gt_depth, "B 1 H W", "gt_depth")
    mask = gt_mask(gt_depth) * prediction_mask(pred_valid.to(gt_depth.dtype))  # (B, 1, H, W)
    pred_depth = pred_depth.to(gt_depth.dtype)
    error = pred_depth - gt_depth  # (B, 1, H, W)
    pred_unit, pred_paper = depth_normals(pred_depth, renderer)
    gt_unit, gt_paper = gt_normals if gt_normals is not None else depth_normals(gt_depth, renderer)
    return DepthScores(
        side=side(pred_depth, gt_depth, mask),
        mad_deg=mad_deg(pred_unit, gt_unit, mask),
        mad_deg_paper=mad_deg_paper(pred_paper, gt_paper, mask),
        mae=_masked_mean(error.abs(), mask),
        mse=_masked_mean(error.square(), mask),
        mask_pixels=mask.flatten(1).sum(1),
        mask=mask,
    )


def geodesic_error(r_pred: Tensor, r_gt: Tensor) -> Tensor:
    """Geodesic distance between rotations, ``‖log(R1ᵀ R2)‖_F / √2``, in radians.

    Computed as the rotation angle θ of ``R = R1ᵀ R2`` by ``atan2(sin θ, cos θ)`` with
    ``cos θ = (tr R − 1) / 2`` and ``sin θ = ‖vee(R − Rᵀ)‖ / 2``: accurate over all of [0, π]
    (``arccos`` of the trace loses precision near 0).

    Args:
        r_pred: rotation matrices, shape (B, 3, 3).
        r_gt: rotation matrices, shape (B, 3, 3).

    Returns:
        Angles in [0, π], shape (B,).
    """
    check_shape(r_pred, "B 3 3", "r_pred")
    check_shape(r_gt, "B 3 3", "r_gt")
    relative = r_pred.transpose(1, 2) @ r_gt  # (B, 3, 3)
    cos = (relative.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2  # (B,)
    skew = relative - relative.transpose(1, 2)  # (B, 3, 3)
    axis = torch.stack([skew[:, 2, 1], skew[:, 0, 2], skew[:, 1, 0]], dim=-1)  # (B, 3)
    return torch.atan2(axis.norm(dim=-1) / 2, cos)


def viewpoint_summary(errors: Tensor) -> dict[str, float]:
    """NeMo's viewpoint summary of geodesic errors (radians, (N,)).

    Returns:
        ``median_deg`` (median error in degrees; for an even N the mean of the two middle
        values), ``acc_pi_6`` and ``acc_pi_18`` (share of errors < π/6 and < π/18) and ``n``.
    """
    check_shape(errors, "N", "errors")
    if errors.numel() == 0:
        raise ValueError("viewpoint_summary needs at least one error")
    values = errors.double()
    summary = {"median_deg": math.degrees(float(values.quantile(0.5)))}
    for key, threshold in ACCURACY_THRESHOLDS_RAD.items():
        summary[key] = float((values < threshold).double().mean())
    summary["n"] = int(values.numel())
    return summary
