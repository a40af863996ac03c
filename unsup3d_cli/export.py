"""Textured triangle meshes from ``unsup3d reconstruct`` outputs: OBJ + MTL + PNG, PLY, GLB.

A reconstruction folder (``DIR/<name>/``, see ``result.json``) holds the canonical depth map on
the S×S pixel grid. :func:`build_mesh` turns it into a mesh, one vertex per kept pixel:

1. **Back-projection** with the stored camera: ``P = D · K⁻¹ (u, v, 1)ᵀ`` (camera frame, x right,
   y down, z forward, see :mod:`unsup3d_cli.geometry`).
2. **Pixels dropped**: the ``border_columns`` leftmost and rightmost columns (forced to
   ``border_depth`` by the model; skipped when ``border_depth`` is null), non-finite or
   non-positive depths, and background: depths at or beyond the far end of ``depth_range``.
3. **Faces**: two triangles per 2×2 cell (the renderer's grid triangulation) whose three
   vertices are all kept; with ``cut_discontinuities`` a triangle is also dropped when its
   vertices' depths differ by more than ``max_depth_jump`` (a fraction of the depth range, or
   world units with ``jump_relative=False``). Vertices no kept face uses are removed.
4. **View**: ``canonical`` keeps the frontal, un-posed shape; ``input`` applies the stored
   viewpoint ``P' = R (P − c) + c + t`` (``R = Rz·Ry·Rx``, pivot ``c = (0, 0, rot_center_depth)``),
   i.e. the shape as seen in the photo.

**File axes** (every format): x right, y up, z toward the viewer, the OpenGL/glTF convention,
i.e. the camera frame turned 180° about x (``y ← −y``, ``z ← −z``), as the original exporter
did. Units stay camera units (the object is ≈ 0.18 wide at depth ≈ 1). With ``centre=True`` the
origin is the rotation pivot, so the object sits at the origin; with ``centre=False`` the origin
is the camera, which then looks down −z exactly as a glTF camera does. Triangles wind
counter-clockwise seen from +z and vertex normals point toward the viewer.

**Textures**: ``albedo`` (``canonical_albedo.png``) and ``shaded`` (``canonical_image.png``, the
original's choice) lie on the canonical grid, so a vertex's UV is its pixel centre,
``((u + 0.5) / W, 1 − (v + 0.5) / H)``, valid for a texture of any resolution. ``input``
(``input.png``) takes UVs from projecting the input-view vertices into the photo with the
camera, clamped to the image; parts hidden in the photo take the colour of what hides them.
PLY files carry the texture sampled (bilinearly) at each vertex as vertex colours.

Every function is pure with respect to its array arguments.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unsup3d_cli.data import DataError
from unsup3d_cli.geometry import (
    depth_to_points,
    euler_to_rotation,
    intrinsics_from_fov,
    project_points,
    rigid_transform,
)
from unsup3d_cli.render.mesh import grid_faces

FORMATS = ("obj", "ply", "glb")
"""Mesh file formats :func:`export_record` writes."""
VIEWS = ("canonical", "input")
TEXTURES = ("albedo", "shaded", "input")
TEXTURE_FILES = {
    "albedo": "canonical_albedo.png",
    "shaded": "canonical_image.png",
    "input": "input.png",
}
"""Which file of a reconstruction folder each ``texture`` choice reads."""
RESULT_FILE = "result.json"
DEPTH_FILE = "canonical_depth.npy"
FILE_AXES = np.diag([1.0, -1.0, -1.0])
"""Camera frame (x right, y down, z forward) → file axes (x right, y up, z toward the viewer)."""


class ExportError(DataError):
    """A reconstruction folder or an output file is missing, malformed or in the way."""


@dataclass(frozen=True)
class CameraInfo:
    """The pinhole camera of a reconstruction (``result.json`` → ``camera``)."""

    fov_deg: float
    """Field of view in degrees."""
    image_size: int
    """Side S of the square depth map and input crop, in pixels."""
    rot_center_depth: float
    """Depth of the viewpoint rotation pivot (0, 0, d), world units."""


@dataclass(frozen=True)
class ReconstructionRecord:
    """What one ``reconstruct`` output folder says about the shape and the view."""

    name: str
    """Image name (the folder name)."""
    canonical_depth: np.ndarray
    """Canonical depth after the border fill, (S, S) float, world units."""
    camera: CameraInfo
    rotation_deg: tuple[float, float, float]
    """Viewpoint rotation (rx, ry, rz) in degrees, ``R = Rz·Ry·Rx``."""
    translation: tuple[float, float, float]
    """Viewpoint translation (tx, ty, tz), world units."""
    depth_range: tuple[float, float]
    """(min_depth, max_depth) of the model; depths ≥ max_depth are background."""
    border_depth: float | None
    """Value of the filled border columns, or None when the model has no border fill."""
    folder: Path | None = None
    """Where it was read from (for messages and textures), if anywhere."""
    scale: float = 1.0
    """The object's size in the view relative to the canonical frame, about the pivot."""


@dataclass(frozen=True)
class MeshOptions:
    """How :func:`build_mesh` turns a depth map into a mesh."""

    view: str = "canonical"
    """'canonical' (frontal) or 'input' (posed as in the photo)."""
    texture: str = "albedo"
    """'albedo', 'shaded' or 'input': decides the UVs (see the module docstring)."""
    cut_discontinuities: bool = True
    """Drop triangles across depth steps larger than ``max_depth_jump``."""
    max_depth_jump: float = 0.1
    """Largest depth difference within a kept triangle."""
    jump_relative: bool = True
    """``max_depth_jump`` is a fraction of the depth range span (else world units)."""
    border_columns: int = 2
    """Columns dropped on the left and on the right (the model's border fill)."""
    centre: bool = True
    """Put the rotation pivot at the origin (else the camera)."""

    def __post_init__(self) -> None:
        _check_choice("view", self.view, VIEWS)
        _check_choice("texture", self.texture, TEXTURES)
        if not self.max_depth_jump > 0:
            raise ValueError(f"max_depth_jump must be > 0, got {self.max_depth_jump}")
        if self.border_columns < 0:
            raise ValueError(f"border_columns must be >= 0, got {self.border_columns}")


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh in file axes with one UV and normal per vertex."""

    vertices: np.ndarray
    """(N, 3) float64, file axes, camera units."""
    faces: np.ndarray
    """(F, 3) int64 vertex indices, counter-clockwise seen from the normal side."""
    uv: np.ndarray
    """(N, 2) float64 in [0, 1], v up (OBJ convention)."""
    normals: np.ndarray
    """(N, 3) float64 unit vertex normals."""
    pixels: np.ndarray
    """(N,) int64: the canonical pixel ``row · S + column`` each vertex comes from."""


@dataclass(frozen=True)
class ExportedMesh:
    """The files written for one reconstruction."""

    name: str
    source: Path | None
    files: tuple[Path, ...]
    vertices: int
    faces: int


def _check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


# --------------------------------------------------------------------------------------------
# Mesh construction (pure)


def valid_pixels(
    depth: np.ndarray, depth_range: tuple[float, float], border_depth: float | None, columns: int
) -> np.ndarray:
    """Pixels that become vertices: finite, positive, nearer than the far end, not border.

    Args:
        depth: canonical depth, (H, W).
        depth_range: (min_depth, max_depth); depths ≥ max_depth (up to 1e-6) are background.
        border_depth: the border fill value, or None (no border columns to drop).
        columns: border columns on each side.

    Returns:
        Boolean mask, (H, W).
    """
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(depth) & (depth > 0) & (depth < depth_range[1] - 1e-6)
    if border_depth is not None and columns > 0:
        keep[:, :columns] = False
        keep[:, depth.shape[1] - columns :] = False
    return keep


def grid_triangles(keep: np.ndarray, depth: np.ndarray, max_jump: float | None) -> np.ndarray:
    """The grid triangles whose vertices are all kept and, optionally, within a depth step.

    Args:
        keep: kept pixels, (H, W) bool.
        depth: depth per pixel, (H, W).
        max_jump: largest depth difference inside a triangle, or None for no cut.

    Returns:
        Faces as flat pixel indices ``r · W + c``, (F, 3) int64, in the order of
        :func:`unsup3d_cli.render.mesh.grid_faces`.
    """
    height, width = keep.shape
    faces = grid_faces(height, width).numpy()  # (2(H-1)(W-1), 3)
    faces = faces[keep.reshape(-1)[faces].all(axis=1)]
    if max_jump is not None:
        corner_depth = depth.reshape(-1)[faces]  # (F, 3)
        faces = faces[np.ptp(corner_depth, axis=1) <= max_jump]
    return faces.astype(np.int64)


def _camera_points(record: ReconstructionRecord, view: str) -> np.ndarray:
    """Back-projected (and for 'input', posed) camera-frame points of every pixel, (H·W, 3)."""
    depth = torch.tensor(record.canonical_depth, dtype=torch.float64)[None, None]  # (1,1,H,W)
    camera = record.camera
    intrinsics = intrinsics_from_fov(camera.fov_deg, camera.image_size, like=depth)
    points = depth_to_points(depth, intrinsics).reshape(1, -1, 3)  # (1, H·W, 3)
    if view == "input":
        angles = torch.tensor([[math.radians(a) for a in record.rotation_deg]], dtype=depth.dtype)
        translation = torch.tensor([record.translation], dtype=depth.dtype)  # (1, 3)
        rotation = euler_to_rotation(angles)  # (1, 3, 3)
        scale = depth.new_full((1,), record.scale)
        points = rigid_transform(points, rotation, translation, camera.rot_center_depth, scale)
    elif view != "canonical":
        raise ValueError(f"view must be one of {', '.join(VIEWS)}; got {view!r}")
    return points[0].numpy()  # (H·W, 3)


def to_file_axes(points: np.ndarray, pivot_depth: float, centre: bool) -> np.ndarray:
    """Camera-frame points (N, 3) → file axes (y up, z toward the viewer), pivot at 0 if centred."""
    origin = np.array([0.0, 0.0, pivot_depth if centre else 0.0])
    return (points - origin) @ FILE_AXES  # (N, 3); FILE_AXES is symmetric


def grid_uv(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """UVs ``((c + 0.5) / W, 1 − (r + 0.5) / H)`` of pixel centres, flat indices (N,) → (N, 2)."""
    rows, cols = np.divmod(pixels, width)
    return np.stack([(cols + 0.5) / width, 1.0 - (rows + 0.5) / height], axis=-1)


def projected_uv(points: np.ndarray, camera: CameraInfo) -> np.ndarray:
    """UVs of camera-frame points (N, 3) projected into the S×S input image, clamped to [0, 1]."""
    size = camera.image_size
    pts = torch.tensor(points, dtype=torch.float64)
    intrinsics = intrinsics_from_fov(camera.fov_deg, size, like=pts)
    uv_px = project_points(pts, intrinsics).numpy()  # (N, 2) pixel centres (u, v)
    uv = np.stack([(uv_px[:, 0] + 0.5) / size, 1.0 - (uv_px[:, 1] + 0.5) / size], axis=-1)
    return np.clip(np.nan_to_num(uv, nan=0.5), 0.0, 1.0)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, (N, 3), on the counter-clockwise side of each face."""
    corners = vertices[faces]  # (F, 3, 3)
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    summed = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(summed, faces[:, k], face_normals)
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    return np.where(length > 0, summed / np.maximum(length, 1e-30), [0.0, 0.0, 1.0])


def _check_record(record: ReconstructionRecord) -> None:
    size = record.camera.image_size
    depth = record.canonical_depth
    if depth.ndim != 2 or depth.shape != (size, size):
        where = record.folder / DEPTH_FILE if record.folder else "canonical_depth"
        raise ExportError(f"{where}: expected a ({size}, {size}) depth map, got {depth.shape}")


def build_mesh(record: ReconstructionRecord, options: MeshOptions | None = None) -> Mesh:
    """Triangle mesh of a reconstruction's canonical depth (see the module docstring).

    Args:
        record: the depth map, camera and viewpoint; its arrays are not modified.
        options: view, texture (for UVs), discontinuity cut, border and centring.

    Returns:
        The mesh in file axes, vertices ordered by pixel index.

    Raises:
        ExportError: the depth map does not match the camera's image size.
    """
    options = options or MeshOptions()
    _check_record(record)
    depth = np.asarray(record.canonical_depth, dtype=np.float64)  # (H, W), read only
    height, width = depth.shape
    keep = valid_pixels(depth, record.depth_range, record.border_depth, options.border_columns)
    max_jump = None
    if options.cut_discontinuities:
        span = record.depth_range[1] - record.depth_range[0]
        max_jump = options.max_depth_jump * (span if options.jump_relative else 1.0)
    grid_tris = grid_triangles(keep, depth, max_jump)  # (F, 3) flat pixel indices
    if len(grid_tris) == 0:
        where = record.folder / DEPTH_FILE if record.folder else record.name
        raise ExportError(f"{where}: no surface left after dropping border and background pixels")
    pixels, faces = np.unique(grid_tris, return_inverse=True)  # (N,), (F·3,)
    faces = faces.reshape(-1, 3).astype(np.int64)
    needs_pose = "input" in (options.view, options.texture)
    posed = _camera_points(record, "input")[pixels] if needs_pose else None  # (N, 3)
    shown = posed if options.view == "input" else _camera_points(record, "canonical")[pixels]
    vertices = to_file_axes(shown, record.camera.rot_center_depth, options.centre)
    if options.texture == "input":
        uv = projected_uv(posed, record.camera)
    else:
        uv = grid_uv(pixels, height, width)
    normals = vertex_normals(vertices, faces)
    return Mesh(vertices=vertices, faces=faces, uv=uv, normals=normals, pixels=pixels)


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinearly sample an RGB texture at UVs (v up, texel centres at (i + 0.5) / size).

    Args:
        texture: (H, W, 3) uint8.
        uv: (N, 2) in [0, 1].

    Returns:
        Colours, (N, 3) uint8.
    """
    height, width = texture.shape[:2]
    x = np.clip(uv[:, 0] * width - 0.5, 0, width - 1)
    y = np.clip((1.0 - uv[:, 1]) * height - 0.5, 0, height - 1)
    x0 = np.clip(np.floor(x), 0, max(width - 2, 0)).astype(np.int64)
    y0 = np.clip(np.floor(y), 0, max(height - 2, 0)).astype(np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    tex = texture.astype(np.float64)
    top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
    bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
    return np.clip(np.rint(top * (1 - fy) + bottom * fy), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Reading reconstruction folders


def _field(data: dict, key: str, path: Path) -> object:
    """The value at a dotted key of ``result.json``, or an error naming the file and key."""
    value: object = data
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ExportError(f"{path}: missing key '{key}'")
        value = value[part]
    return value


def _numbers(data: dict, key: str, path: Path, count: int) -> tuple[float, ...]:
    value = _field(data, key, path)
    items = value if isinstance(value, list) else [value]
    ok = len(items) == count and all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in items
    )
    if not ok:
        want = "a number" if count == 1 else f"a list of {count} numbers"
        raise ExportError(f"{path}: '{key}' must be {want}, got {value!r}")
    return tuple(float(x) for x in items)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ExportError(f"{path}: not found; expected a folder written by 'unsup3d reconstruct'")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExportError(f"{path}: not readable JSON ({err})") from err
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_depth(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ExportError(f"{path}: not found; the canonical depth map is needed for a mesh")
    try:
        depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ExportError(f"{path}: not a readable .npy array ({err})") from err
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
        raise ExportError(
            f"{path}: expected a 2-D numeric depth map, got {depth.dtype} {depth.shape}"
        )
    return depth


def load_record(folder: Path | str) -> ReconstructionRecord:
    """Read ``result.json`` and ``canonical_depth.npy`` of one reconstruction folder.

    Raises:
        ExportError: a file is missing or unreadable, or a key is missing or malformed (the
            message names the file and the key).
    """
    folder = Path(folder)
    path = folder / RESULT_FILE
    data = _read_json(path)
    (size,) = _numbers(data, "camera.image_size", path, 1)
    (fov_deg,) = _numbers(data, "camera.fov_deg", path, 1)
    if size != int(size) or size < 2 or not 0 < fov_deg < 180:
        raise ExportError(f"{path}: 'camera' needs image_size ≥ 2 and 0 < fov_deg < 180")
    camera = CameraInfo(fov_deg, int(size), *_numbers(data, "camera.rot_center_depth", path, 1))
    min_depth, max_depth = _numbers(data, "depth_range", path, 2)
    if not 0 < min_depth < max_depth:
        raise ExportError(f"{path}: 'depth_range' must be [min, max] with 0 < min < max")
    rx, ry, rz = _numbers(data, "view.rotation_deg", path, 3)
    tx, ty, tz = _numbers(data, "view.translation", path, 3)
    scale = 1.0  # results written before the model predicted a size have none
    if _field(data, "view", path).get("scale") is not None:
        (scale,) = _numbers(data, "view.scale", path, 1)
        if not scale > 0:
            raise ExportError(f"{path}: 'view.scale' must be > 0, got {scale}")
    border = _field(data, "border_depth", path)
    return ReconstructionRecord(
        name=folder.name,
        canonical_depth=_read_depth(folder / DEPTH_FILE),
        camera=camera,
        rotation_deg=(rx, ry, rz),
        translation=(tx, ty, tz),
        depth_range=(min_depth, max_depth),
        border_depth=None if border is None else _numbers(data, "border_depth", path, 1)[0],
        folder=folder,
        scale=scale,
    )


def load_texture(path: Path | str) -> np.ndarray:
    """An image file as RGB, (H, W, 3) uint8 (alpha dropped, grey expanded)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: not found; needed as the mesh texture")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as err:
        raise ExportError(f"{path}: not a readable image ({err})") from err


def find_records(sources: Sequence[Path | str]) -> list[Path]:
    """Reconstruction folders in ``sources``: each is one (with ``result.json``) or holds some.

    Raises:
        ExportError: a source is missing, not a folder, or has no ``result.json`` in it or in
            its immediate subfolders.
    """
    if not sources:
        raise ExportError("no source given; pass 'unsup3d reconstruct' output folders")
    found: dict[Path, None] = {}
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise ExportError(f"{path}: no such file or folder")
        if not path.is_dir():
            raise ExportError(
                f"{path}: not a folder; give 'unsup3d reconstruct' output folders, or images "
                "with --checkpoint"
            )
        if (path / RESULT_FILE).is_file():
            found.setdefault(path.resolve())
            continue
        children = sorted(p.parent for p in path.glob(f"*/{RESULT_FILE}") if p.is_file())
        if not children:
            raise ExportError(
                f"{path / RESULT_FILE}: not found, nor in any subfolder of {path}; expected "
                "output of 'unsup3d reconstruct'"
            )
        for child in children:
            found.setdefault(child.resolve())
    return list(found)


# --------------------------------------------------------------------------------------------
# Writers


def parse_formats(spec: str) -> tuple[str, ...]:
    """'obj', 'ply', 'glb', 'all' or a comma-separated list of them → the formats, in order."""
    names = [part.strip().lower() for part in spec.split(",") if part.strip()]
    if names == ["all"]:
        return FORMATS
    unknown = [name for name in names if name not in FORMATS]
    if unknown or not names:
        raise ValueError(
            f"unknown format {spec!r}; choose obj, ply, glb, all or a list like obj,glb"
        )
    return tuple(dict.fromkeys(names))


def output_files(out_dir: Path, name: str, formats: Sequence[str], texture: str) -> list[Path]:
    """Files :func:`export_record` writes for ``name`` and ``texture`` in each format.

    'obj' → ``<name>.obj``, ``<name>.mtl``, ``<name>_<texture>.png``; 'ply' → ``<name>.ply``;
    'glb' → ``<name>.glb`` (texture embedded).
    """
    files = []
    for fmt in formats:
        if fmt == "obj":
            files += [out_dir / f"{name}.obj", out_dir / f"{name}.mtl"]
            files.append(texture_path(out_dir, name, texture))
        elif fmt in FORMATS:
            files.append(out_dir / f"{name}.{fmt}")
        else:
            raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return files


def texture_path(out_dir: Path, name: str, texture: str) -> Path:
    """The PNG an OBJ's material points to: ``<out_dir>/<name>_<texture>.png``."""
    return out_dir / f"{name}_{texture}.png"


def write_obj(path: Path, mesh: Mesh, texture_file: str, header: str, lit: bool = True) -> Path:
    """Write an OBJ file and its material file.

    Args:
        path: the OBJ file.
        mesh: the mesh; one ``v``/``vt``/``vn`` per vertex, faces ``f i/i/i`` (1-based).
        texture_file: the texture's file name, relative to the OBJ's folder.
        header: a comment line (without '#') describing the mesh.
        lit: illumination model 1 (diffuse, for albedo) or 0 (colour as is, for shaded photos).

    Returns:
        The MTL path (``<stem>.mtl`` beside the OBJ).
    """
    mtl = path.parent / f"{path.stem}.mtl"
    mtl.write_text(
        f"# {header}\nnewmtl texture\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1.0\n"
        f"illum {1 if lit else 0}\nmap_Kd {texture_file}\n",
        encoding="utf-8",
    )
    with path.open("w", encoding="utf-8") as out:
        out.write(f"# {header}\nmtllib {mtl.name}\no {path.stem}\n")
        np.savetxt(out, mesh.vertices, fmt="v %.6f %.6f %.6f")
        np.savetxt(out, mesh.uv, fmt="vt %.6f %.6f")
        np.savetxt(out, mesh.normals, fmt="vn %.6f %.6f %.6f")
        out.write("usemtl texture\n")
        corners = np.repeat(mesh.faces + 1, 3, axis=1)  # (F, 9): i i i j j j k k k
        np.savetxt(out, corners, fmt="f %d/%d/%d %d/%d/%d %d/%d/%d")
    return mtl


def write_ply(path: Path, mesh: Mesh, colors: np.ndarray) -> None:
    """Write a binary PLY with vertex normals and RGB vertex colours ``colors`` (N, 3) uint8."""
    import trimesh  # noqa: PLC0415 (a slow import, only for PLY and GLB)

    shape = trimesh.Trimesh(
        vertices=mesh.vertices,
        faces=mesh.faces,
        vertex_normals=mesh.normals,
        vertex_colors=colors,
        process=False,
    )
    shape.export(path, file_type="ply")


def write_glb(path: Path, mesh: Mesh, texture: np.ndarray) -> None:
    """Write a binary glTF with the texture (H, W, 3) uint8 embedded, double-sided, matte."""
    import trimesh  # noqa: PLC0415 (a slow import, only for PLY and GLB)
    from trimesh.visual.material import PBRMaterial  # noqa: PLC0415

    material = PBRMaterial(
        baseColorTexture=Image.fromarray(np.ascontiguousarray(texture)),
        metallicFactor=0.0,
        roughnessFactor=1.0,
        doubleSided=True,
    )
    shape = trimesh.Trimesh(
        vertices=mesh.vertices,
        faces=mesh.faces,
        vertex_normals=mesh.normals,
        visual=trimesh.visual.TextureVisuals(uv=mesh.uv, material=material),
        process=False,
    )
    shape.export(path, file_type="glb")


def _header(record: ReconstructionRecord, options: MeshOptions) -> str:
    source = record.folder if record.folder is not None else record.name
    origin = "rotation pivot" if options.centre else "camera"
    return (
        f"unsup3d export of {source}: view={options.view}, texture={options.texture}; "
        f"axes x right, y up, z toward the viewer; camera units; origin at the {origin}"
    )


def export_record(
    record: ReconstructionRecord,
    texture: np.ndarray,
    out_dir: Path,
    name: str,
    formats: Sequence[str],
    options: MeshOptions | None = None,
) -> ExportedMesh:
    """Build the mesh of one reconstruction and write it in each format (overwriting).

    Args:
        record: the reconstruction (its arrays are not modified).
        texture: the RGB texture matching ``options.texture``, (H, W, 3) uint8.
        out_dir: output folder (created if needed).
        name: file stem.
        formats: some of 'obj', 'ply', 'glb'.
        options: mesh options.

    Returns:
        What was written.
    """
    options = options or MeshOptions()
    mesh = build_mesh(record, options)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = output_files(out_dir, name, formats, options.texture)
    header = _header(record, options)
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        if fmt == "obj":
            png = texture_path(out_dir, name, options.texture)
            Image.fromarray(np.ascontiguousarray(texture)).save(png)
            write_obj(path, mesh, png.name, header, lit=options.texture == "albedo")
        elif fmt == "ply":
            write_ply(path, mesh, sample_texture(texture, mesh.uv))
        else:
            write_glb(path, mesh, texture)
    source = record.folder
    return ExportedMesh(name, source, tuple(files), len(mesh.vertices), len(mesh.faces))


def unique_names(folders: Sequence[Path]) -> list[str]:
    """Output stems: folder names made unique with a numeric suffix (``face``, ``face_2``, ...).

    Whitespace becomes '_', since OBJ ``mtllib`` and MTL ``map_Kd`` names cannot hold spaces.
    """
    names: list[str] = []
    taken: set[str] = set()
    for folder in folders:
        base = "_".join(folder.name.split()) or "mesh"
        name, index = base, 1
        while name in taken:
            index += 1
            name = f"{base}_{index}"
        taken.add(name)
        names.append(name)
    return names


def export_folders(
    folders: Sequence[Path],
    out_dir: Path | str,
    formats: Sequence[str] = ("obj",),
    options: MeshOptions | None = None,
    force: bool = False,
) -> list[ExportedMesh]:
    """Export every reconstruction folder to ``out_dir/<name>.<format>``.

    Every folder is read and checked, and every output path checked, before anything is
    written.

    Raises:
        ExportError: a folder is unusable, its texture file is missing, or an output file
            exists and ``force`` is False.
    """
    options = options or MeshOptions()
    out_dir = Path(out_dir)
    folders = [Path(folder) for folder in folders]
    for folder in folders:  # check all first; records are read again below to keep memory flat
        _check_record(load_record(folder))
        texture_file = folder / TEXTURE_FILES[options.texture]
        if not texture_file.is_file():
            raise ExportError(f"{texture_file}: not found; needed for texture={options.texture}")
    names = unique_names(folders)
    if not force:
        for name in names:
            for path in output_files(out_dir, name, formats, options.texture):
                if path.exists():
                    raise ExportError(f"{path}: already exists; use --force to overwrite")
    exported = []
    for folder, name in zip(folders, names, strict=True):
        texture = load_texture(folder / TEXTURE_FILES[options.texture])
        exported.append(
            export_record(load_record(folder), texture, out_dir, name, formats, options)
        )
    return exported
