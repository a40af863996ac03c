"""Renderer settings and the thin module around the functional renderer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from unsup3d_cli.checks import check_shape
from unsup3d_cli.geometry import (
    depth_to_points,
    euler_to_rotation,
    intrinsics_from_fov,
    points_to_normals,
)
from unsup3d_cli.render.rasterize import rasterize_depth
from unsup3d_cli.render.warp import (
    WarpedDepth,
    interpolate_vertex_colors,
    inverse_warp_grid,
    posed_mesh,
    warp_depth,
)


@dataclass(frozen=True)
class RendererConfig:
    """Settings of the pinhole camera and the depth rasterizer."""

    fov_deg: float = 10.0
    """Field of view of the square pinhole camera, in degrees (fx = fy = (S-1)/2 / tan(fov/2))."""
    rot_center_depth: float = 1.0
    """Depth of the pivot (0, 0, d) about which viewpoint rotations are applied, in world units."""
    max_candidates: int = 4_000_000
    """Most (triangle, pixel) candidate pairs the rasterizer's visibility pass holds at once."""
    fixed_size: bool | None = None
    """The rasterizer's fixed-size visibility pass (no host–device synchronisation); None uses
    it everywhere but on the CPU (see :mod:`unsup3d_cli.render.rasterize`)."""
    slots_per_pixel: float = 4.0
    """The fixed-size pass's candidate slots per output pixel; training logs what did not fit
    as ``raster_dropped``."""

    def __post_init__(self) -> None:
        """Reject a negative slot count or a chunk size below 1."""
        if self.slots_per_pixel < 0:
            raise ValueError(f"renderer.slots_per_pixel must be >= 0, got {self.slots_per_pixel}")
        if self.max_candidates < 1:
            raise ValueError(f"renderer.max_candidates must be >= 1, got {self.max_candidates}")

    def rendering(self) -> dict:
        """The settings that change what is rendered (the camera), not how it is computed."""
        return {"fov_deg": self.fov_deg, "rot_center_depth": self.rot_center_depth}

    def raster_options(self) -> dict:
        """Keyword arguments of :func:`~unsup3d_cli.render.rasterize.rasterize_depth`."""
        return {"max_candidates": self.max_candidates, "fixed_size": self.fixed_size,
                "slots_per_pixel": self.slots_per_pixel}  # fmt: skip


class Renderer(nn.Module):
    """Thin module over the functional renderer; holds only its frozen settings.

    Every method takes tensors and returns tensors; nothing is kept between calls. The
    intrinsics follow each input's size, device and dtype.
    """

    def __init__(self, cfg: RendererConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or RendererConfig()

    def intrinsics(self, like: Tensor) -> Tensor:
        """K (3, 3) for the square image size of ``like`` (…, H, W)."""
        height, width = like.shape[-2:]
        if height != width:
            raise ValueError(f"the camera is square; got an image of {height}×{width}")
        return intrinsics_from_fov(self.cfg.fov_deg, height, like)

    def points(self, depth: Tensor) -> Tensor:
        """Back-projected points (B, H, W, 3) of a depth map (B, 1, H, W)."""
        return depth_to_points(depth, self.intrinsics(depth))

    def normals(self, depth: Tensor, paper_eps: bool = False) -> Tensor:
        """Normals (B, H, W, 3) of a depth map (B, 1, H, W); see ``points_to_normals``."""
        return points_to_normals(self.points(depth), paper_eps=paper_eps)

    def warp_depth(
        self,
        canonical_depth: Tensor,
        rotation: Tensor,
        translation: Tensor,
        depth_range: tuple[float, float],
        scale: Tensor | None = None,
    ) -> WarpedDepth:
        """View depth (B, 1, H, W), validity mask and drop count of a canonical depth map.

        ``scale`` (B,) resizes the object about the pivot before the rigid motion (None: 1).
        """
        return warp_depth(
            canonical_depth,
            rotation,
            translation,
            self.intrinsics(canonical_depth),
            self.cfg.rot_center_depth,
            depth_range,
            scale=scale,
            **self.cfg.raster_options(),
        )

    def inverse_grid(
        self,
        view_depth: Tensor,
        rotation: Tensor,
        translation: Tensor,
        scale: Tensor | None = None,
    ) -> Tensor:
        """Sampling grid (B, H, W, 2) from the view into the canonical frame."""
        return inverse_warp_grid(
            view_depth,
            rotation,
            translation,
            self.intrinsics(view_depth),
            self.cfg.rot_center_depth,
            scale,
        )

    def render_view(
        self,
        colors: Tensor,
        canonical_depth: Tensor,
        rotation: Tensor,
        translation: Tensor,
        background: float = 1.0,
    ) -> tuple[Tensor, Tensor]:
        """Render the depth-map mesh, coloured per vertex, from a new viewpoint.

        Args:
            colors: a value per canonical pixel (= mesh vertex), shape (B, C, H, W).
            canonical_depth: shape (B, 1, H, W).
            rotation: (B, 3, 3).
            translation: (B, 3).
            background: value of pixels the mesh does not cover.

        Returns:
            The rendered image (B, C, H, W) and its coverage mask (B, 1, H, W), float.
        """
        check_shape(colors, "B C H W", "colors")
        intrinsics = self.intrinsics(canonical_depth)
        vertices, faces = posed_mesh(
            canonical_depth, rotation, translation, intrinsics, self.cfg.rot_center_depth
        )
        size = tuple(canonical_depth.shape[-2:])
        raster = rasterize_depth(vertices, faces, intrinsics, size, **self.cfg.raster_options())
        per_vertex = colors.flatten(2).transpose(1, 2)  # (B, H·W, C)
        image = interpolate_vertex_colors(raster, faces, per_vertex)  # (B, C, H, W)
        mask = raster.covered.to(image.dtype)
        return image + background * (1.0 - mask), mask

    def turntable(
        self,
        colors: Tensor,
        canonical_depth: Tensor,
        yaws_deg: Sequence[float],
        pitch_deg: float = 0.0,
        background: float = 1.0,
    ) -> Tensor:
        """Frames of the mesh rotated about the vertical axis through the pivot.

        Returns:
            Frames of shape (B, T, C, H, W), T = len(yaws_deg).
        """
        batch = canonical_depth.shape[0]
        frames = []
        for yaw in yaws_deg:
            angles = canonical_depth.new_tensor([pitch_deg, yaw, 0.0]).deg2rad().expand(batch, 3)
            rotation = euler_to_rotation(angles)
            translation = canonical_depth.new_zeros(batch, 3)
            image, _ = self.render_view(colors, canonical_depth, rotation, translation, background)
            frames.append(image)
        return torch.stack(frames, dim=1)  # (B, T, C, H, W)
