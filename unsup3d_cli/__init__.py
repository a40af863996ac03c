"""unsup3d: unsupervised 3D shape of symmetric deformable objects from single-view images."""

__version__ = "0.1.0"
