"""Pure tensor geometry: camera, rigid transforms, normals.

Conventions (the one page every module follows)
-----------------------------------------------
* **Camera frame** (OpenCV-like, right-handed): x to the right, y down, z forward, away from the
  camera. The object sits around depth 1.
* **Intrinsics**: square pinhole ``K = [[f, 0, c], [0, f, c], [0, 0, 1]]`` with ``c = (S - 1) / 2``
  and ``f = c / tan(fov / 2)``; for S = 64 and fov = 10°, f ≈ 360.047 and c = 31.5. Because the
  principal point is the exact image centre, a horizontal image flip equals the mirror x ↦ −x.
* **Pixels**: pixel (row v, column u) has its centre at image coordinates (u, v), integers, origin
  at the top-left pixel centre. Sampling grids for ``grid_sample`` use ``align_corners=True``:
  ``u_n = u / (W − 1) · 2 − 1``.
* **Shapes**: images ``(B, 3, H, W)`` in ``[0, 1]``; depth ``(B, 1, H, W)`` in world units;
  point grids and normals channel-last ``(B, H, W, 3)``; vertex lists ``(B, N, 3)``.
* **Rotation**: ``R = Rz(rz) · Ry(ry) · Rx(rx)`` (x applied first), angles in radians inside the
  code (degrees only in configs and metrics). Viewpoint transforms rotate about a pivot
  ``(0, 0, d_pivot)``: forward ``P' = R (P − c) + c + t``, inverse ``P = Rᵀ (P' − t − c) + c``.
* **Normals** point away from the camera: a fronto-parallel plane has normal ``(0, 0, +1)``.
"""

from unsup3d_cli.geometry.camera import (
    depth_to_points,
    intrinsics_from_fov,
    pixel_grid,
    points_to_grid,
    project_points,
)
from unsup3d_cli.geometry.normals import points_to_normals
from unsup3d_cli.geometry.transforms import (
    euler_to_rotation,
    inverse_rigid_transform,
    rigid_transform,
)

__all__ = [
    "depth_to_points",
    "euler_to_rotation",
    "intrinsics_from_fov",
    "inverse_rigid_transform",
    "pixel_grid",
    "points_to_grid",
    "points_to_normals",
    "project_points",
    "rigid_transform",
]
