"""Confidence-weighted photometric and perceptual losses (reference §4)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unsup3d_cli.checks import check_shape
from unsup3d_cli.model import PRECISIONS, Decomposition, Reconstruction
from unsup3d_cli.model.networks import widen


@dataclass(frozen=True)
class LossConfig:
    """Weights of the training objective."""

    lam_perc: float = 1.0
    """Weight of the perceptual (VGG16 relu3_3) term."""
    lam_flip: float = 0.5
    """Weight of the flipped-branch terms from ``lam_flip_start_epoch`` on (1 before it)."""
    lam_flip_start_epoch: int = 0
    """First epoch (0-based) at which ``lam_flip`` applies; earlier epochs use weight 1."""
    lam_depth_smooth: float = 0.0
    """Weight of the canonical-depth smoothness term."""
    lam_gradient: float = 0.0
    """Weight of an image-gradient term, not in the paper (0 there): the Laplace NLL of the
    reconstruction's horizontal and vertical finite differences against the input's, with the
    photometric term's σ, for each branch (the flipped one weighted by λ_flip). An edge term
    that needs no pretrained network, for where the perceptual term is off: it weighs the
    small features (eyes, nostrils, mouth corners) by their edges, not their few pixels."""
    lam_view_centre: float = 0.0
    """Weight of a prior that keeps the *batch mean* of the predicted rotation angles at zero,
    ``‖mean_b (rx, ry, rz)_b‖²`` (radians). Not in the paper (0 there). It fixes the gauge of
    the canonical frame — the objective barely changes when every view turns by the same
    angle and the canonical surface turns back — which short runs otherwise let drift until
    the views saturate at the rotation range. Individual views are not pulled."""
    lam_translation_centre: float = 0.0
    """Weight of the same prior on the predicted x/y translation, in units of
    ``model.xy_translation_range``: ``‖mean_b (tx, ty)_b / range‖²``
    (:func:`translation_centre_prior`). Not in the paper (0 there). The rotation prior leaves
    the canonical frame free to slide sideways while every translation slides back; on the
    mesh faces some seeds do that (a batch-mean x-translation of −0.08, most of the half-frame,
    against the data's 0 ± 0.007) and then the mirror line no longer runs through the face,
    and the relief comes out inverted. Individual translations are not pulled."""
    lam_self_view: float = 0.0
    """Weight of a self-view term, not in the paper (0 there): the canonical reconstruction of
    each image (the model's own depth, albedo and light, not differentiated) is rendered at a
    random known view, and the viewpoint network is trained to predict that view from it
    (:func:`self_view_loss`). A turned head is foreshortened whatever its relief, so the term
    teaches the scale of a turn; on the mesh faces, 300 such steps on the bundled model's
    viewpoint network alone double its yaw slope on real faces (experiments/self_view.py).
    The random views differ between processes, so under torchrun the objective is not that of
    one process on the whole batch."""
    self_view_ranges_deg: tuple[float, float, float] = (20.0, 60.0, 10.0)
    """The self-view term's pitch, yaw and roll are drawn uniformly in ± these (degrees)."""
    self_view_shift: float = 0.01
    """The self-view term's x/y translation is drawn uniformly in ± this."""
    confidence_floor: float = 0.0
    """Added to every predicted confidence map σ inside the negative log-likelihoods (0: the
    paper's σ). Not in the paper. σ is predicted from the input alone and learns where the
    current reconstruction errs, so a change of view that moves errors onto pixels it trusts
    costs up to 1/σ there; on the mesh faces that holds the views short of the truth even where
    the plain L1 asks for a larger turn (experiments/yaw_landscape.py --sigma-floor). A floor
    caps that price at 1/floor while keeping the confidences' lower weight on what no view
    explains."""
    perceptual_weights: str = "imagenet"
    """VGG16 weights: 'imagenet' (torchvision's cache), 'random', 'none' (term off) or a file."""
    supervision: str = "none"
    """'none' (the unsupervised objective) or 'depth': the supervised baseline of the paper's
    Table 2, an L1 loss between the rendered input-view depth and the ground-truth depth on
    the ground-truth foreground, instead of every other term (needs data with depth)."""

    def __post_init__(self) -> None:
        """Reject unknown supervision modes, negative weights and a negative floor."""
        if self.lam_gradient < 0:
            raise ValueError(f"loss.lam_gradient must be ≥ 0, got {self.lam_gradient}")
        if not self.lam_translation_centre >= 0:
            raise ValueError(
                f"loss.lam_translation_centre must be ≥ 0, got {self.lam_translation_centre}"
            )
        if not self.lam_self_view >= 0:
            raise ValueError(f"loss.lam_self_view must be ≥ 0, got {self.lam_self_view}")
        if len(self.self_view_ranges_deg) != 3 or not all(
            0 <= r <= 180 for r in self.self_view_ranges_deg
        ):
            raise ValueError(
                "loss.self_view_ranges_deg must be three angles in [0, 180], "
                f"got {self.self_view_ranges_deg}"
            )
        if not self.self_view_shift >= 0:
            raise ValueError(f"loss.self_view_shift must be ≥ 0, got {self.self_view_shift}")
        if not self.confidence_floor >= 0:
            raise ValueError(f"loss.confidence_floor must be ≥ 0, got {self.confidence_floor}")
        if self.supervision not in SUPERVISION_MODES:
            raise ValueError(
                f"supervision must be one of {SUPERVISION_MODES}, got {self.supervision!r}"
            )


SUPERVISION_MODES = ("none", "depth")


EPS = 1e-7
"""Added to σ inside both negative log-likelihoods, as in the original."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG16_RELU3_3 = 16
"""Number of ``torchvision.models.vgg16().features`` layers up to and including relu3_3."""


@dataclass(frozen=True)
class LossTerms:
    """The terms of the objective for one batch (scalars), their weighted sum, and a count.

    ``raster_dropped`` is not a term: it is the number of (triangle, pixel) candidates the
    rasterizer's fixed-size pass had no slot for (``RasterOutput.dropped``, as a float), logged
    beside the terms so that a rendering that lost pixels shows in the metrics.
    """

    photometric: Tensor
    photometric_flip: Tensor
    gradient: Tensor
    gradient_flip: Tensor
    perceptual: Tensor
    perceptual_flip: Tensor
    depth_smooth: Tensor
    view_centre: Tensor
    translation_centre: Tensor
    self_view: Tensor
    depth_supervised: Tensor
    total: Tensor
    raster_dropped: Tensor

    def as_dict(self) -> dict[str, float]:
        """Plain floats, for logging."""
        return {f.name: float(getattr(self, f.name).detach()) for f in fields(self)}

    @classmethod
    def names(cls) -> list[str]:
        """The terms' names, in the order of :meth:`stacked`."""
        return [f.name for f in fields(cls)]

    def stacked(self) -> Tensor:
        """The terms as one detached vector (no copy to the host), in :meth:`names` order."""
        return torch.stack([getattr(self, name).detach() for name in self.names()])


class BatchGroup(Protocol):
    """The processes that share a batch (``engine.distributed.ProcessGroup``).

    Each process holds a shard of the batch. The objective's normalisers (the mask's sum, the
    number of images) are summed over the processes, and each process's term is scaled by
    ``world_size``, so that DDP's average of the processes' gradients is the gradient of the
    objective over the whole batch, and the mean of their values its value.
    """

    world_size: int

    def sum(self, value: Tensor) -> Tensor:
        """Sum of a detached tensor over the processes."""
        ...


def _masked_mean(loss: Tensor, weight: Tensor, group: BatchGroup | None = None) -> Tensor:
    """Σ(loss·w) / Σ(w) with ``weight`` (B, 1, H, W) broadcast over the channels of ``loss``.

    With ``group``, Σ(w) runs over the whole batch of every process (see :class:`BatchGroup`).
    """
    weight = weight.expand_as(loss)
    if group is None:
        return (loss * weight).sum() / weight.sum().clamp(min=EPS)
    total_weight = group.sum(weight.sum().detach())
    return group.world_size * (loss * weight).sum() / total_weight.clamp(min=EPS)


def _batch_mean(values: Tensor, group: BatchGroup | None = None) -> Tensor:
    """Mean of every element of ``values`` (B, ...), over the whole batch with ``group``."""
    if group is None:
        return values.mean()
    count = group.sum(values.new_full((), float(values.numel())))  # filled on the device
    return group.world_size * values.sum() / count


def photometric_nll(
    recon: Tensor,
    target: Tensor,
    mask: Tensor,
    confidence: Tensor | None = None,
    group: BatchGroup | None = None,
) -> Tensor:
    """Masked Laplace negative log-likelihood of the reconstruction (up to a constant).

    On images mapped to [-1, 1] (so values match the original): ``ℓ = |r − t|``, and with a
    confidence map ``√2·ℓ/(σ+ε) + ln(σ+ε)``; averaged over valid pixels and channels.

    Args:
        recon: reconstructed images (B, C, H, W) in [0, 1].
        target: input images (B, C, H, W) in [0, 1].
        mask: pixel weights (B, 1, H, W).
        confidence: σ (B, 1, H, W), or None for the plain masked L1.
        group: the processes sharing the batch (None: this process only).

    Returns:
        Scalar loss.
    """
    check_shape(recon, "B C H W", "recon")
    check_shape(mask, "B 1 H W", "mask")
    loss = 2 * (recon - target).abs()  # |Δ| in [-1, 1] units
    if confidence is not None:
        loss = _laplace_nll(loss, confidence)
    return _masked_mean(loss, mask, group)


def _laplace_nll(loss: Tensor, sigma: Tensor) -> Tensor:
    """``√2·ℓ/(σ+ε) + ln(σ+ε)``, the Laplace NLL of an error ℓ with scale σ."""
    return math.sqrt(2) * loss / (sigma + EPS) + torch.log(sigma + EPS)


def gradient_nll(
    recon: Tensor,
    target: Tensor,
    mask: Tensor,
    confidence: Tensor | None = None,
    group: BatchGroup | None = None,
) -> Tensor:
    """Masked Laplace negative log-likelihood of the images' finite differences.

    ``ℓ = |Δr − Δt|`` for the horizontal and the vertical differences of neighbouring pixels
    (in [-1, 1] units, as :func:`photometric_nll`), each pair weighted by the product of its
    two pixels' mask and with σ the mean of their two σ; with a confidence map
    ``√2·ℓ/(σ+ε) + ln(σ+ε)``. The mean of the horizontal and the vertical pairs' masked means.

    Args:
        recon: reconstructed images (B, C, H, W) in [0, 1].
        target: input images (B, C, H, W) in [0, 1].
        mask: pixel weights (B, 1, H, W).
        confidence: σ (B, 1, H, W), or None.
        group: the processes sharing the batch (None: this process only).

    Returns:
        Scalar loss.
    """
    check_shape(recon, "B C H W", "recon")
    check_shape(mask, "B 1 H W", "mask")
    error = 2 * (recon - target)
    total = error.new_zeros(())
    for dim in (-1, -2):
        error_a, error_b = _neighbours(error, dim)
        loss = (error_b - error_a).abs()
        if confidence is not None:
            sigma_a, sigma_b = _neighbours(confidence, dim)
            loss = _laplace_nll(loss, 0.5 * (sigma_a + sigma_b))
        mask_a, mask_b = _neighbours(mask, dim)
        total = total + 0.5 * _masked_mean(loss, mask_a * mask_b, group)
    return total


def _neighbours(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``x`` without its last and without its first slice along ``dim``: each pixel's pair."""
    size = x.shape[dim] - 1
    return x.narrow(dim, 0, size), x.narrow(dim, 1, size)


def perceptual_nll(
    recon_features: Tensor,
    target_features: Tensor,
    mask: Tensor,
    confidence: Tensor | None = None,
    group: BatchGroup | None = None,
) -> Tensor:
    """Masked Gaussian negative log-likelihood of feature maps (up to a constant).

    ``ℓ = (f_r − f_t)²``, with a confidence map ``ℓ/(2σ²+ε) + ln(σ+ε)``. The image mask is
    average-pooled to the feature resolution (fractional weights).

    Args:
        recon_features: (B, C, h, w).
        target_features: (B, C, h, w).
        mask: (B, 1, H, W) at image resolution, H a multiple of h.
        confidence: σ (B, 1, h, w), or None.
        group: the processes sharing the batch (None: this process only).

    Returns:
        Scalar loss.
    """
    check_shape(recon_features, "B C h w", "recon_features")
    factor = mask.shape[-1] // recon_features.shape[-1]
    weight = F.avg_pool2d(mask, kernel_size=factor, stride=factor)  # (B, 1, h, w)
    loss = (recon_features - target_features) ** 2
    if confidence is not None:
        loss = loss / (2 * confidence**2 + EPS) + torch.log(confidence + EPS)
    return _masked_mean(loss, weight, group)


def depth_smoothness(depth: Tensor, depth_span: float, group: BatchGroup | None = None) -> Tensor:
    """Mean absolute vertical plus horizontal finite difference of depth (B, 1, H, W), / span."""
    vertical = _batch_mean((depth[..., 1:, :] - depth[..., :-1, :]).abs(), group)
    horizontal = _batch_mean((depth[..., 1:] - depth[..., :-1]).abs(), group)
    return (vertical + horizontal) / depth_span


def view_centre_prior(view_angles: Tensor, group: BatchGroup | None = None) -> Tensor:
    """Squared norm of the batch-mean rotation angles, ``‖mean_b angles_b‖²``.

    With ``group`` the mean m runs over the whole batch of every process, and each process
    returns ``2·m̄·(W·Σ_local angles / N) − ‖m̄‖²`` (m̄ detached, N images in all, W
    processes): its value averages to ``‖m‖²`` over the processes, and its gradient to that
    of ``‖m‖²``.

    Args:
        view_angles: (B, 3) predicted (rx, ry, rz) in radians.
        group: the processes sharing the batch (None: this process only).

    Returns:
        Scalar.
    """
    check_shape(view_angles, "B 3", "view_angles")
    return _batch_mean_square(view_angles, group)


def translation_centre_prior(
    view_translation: Tensor, translation_range: float, group: BatchGroup | None = None
) -> Tensor:
    """Squared norm of the batch-mean x/y translation in units of its range.

    ``‖mean_b (tx, ty)_b‖² / range²``, over every process with ``group`` as in
    :func:`view_centre_prior`.

    Args:
        view_translation: (B, 3) predicted (tx, ty, tz).
        translation_range: ``model.xy_translation_range`` (> 0).
        group: the processes sharing the batch (None: this process only).

    Returns:
        Scalar.
    """
    check_shape(view_translation, "B 3", "view_translation")
    if not translation_range > 0:
        raise ValueError(f"translation_range must be > 0, got {translation_range}")
    return _batch_mean_square(view_translation[:, :2] / translation_range, group)


def self_view_loss(
    pred_angles: Tensor,
    pred_translation: Tensor,
    angles: Tensor,
    translation: Tensor,
    translation_range: float,
) -> Tensor:
    """L1 between predicted and known views: ``mean|Δangles| + mean|Δ(tx, ty)| / range``.

    Args:
        pred_angles: (B, 3) predicted rotation angles in radians.
        pred_translation: (B, 3) predicted translation (z is left out).
        angles: (B, 3) the views the images were rendered at.
        translation: (B, 3) their translations.
        translation_range: ``model.xy_translation_range``; 0 leaves the translation out.

    Returns:
        Scalar.
    """
    check_shape(pred_angles, "B 3", "pred_angles")
    check_shape(angles, "B 3", "angles")
    check_shape(pred_translation, "B 3", "pred_translation")
    check_shape(translation, "B 3", "translation")
    loss = (pred_angles - angles).abs().mean()
    if translation_range > 0:
        shift = (pred_translation[:, :2] - translation[:, :2]).abs().mean()
        loss = loss + shift / translation_range
    return loss


def _batch_mean_square(values: Tensor, group: BatchGroup | None) -> Tensor:
    """``‖mean_b values_b‖²`` for values (B, K), over every process with ``group``.

    With ``group`` each process returns ``2·m̄·(W·Σ_local values / N) − ‖m̄‖²``
    (see :func:`view_centre_prior`).
    """
    if group is None:
        return values.mean(dim=0).square().sum()
    count = group.sum(values.new_full((), float(values.shape[0])))
    mean = group.sum(values.detach().sum(dim=0)) / count  # (K,)
    local = group.world_size * values.sum(dim=0) / count  # (K,)
    return 2 * (mean * local).sum() - mean.square().sum()


def flip_weight(cfg: LossConfig, epoch: int) -> float:
    """λ_flip: 1 before ``lam_flip_start_epoch``, ``lam_flip`` from then on (reference §4)."""
    return 1.0 if epoch < cfg.lam_flip_start_epoch else cfg.lam_flip


class VGGFeatures(nn.Module):
    """Frozen VGG16 up to relu3_3, with ImageNet input normalisation; images in [0, 1].

    Args:
        state_dict: weights for ``torchvision.models.vgg16().features`` (keys ``"0.weight"``…,
            or a full VGG16 state dict with ``"features."`` keys); None keeps random init.
    """

    def __init__(self, state_dict: Mapping[str, Tensor] | None = None) -> None:
        super().__init__()
        from torchvision.models import vgg16  # noqa: PLC0415 (torchvision loads only with VGG)

        layers = vgg16(weights=None).features[:VGG16_RELU3_3]
        if state_dict is not None:
            layers.load_state_dict(_relu3_3_state(state_dict, layers.state_dict().keys()))
        self.layers = layers.requires_grad_(False).eval().to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.precision = "fp32"

    def set_precision(self, precision: str) -> None:
        """Run the convolutions in 'fp32' (default) or under bfloat16 autocast ('bf16').

        Features come out as float32 either way. 'bf16' is what ``train.precision: bf16``
        gives: on a 2-core AVX512-BF16 CPU a synth_faces training step with the term takes
        1.25 s in bf16 against 2.1 s with the features in fp32 (random-init features).
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision

    def train(self, mode: bool = True) -> VGGFeatures:
        """Stay in eval mode (frozen backbone)."""
        return super().train(False)

    def forward(self, image: Tensor) -> Tensor:
        """Images (B, 3, H, W) in [0, 1] → relu3_3 features (B, 256, H/4, W/4)."""
        normalised = ((image - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        enabled = self.precision == "bf16"
        with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=enabled):
            features = self.layers(normalised)
        return widen(features)


def _relu3_3_state(state_dict: Mapping[str, Tensor], needed: Iterable[str]) -> dict[str, Tensor]:
    """The entries of a VGG16 (or VGG16 ``features``) state dict that relu3_3 needs."""
    if any(k.startswith("features.") for k in state_dict):
        state_dict = {k.removeprefix("features."): v for k, v in state_dict.items()}
    missing = [k for k in needed if k not in state_dict]
    if missing:
        raise ValueError(f"not a VGG16 state dict: missing {', '.join(missing[:4])}")
    return {k: state_dict[k] for k in needed}


def foreground_mask(gt_depth: Tensor) -> Tensor:
    """Pixels nearer than the batch-wide farthest ground-truth depth (the background), float."""
    return (gt_depth < gt_depth.max()).to(gt_depth.dtype)


def supervised_depth_loss(
    view_depth: Tensor, gt_depth: Tensor, group: BatchGroup | None = None
) -> Tensor:
    """Mean |predicted − ground-truth| input-view depth over the ground-truth foreground.

    Args:
        view_depth: predicted depth in the input view, (B, 1, H, W).
        gt_depth: ground-truth depth, (B, 1, H, W), background at its largest value.
        group: the processes sharing the batch (None: this process only).
    """
    check_shape(gt_depth, "B 1 H W", "gt_depth")
    return _masked_mean((view_depth - gt_depth).abs(), foreground_mask(gt_depth), group)


def supervised_loss(
    recon: Reconstruction, gt_depth: Tensor | None, group: BatchGroup | None = None
) -> LossTerms:
    """Terms of the supervised baseline: only the depth L1 (reference Table 2, row 1)."""
    if gt_depth is None:
        raise ValueError("loss.supervision=depth needs ground-truth depth in the batches")
    view_depth = Reconstruction.split(recon.view_depth)[0]
    depth = supervised_depth_loss(view_depth, gt_depth, group)
    zero = depth.new_zeros(())
    dropped = _dropped(recon, zero)
    return LossTerms(
        zero, zero, zero, zero, zero, zero, zero, zero, zero, zero, depth, depth, dropped
    )  # fmt: skip


def total_loss(
    image: Tensor,
    decomp: Decomposition,
    recon: Reconstruction,
    cfg: LossConfig,
    features: nn.Module | None,
    *,
    epoch: int,
    depth_span: float,
    translation_range: float = 0.0,
    group: BatchGroup | None = None,
) -> LossTerms:
    """The full objective ``L1 + λf·L1' + λp·(Lp + λf·Lp') + λsm·Lsm`` (reference §4).

    Our additions, each off at weight 0: ``λg·(Lg + λf·Lg')`` (:func:`gradient_nll`),
    ``λvc·Lvc`` (:func:`view_centre_prior`) and ``λtc·Ltc`` (:func:`translation_centre_prior`;
    also off when ``translation_range`` is 0, a model without x/y translation).

    Args:
        image: input images (B, 3, H, W) in [0, 1].
        decomp: the model's prediction for ``image``.
        recon: its reconstruction (2B batched).
        cfg: loss weights.
        features: perceptual feature extractor, or None to drop the perceptual terms.
        epoch: current epoch (for the flip weight schedule).
        depth_span: max_depth − min_depth, the smoothness normaliser.
        translation_range: ``model.xy_translation_range``, the translation prior's unit.
        group: the processes sharing the batch, each holding a shard (None: this process
            only); see :class:`BatchGroup`.
    """
    lam_flip = flip_weight(cfg, epoch)
    sigma = _split_channels(decomp.confidence, cfg.confidence_floor)
    recon_image, recon_flip = Reconstruction.split(recon.image)
    photo = photometric_nll(recon_image, image, recon.mask, sigma[0], group)
    photo_flip = photometric_nll(recon_flip, image, recon.mask, sigma[1], group)
    zero = image.new_zeros(())
    perc = perc_flip = smooth = grad = grad_flip = zero
    if cfg.lam_gradient > 0:
        grad = gradient_nll(recon_image, image, recon.mask, sigma[0], group)
        grad_flip = gradient_nll(recon_flip, image, recon.mask, sigma[1], group)
    if features is not None and cfg.lam_perc > 0:
        perc, perc_flip = _perceptual_terms(
            image, recon, decomp, features, group, cfg.confidence_floor
        )
    if cfg.lam_depth_smooth > 0:
        smooth = depth_smoothness(decomp.depth_unbordered, depth_span, group)
    centre = view_centre_prior(decomp.view_angles, group) if cfg.lam_view_centre > 0 else zero
    shift = zero
    if cfg.lam_translation_centre > 0 and translation_range > 0:
        shift = translation_centre_prior(decomp.view_translation, translation_range, group)
    total = (
        photo
        + lam_flip * photo_flip
        + cfg.lam_gradient * (grad + lam_flip * grad_flip)
        + cfg.lam_perc * (perc + lam_flip * perc_flip)
        + cfg.lam_depth_smooth * smooth
        + cfg.lam_view_centre * centre
        + cfg.lam_translation_centre * shift
    )
    dropped = _dropped(recon, zero)
    return LossTerms(
        photo, photo_flip, grad, grad_flip, perc, perc_flip, smooth, centre, shift, zero, zero,
        total, dropped,
    )  # fmt: skip


def _dropped(recon: Reconstruction, zero: Tensor) -> Tensor:
    """The reconstruction's rasterizer drop count as a scalar like ``zero`` (0 when not kept)."""
    return zero if recon.raster_dropped is None else recon.raster_dropped.to(zero.dtype)


def _split_channels(
    sigma: Tensor | None, floor: float = 0.0
) -> tuple[Tensor | None, Tensor | None]:
    """The canonical and the flipped branch's σ (B, 1, H, W) each, plus ``floor``."""
    if sigma is None:
        return None, None
    if floor:
        sigma = sigma + floor
    return sigma[:, :1], sigma[:, 1:2]


def _perceptual_terms(
    image: Tensor,
    recon: Reconstruction,
    decomp: Decomposition,
    features: nn.Module,
    group: BatchGroup | None,
    floor: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Perceptual NLL of both branches; the target's features are computed once."""
    batch = image.shape[0]
    feats = features(torch.cat([recon.image, image], dim=0))  # (3B, C, h, w)
    recon_feats, flip_feats, target_feats = feats[:batch], feats[batch:-batch], feats[-batch:]
    sigma = _split_channels(decomp.perceptual_confidence, floor)
    perc = perceptual_nll(recon_feats, target_feats, recon.mask, sigma[0], group)
    perc_flip = perceptual_nll(flip_feats, target_feats, recon.mask, sigma[1], group)
    return perc, perc_flip
