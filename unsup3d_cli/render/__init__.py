"""Differentiable renderer for depth-map meshes, in pure PyTorch (CPU and CUDA alike).

Depends only on :mod:`unsup3d_cli.geometry`. Functions take tensors and plain numbers and keep
no state; :class:`Renderer` only holds its frozen :class:`RendererConfig`.
"""

from unsup3d_cli.render.mesh import grid_faces
from unsup3d_cli.render.rasterize import RasterOutput, rasterize_depth
from unsup3d_cli.render.renderer import Renderer, RendererConfig
from unsup3d_cli.render.shading import lambertian_shading
from unsup3d_cli.render.warp import (
    WarpedDepth,
    interpolate_vertex_colors,
    inverse_warp_grid,
    posed_mesh,
    sample_canonical,
    warp_depth,
)

__all__ = [
    "RasterOutput",
    "Renderer",
    "RendererConfig",
    "WarpedDepth",
    "grid_faces",
    "interpolate_vertex_colors",
    "inverse_warp_grid",
    "lambertian_shading",
    "posed_mesh",
    "rasterize_depth",
    "sample_canonical",
    "warp_depth",
]
