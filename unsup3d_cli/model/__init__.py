"""The Unsup3D autoencoder: networks, output decoding, and the canonical/mirror reconstruction."""

from unsup3d_cli.model.decomposition import Decomposition, Reconstruction
from unsup3d_cli.model.unsup3d import (
    PRECISIONS,
    ModelConfig,
    Unsup3D,
    diffuse_shading,
    has_native_bfloat16,
)

__all__ = [
    "PRECISIONS",
    "Decomposition",
    "ModelConfig",
    "Reconstruction",
    "Unsup3D",
    "diffuse_shading",
    "has_native_bfloat16",
]
