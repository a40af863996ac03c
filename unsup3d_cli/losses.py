"""Confidence-weighted photometric and perceptual losses (reference §4)."""

from __future__ import annotations

from dataclasses import dataclass


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
    perceptual_weights: str = "imagenet"
    """VGG16 weights: 'imagenet' (torchvision cache), 'random', 'none' (term off) or a state-dict path."""
