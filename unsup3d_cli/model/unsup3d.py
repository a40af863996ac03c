"""The Unsup3D model: image → depth, albedo, light, viewpoint and confidence."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and output ranges of the Unsup3D model (reference §2)."""

    min_depth: float = 0.9
    """Smallest canonical depth, in world units."""
    max_depth: float = 1.1
    """Largest canonical depth, in world units."""
    border_depth: float | None = None
    """Depth forced on the two leftmost and rightmost columns; None means 0.7·max + 0.3·min."""
    rotation_range_deg: float = 60.0
    """Largest viewpoint rotation about each axis, in degrees."""
    xy_translation_range: float = 0.1
    """Largest viewpoint translation along x and y, in world units."""
    z_translation_range: float = 0.0
    """Largest viewpoint translation along z, in world units (0 for faces, 0.1 for cats)."""
    min_ambient: float = 0.0
    """Smallest ambient light intensity."""
    max_ambient: float = 1.0
    """Largest ambient light intensity."""
    min_diffuse: float = 0.0
    """Smallest diffuse light intensity."""
    max_diffuse: float = 1.0
    """Largest diffuse light intensity."""
    use_confidence: bool = True
    """Predict per-pixel confidence maps for the losses (off: plain masked L1 and MSE)."""
    flip_albedo: bool = True
    """Flip the albedo in the mirrored branch (ablation switch)."""
    flip_depth: bool = True
    """Flip the depth in the mirrored branch (ablation switch)."""
    use_light: bool = True
    """Shade the albedo with the predicted light (off: the canonical image is the albedo)."""
    width: int = 64
    """Base channel width of the depth, albedo and confidence networks (multiple of 4, ≥ 16)."""
    encoder_width: int = 32
    """Base channel width of the viewpoint and light encoders."""
    depth_zdim: int = 256
    """Bottleneck size of the depth and albedo networks."""
    confidence_zdim: int = 128
    """Bottleneck size of the confidence network."""
