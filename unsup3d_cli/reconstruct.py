"""From photos to per-image folders of depth, normals, albedo, light, relit and rotated views.

The pipeline streams: a data loader (worker processes, bounded prefetch) reads and crops the
photos, the model runs on batches, and a small thread pool writes each image's folder, at
most two batches behind, so memory stays flat however many images there are. Photos are
decoded and resized by :mod:`unsup3d_cli.images`, as the training and evaluation datasets read
their images, so a file reaches the model as the same tensor here as in training.

Per image, ``<out>/<name>/`` holds the files listed in the contract (input crop,
reconstruction, canonical albedo/shading/image/depth/normals, confidence maps, view depth and
mask, relit views, ``result.json`` and, when animating, ``turntable.gif``). A folder is first
written as ``.<name>.partial`` and renamed when complete, so an interrupted run never leaves a
half-written folder under its final name. ``<out>/summary.json`` lists what was skipped and
why, and ``<out>/index.html`` is the gallery (:mod:`unsup3d_cli.gallery`).
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from unsup3d_cli.facecrop import (
    Box,
    FaceDetector,
    center_crop_box,
    crop_with_edge_padding,
    face_crop_box,
)
from unsup3d_cli.gallery import write_gallery
from unsup3d_cli.geometry import euler_to_rotation
from unsup3d_cli.images import IMAGE_EXTENSIONS, DataError, DecodedImage, read_image, resize_image
from unsup3d_cli.model import Decomposition, Reconstruction, Unsup3D, diffuse_shading
from unsup3d_cli.pngio import write_png
from unsup3d_cli.refine import refine
from unsup3d_cli.render import lambertian_shading, sample_canonical

log = logging.getLogger(__name__)

IMAGE_SIZE = 64
"""Side of the crop the model sees, in pixels."""
MIN_SIDE = 16
"""Photos with a side shorter than this many pixels are skipped."""
WORK_SIDE = 2048
"""Large photos are decoded (JPEG) or reduced to about this longer side before cropping."""
DEPTH_PNG_MAX = 65535
"""Code of the near end of the model's depth range in ``canonical_depth.png`` (see
:func:`depth_png_codes`)."""
RELIGHT_DIRECTIONS = {"left": (1.0, 0.0, 1.0), "right": (-1.0, 0.0, 1.0), "above": (0.0, 1.0, 1.0)}
"""Directions (normalised on use) of the relighting lights; +x lights the image's left side."""
RELIGHT_AMBIENT = 0.3
"""Ambient intensity of the relit views."""
RELIGHT_DIFFUSE = 0.7
"""Diffuse intensity of the relit views."""
TURNTABLE_YAW_DEG = 60.0
"""The turntable swings the surface from −this to +this yaw and back."""
TURNTABLE_STEPS = 20
"""Frames per swing of the turntable (the GIF has twice as many)."""
TURNTABLE_FRAME_MS = 50
"""Duration of one turntable frame in the GIF, in milliseconds."""
FACE_MODEL_WORDS = ("face", "celeba")
"""A checkpoint whose run name or data root contains one of these is treated as a face model."""
WRITE_AHEAD_BATCHES = 2
"""Batches whose files may still be being written while the model runs on the next one."""
WRITER_THREADS = 2
"""Threads writing the output files (PNG encoding and zlib release the GIL)."""


@dataclass(frozen=True)
class ReconstructOptions:
    """How ``reconstruct`` runs."""

    detect_faces: bool | None = None
    """Crop the largest face of each photo (else the centred square). None lets
    ``api.reconstruct`` decide from the checkpoint (on for face models, see
    :func:`is_face_model`); :func:`reconstruct_images` reads None as off."""
    batch_size: int = 32
    """Images per model batch."""
    refine_steps: int = 0
    """Test-time refinement steps per batch (0: off)."""
    refine_residuals: bool = False
    """Let refinement also fit small depth and albedo residuals."""
    animate: bool = False
    """Write a ±60° turntable GIF of the textured surface per image."""
    force: bool = False
    """Overwrite existing output folders (else they are left alone and counted as existing)."""
    strict: bool = False
    """Stop at the first unreadable or non-image input instead of skipping it."""
    num_workers: int | None = None
    """Loader worker processes; None picks min(2, CPUs), and 0 for a single batch."""
    threads: int | None = None
    """CPU threads of the model while it runs (None: torch's setting, by default every core).
    On a machine busy with other work, fewer threads than cores can be faster."""

    def __post_init__(self) -> None:
        """Reject impossible values (ValueError naming the option)."""
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.refine_steps < 0:
            raise ValueError(f"refine steps must be >= 0, got {self.refine_steps}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class Skipped:
    """An input that was not reconstructed, and why (one line naming the file)."""

    path: str
    reason: str


@dataclass(frozen=True)
class ReconstructSummary:
    """What a ``reconstruct`` run did; also written to ``<out>/summary.json``."""

    out_dir: Path
    gallery: Path
    found: int
    """Image files found among the inputs."""
    processed: int
    """Images reconstructed by this run."""
    existing: int
    """Images whose output folder already existed (left alone without ``force``)."""
    skipped: tuple[Skipped, ...]
    """Inputs that could not be used: missing, not images, unreadable, too small."""
    warnings: tuple[str, ...]
    """One-line notes about images that were processed (no face found, very large, ...)."""
    seconds: float
    """Wall time of the batched part of the run."""

    @property
    def images_per_s(self) -> float:
        """Processed images per second of :attr:`seconds`."""
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "out_dir": str(self.out_dir),
            "gallery": str(self.gallery),
            "found": self.found,
            "processed": self.processed,
            "existing": self.existing,
            "skipped_count": len(self.skipped),
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_s, 2),
            "skipped": [asdict(s) for s in self.skipped],
            "warnings": list(self.warnings),
        }


def is_face_model(config: Any) -> bool:
    """Whether a checkpoint's experiment config looks like a face model (name or data root)."""
    text = f"{getattr(config, 'name', '')} {getattr(getattr(config, 'data', None), 'root', '')}"
    return any(word in text.lower() for word in FACE_MODEL_WORDS)


# --------------------------------------------------------------------------------------------
# Finding the inputs


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _inside(path: Path, folder: Path | None) -> bool:
    """Whether ``path`` (links followed) lies in ``folder`` (a resolved path, or None)."""
    return folder is not None and path.resolve().is_relative_to(folder)


def _link_problem(path: Path) -> str | None:
    """Why a symbolic link cannot be followed (a loop, a missing target), or None."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "broken symbolic link (its target does not exist)"
        return f"cannot follow the symbolic link ({exc.strerror})"
    return None


def _not_an_image(path: Path) -> Skipped:
    return Skipped(str(path), f"not an image file ({path.suffix or 'no suffix'})")


def _scan_folder(folder: Path, exclude: Path | None) -> tuple[list[Path], list[Skipped]]:
    """Image files (sorted) and unusable files under a folder, recursively; hidden ignored."""
    images, others = [], []
    for path in sorted(folder.rglob("*")):
        if _is_hidden(path, folder):
            continue
        problem = _link_problem(path)
        if problem is not None:
            if not _inside(path.parent, exclude):
                others.append(Skipped(str(path), problem))
        elif not path.is_file() or _inside(path, exclude):
            continue
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            images.append(path)
        else:
            others.append(_not_an_image(path))
    if not images:
        others.append(Skipped(str(folder), "no image files in this folder"))
    return images, others


def discover_images(
    inputs: Sequence[Path | str], exclude: Path | None = None
) -> tuple[list[Path], list[Skipped]]:
    """Expand files and folders (recursively) into image files, in order, without repeats.

    Args:
        inputs: image files and folders.
        exclude: a folder whose files are never inputs (the output folder).

    Returns:
        The image files, and the inputs that are missing, not images, symbolic links that
        cannot be followed (loops, missing targets), or empty folders.
    """
    exclude = exclude.resolve() if exclude is not None else None
    images: list[Path] = []
    skipped: list[Skipped] = []
    for item in map(Path, inputs):
        problem = _link_problem(item)
        if problem is not None:
            skipped.append(Skipped(str(item), problem))
        elif item.is_dir():
            found, others = _scan_folder(item, exclude)
            images.extend(found)
            skipped.extend(others)
        elif not item.exists():
            skipped.append(Skipped(str(item), "no such file or folder"))
        elif item.suffix.lower() in IMAGE_EXTENSIONS:
            images.append(item)
        else:
            skipped.append(_not_an_image(item))
    seen: set[Path] = set()
    unique = [p for p in images if not (p.resolve() in seen or seen.add(p.resolve()))]
    return unique, skipped


def output_names(paths: Sequence[Path]) -> list[str]:
    """A folder name per image: its stem, with ``_2``, ``_3``… on (case-insensitive) repeats."""
    taken: set[str] = set()
    names = []
    for path in paths:
        stem = path.stem.strip() or "image"
        name, number = stem, 1
        while name.lower() in taken:
            number += 1
            name = f"{stem}_{number}"
        taken.add(name.lower())
        names.append(name)
    return names


# --------------------------------------------------------------------------------------------
# Reading and cropping one photo


def read_photo(path: Path, work_side: int = WORK_SIDE) -> tuple[np.ndarray, float, list[str]]:
    """Decode a photo of any size and format to upright RGB, and check its size.

    Decoding is :func:`unsup3d_cli.images.read_image`'s, as for training. Photos longer than
    ``work_side`` are decoded at reduced size (JPEG) or reduced.

    Args:
        path: the image file.
        work_side: longer side above which the photo is reduced by an integer factor.

    Returns:
        The photo (H, W, 3) float32 in [0, 1]; original pixels per returned pixel; one-line
        notes (a very large photo, an animated one).

    Raises:
        DataError: unreadable, truncated, not an image, or too small (names the file).
    """
    decoded = read_image(path, max_side=work_side)
    return decoded.pixels, decoded.scale, _photo_notes(path, decoded)


def _photo_notes(path: Path, decoded: DecodedImage) -> list[str]:
    """Notes about a decoded photo; DataError if it is too small to use."""
    width, height = decoded.file_size
    if min(width, height) < MIN_SIDE:
        raise DataError(
            f"{path}: {width}×{height} px is too small (need at least {MIN_SIDE} px per side)"
        )
    notes = []
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        notes.append(
            f"{path}: {width}×{height} px ({width * height / 1e6:.0f} Mpx) is very large; "
            "it is read at reduced size"
        )
    if decoded.frames > 1:
        notes.append(
            f"{path}: {decoded.frames} frames (an animated image or a multi-page file); "
            "the first one is used"
        )
    return notes


@dataclass(frozen=True)
class PreparedPhoto:
    """One photo cropped for the model, or the reason it could not be."""

    index: int
    image: np.ndarray | None = None
    """The crop resized to (3, S, S), float32 in [0, 1]. A numpy array rather than a tensor:
    loader workers pass it back pickled, where a tensor would cost a shared-memory segment."""
    crop_method: str = "full"
    """'face', 'center' or 'full'."""
    box: tuple[int, int, int, int] = (0, 0, 0, 0)
    """The crop in the upright photo's pixels: (top, left, height, width)."""
    notes: tuple[str, ...] = ()
    error: str | None = None


def prepare_photo(
    path: Path, index: int, size: int = IMAGE_SIZE, detector: FaceDetector | None = None
) -> PreparedPhoto:
    """Read a photo and crop it: the largest face, or else the centred square.

    Raises:
        DataError: the photo cannot be used (the message names the file).
    """
    rgb, scale, notes = read_photo(path)
    height, width = rgb.shape[:2]
    method, box = "full", Box(0, 0, height, width)
    if detector is not None:
        face = detector.largest_face(rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
        if face is None:
            notes.append(f"{path}: no face found; using a centre crop")
            method, box = "center", center_crop_box(height, width)
        else:
            method, box = "face", face_crop_box(face)
    elif height != width:
        method, box = "center", center_crop_box(height, width)
    crop = rgb if method == "full" else crop_with_edge_padding(rgb, box)
    full_box = box.scaled(scale) if scale != 1 else box
    image = resize_image(crop, size).numpy()  # (3, S, S), as data.load_image resizes
    return PreparedPhoto(index, image, method, tuple(full_box.as_list()), tuple(notes))


class PhotoDataset(Dataset):
    """Photos → :class:`PreparedPhoto` items; unusable files give an item with ``error``."""

    def __init__(self, paths: Sequence[Path], detect_faces: bool, size: int = IMAGE_SIZE) -> None:
        self.paths = list(paths)
        self.size = size
        self.detector = FaceDetector() if detect_faces else None

    def __len__(self) -> int:
        """Number of photos."""
        return len(self.paths)

    def __getitem__(self, index: int) -> PreparedPhoto:
        """Read and crop photo ``index``."""
        try:
            return prepare_photo(self.paths[index], index, self.size, self.detector)
        except DataError as exc:
            return PreparedPhoto(index, error=str(exc))


def _as_list(items: list[PreparedPhoto]) -> list[PreparedPhoto]:
    return items


# --------------------------------------------------------------------------------------------
# Inference


def relight(model: Unsup3D, decomp: Decomposition, recon: Reconstruction) -> dict[str, Tensor]:
    """The canonical albedo re-shaded by each of :data:`RELIGHT_DIRECTIONS`, in the input view.

    Returns:
        Per direction name, images (B, 3, H, W) in [0, 1]; mid-grey where the surface is absent.
    """
    batch = decomp.depth.shape[0]
    normal = recon.canonical_normal[:batch]  # (B, H, W, 3)
    view_mask = recon.view_mask[:batch]  # (B, 1, H, W)
    if recon.grid is not None:
        grid = recon.grid[:batch]  # (B, H, W, 2)
    else:
        rotation = euler_to_rotation(decomp.view_angles)  # (B, 3, 3)
        grid = model.renderer.inverse_grid(
            recon.view_depth[:batch], rotation, decomp.view_translation, decomp.view_scale
        )
    ambient = decomp.ambient.new_full((batch,), RELIGHT_AMBIENT)
    diffuse = decomp.ambient.new_full((batch,), RELIGHT_DIFFUSE)
    lit = []
    for direction in RELIGHT_DIRECTIONS.values():
        light = decomp.depth.new_tensor(direction)
        light = (light / light.norm()).expand(batch, 3)
        lit.append(decomp.albedo * lambertian_shading(normal, light, ambient, diffuse))
    count = len(lit)
    canonical = torch.cat(lit).clamp(0.0, 1.0)  # (n·B, 3, H, W)
    warped = sample_canonical(canonical - 0.5, grid.repeat(count, 1, 1, 1)) + 0.5
    mask = view_mask.repeat(count, 1, 1, 1)
    views = (warped * mask + 0.5 * (1 - mask)).split(batch)
    return dict(zip(RELIGHT_DIRECTIONS, views, strict=True))


def turntable(model: Unsup3D, decomp: Decomposition, recon: Reconstruction) -> Tensor:
    """Frames of the textured surface swinging ±:data:`TURNTABLE_YAW_DEG` and back.

    Returns:
        Frames (B, T, 3, H, W) in [0, 1], T = 2 · :data:`TURNTABLE_STEPS`, white background.
    """
    batch = decomp.depth.shape[0]
    texture = recon.canonical_image[:batch].clamp(0.0, 1.0)  # (B, 3, H, W)
    sweep = np.linspace(-TURNTABLE_YAW_DEG, TURNTABLE_YAW_DEG, TURNTABLE_STEPS + 1)
    yaws = [*sweep[:-1], *sweep[:0:-1]]  # there and back: 2·STEPS frames, looping
    return model.renderer.turntable(texture, decomp.depth, yaws).clamp(0.0, 1.0)


def _uint8(x: Tensor) -> np.ndarray:
    """(B, C, H, W) or (B, T, C, H, W) in [0, 1] → uint8 channel-last numpy, C=1 squeezed."""
    out = (x.clamp(0.0, 1.0) * 255).round().to(torch.uint8).movedim(-3, -1)
    if out.shape[-1] == 1:
        out = out[..., 0]
    return out.cpu().numpy()


def model_depth_range(model: Unsup3D) -> tuple[float, float]:
    """(min_depth, max_depth) of the model's canonical depth, as result.json records it."""
    return model.cfg.min_depth, model.cfg.max_depth


def depth_png_codes(depth: Tensor, depth_range: tuple[float, float]) -> np.ndarray:
    """Depth → the 16-bit codes of ``canonical_depth.png``, a picture of the depth for viewing.

    The model's depth range fills the 16 bits, far (the background side) black and near white:
    ``v = round(65535 · (max_depth − d) / (max_depth − min_depth))``, clipped to [0, 65535].
    Decode with ``d = max_depth − (max_depth − min_depth) · v / 65535``, taking ``depth_range``
    from the image's result.json; ``canonical_depth.npy`` holds the exact values.

    Args:
        depth: depth in world units, shape (B, H, W).
        depth_range: (min_depth, max_depth) of the model (:func:`model_depth_range`).

    Returns:
        uint16 codes of shape (B, H, W), on the CPU.
    """
    near, far = depth_range
    codes = (far - depth.float()) / (far - near) * DEPTH_PNG_MAX  # (B, H, W)
    codes = codes.clamp(0, DEPTH_PNG_MAX).round()
    return codes.to(torch.int32).cpu().numpy().astype(np.uint16)


def output_maps(
    model: Unsup3D, images: Tensor, decomp: Decomposition, recon: Reconstruction
) -> dict[str, np.ndarray]:
    """The arrays of a batch to write, on the CPU, keyed by output file name.

    Args:
        model: the model (its renderer relights).
        images: the inputs (B, 3, H, W).
        decomp: the model's (or the refined) prediction.
        recon: its reconstruction (2B-batched).

    Returns:
        Arrays whose first axis is B: uint8 images (B, H, W[, 3]), uint16 depth (B, H, W),
        float32 depth maps (B, H, W).
    """
    batch = images.shape[0]
    depth = decomp.depth[:, 0]  # (B, H, W)
    maps = {
        "input.png": _uint8(images),
        "reconstruction.png": _uint8(recon.image[:batch]),
        "canonical_albedo.png": _uint8(decomp.albedo),
        "canonical_shading.png": _uint8(diffuse_shading(decomp, recon)),
        "canonical_image.png": _uint8(recon.canonical_image[:batch]),
        "canonical_depth.png": depth_png_codes(depth, model_depth_range(model)),
        "canonical_depth.npy": depth.float().cpu().numpy(),
        "view_depth.npy": recon.view_depth[:batch, 0].float().cpu().numpy(),
        "view_mask.png": _uint8(recon.view_mask[:batch]),
        "canonical_normal.png": _uint8(recon.canonical_normal[:batch].movedim(-1, 1) / 2 + 0.5),
    }
    if decomp.confidence is not None:
        certainty = 1 / (1 + decomp.confidence)  # (B, 2, H, W)
        maps["confidence.png"] = _uint8(certainty[:, :1])
        maps["confidence_flip.png"] = _uint8(certainty[:, 1:2])
    for name, view in relight(model, decomp, recon).items():
        maps[f"relit_{name}.png"] = _uint8(view)
    return maps


def reconstruction_error(image: Tensor, recon: Reconstruction) -> Tensor:
    """Per-image mean absolute error of the un-flipped reconstruction over its valid pixels.

    The difference between ``reconstruction.png`` and ``input.png`` where the surface covers
    the input view, averaged over the channels, in [0, 1] intensity units.

    Args:
        image: input images (B, 3, H, W) in [0, 1].
        recon: their reconstruction (B- or 2B-batched; the first B rows are used).

    Returns:
        Shape (B,).
    """
    batch = image.shape[0]
    weight = recon.view_mask[:batch]  # (B, 1, H, W)
    diff = (recon.image[:batch] - image).abs().mean(dim=1, keepdim=True)  # (B, 1, H, W)
    return (diff * weight).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp(min=1.0)


def _parameters(
    decomp: Decomposition, errors: tuple[Tensor, Tensor | None], objective: tuple | None
) -> list[dict]:
    """The per-image viewpoint, light and errors for result.json."""
    angles = torch.rad2deg(decomp.view_angles).tolist()
    translation, direction = decomp.view_translation.tolist(), decomp.light_direction.tolist()
    ambient, diffuse = decomp.ambient.tolist(), decomp.diffuse.tolist()
    scale = [1.0] * len(angles) if decomp.view_scale is None else decomp.view_scale.tolist()
    before = errors[0].tolist()
    after = errors[1].tolist() if errors[1] is not None else [None] * len(before)
    rows = []
    for k in range(len(before)):
        row = {
            "view": {"rotation_deg": angles[k], "translation": translation[k], "scale": scale[k]},
            "light": {"ambient": ambient[k], "diffuse": diffuse[k], "direction": direction[k]},
            "photometric_error": {"before": before[k], "after": after[k]},
        }
        if objective is not None:
            row["refinement_objective"] = {
                "before": objective[0][k].item(), "after": objective[1][k].item()
            }  # fmt: skip
        rows.append(row)
    return rows


def infer_batch(
    model: Unsup3D, images: Tensor, options: ReconstructOptions
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Run the model (and refinement) on a batch and gather everything to write.

    Args:
        model: the model, in eval mode, on the images' device.
        images: (B, 3, 64, 64) in [0, 1].
        options: refinement and animation settings.

    Returns:
        Arrays keyed by output file name (first axis B), and per-image result.json fields.
    """
    after = objective = None
    with torch.inference_mode():
        decomp = model(images)
        recon = model.reconstruct(decomp, mirror=False)  # the mirrored twin is not written
        before = reconstruction_error(images, recon)
    if options.refine_steps > 0:
        decomp, *objective = refine(
            model, images, decomp, options.refine_steps, residuals=options.refine_residuals
        )
    with torch.inference_mode():
        if options.refine_steps > 0:
            recon = model.reconstruct(decomp, mirror=False)
            after = reconstruction_error(images, recon)
        maps = output_maps(model, images, decomp, recon)
        if options.animate:
            maps["turntable.gif"] = _uint8(turntable(model, decomp, recon))
    return maps, _parameters(decomp, (before, after), objective)


# --------------------------------------------------------------------------------------------
# Writing


def _write_file(folder: Path, name: str, value: Any) -> None:
    path = folder / name
    if name.endswith(".npy"):
        np.save(path, value)
    elif name.endswith(".gif"):
        import imageio.v3 as iio  # noqa: PLC0415 (only for --animate)

        iio.imwrite(path, value, extension=".gif", duration=TURNTABLE_FRAME_MS, loop=0)
    elif name.endswith(".png"):
        write_png(path, value)
    else:
        raise ValueError(f"no writer for output file {name!r}")


def write_image_folder(folder: Path, files: dict[str, Any], result: dict) -> None:
    """Write one image's files as ``.<name>.partial`` and rename it to ``folder`` when done.

    An existing ``folder`` is replaced (the caller decides whether that is allowed).
    """
    partial = folder.with_name(f".{folder.name}.partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    for name, value in files.items():
        _write_file(partial, name, value)
    (partial / "result.json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(partial, folder)


@dataclass
class _Run:
    """Mutable bookkeeping of one run (counts, skips, pending writes)."""

    out_dir: Path
    checkpoint: str
    camera: dict
    depth: dict
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    processed: int = 0
    pending: deque = field(default_factory=deque)
    precision: str = "fp32"


def _submit_batch(run: _Run, pool: ThreadPoolExecutor, items: list, maps: dict, rows: list) -> None:
    """Queue the writes of a batch's images, waiting for older ones past two batches."""
    for k, (photo, path, name) in enumerate(items):
        result = {
            "source": str(path),
            "checkpoint": run.checkpoint,
            "crop": {"method": photo.crop_method, "box": list(photo.box)},
            **{key: rows[k][key] for key in ("view", "light")},
            "camera": run.camera,
            **run.depth,
            "photometric_error": rows[k]["photometric_error"],
        }
        if "refinement_objective" in rows[k]:
            result["refinement_objective"] = rows[k]["refinement_objective"]
        files = {name_: array[k] for name_, array in maps.items()}
        folder = run.out_dir / name
        run.pending.append(pool.submit(write_image_folder, folder, files, round_floats(result)))
    while len(run.pending) > WRITE_AHEAD_BATCHES * max(1, len(items)):
        _finish(run.pending.popleft())
    run.processed += len(items)


def _finish(future: Future) -> None:
    """Wait for one write; a failed write is a user-facing error (disk full, permissions)."""
    try:
        future.result()
    except OSError as exc:
        raise DataError(f"cannot write the outputs: {exc}") from exc


# --------------------------------------------------------------------------------------------
# The run


def _loader(dataset: PhotoDataset, options: ReconstructOptions) -> DataLoader:
    workers = options.num_workers
    if workers is None:
        workers = 0 if len(dataset) <= options.batch_size else min(2, os.cpu_count() or 1)
    return DataLoader(
        dataset,
        batch_size=options.batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_as_list,
        prefetch_factor=2 if workers > 0 else None,
    )


def _usable(
    run: _Run, photos: list[PreparedPhoto], paths: list[Path], strict: bool
) -> list[PreparedPhoto]:
    """The photos that could be read; the others are logged and recorded (fatal if strict)."""
    good = []
    for photo in photos:
        for note in photo.notes:
            log.warning(note)
            run.notes.append(note)
        if photo.error is None:
            good.append(photo)
            continue
        if strict:
            raise DataError(f"{photo.error} (--strict)")
        log.warning("skipped %s", photo.error)
        path = str(paths[photo.index])
        run.skipped.append(Skipped(path, photo.error.removeprefix(f"{path}: ")))
    return good


def _run_batches(
    run: _Run, model: Unsup3D, todo: list[tuple[Path, str]], options: ReconstructOptions
) -> None:
    """Stream the photos through the model and the writers, with a progress bar."""
    device = next(model.parameters()).device
    paths = [path for path, _ in todo]
    loader = iter(_loader(PhotoDataset(paths, options.detect_faces), options))
    bar = tqdm(total=len(todo), unit="img", dynamic_ncols=True, disable=None, leave=False)
    with ThreadPoolExecutor(WRITER_THREADS) as pool, _model_threads(options.threads):
        try:
            for photos in loader:
                good = _usable(run, photos, paths, options.strict)
                bar.update(len(photos))
                if not good:
                    continue
                images = torch.from_numpy(np.stack([p.image for p in good])).to(device)
                maps, rows = infer_batch(model, images, options)
                items = [(p, *todo[p.index]) for p in good]
                _submit_batch(run, pool, items, maps, rows)
            while run.pending:
                _finish(run.pending.popleft())
        finally:
            for future in run.pending:
                future.cancel()
            bar.close()


@contextmanager
def _model_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch CPU threads (None: leave torch's setting alone)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _plan(paths: list[Path], out_dir: Path, force: bool) -> tuple[list[tuple[Path, str]], int]:
    """(photo, folder name) pairs to do, and how many are skipped as already done."""
    todo, existing = [], 0
    for path, name in zip(paths, output_names(paths), strict=True):
        if not force and (out_dir / name).exists():
            existing += 1
        else:
            todo.append((path, name))
    return todo, existing


def _nothing_usable(found: int, skipped: list[Skipped], summary: Path | None) -> DataError:
    """The one-line error when no input could be used (naming the file if there is one)."""
    if not skipped:
        return DataError("no input image given")
    first = f"{skipped[0].path}: {skipped[0].reason}"
    if len(skipped) == 1:
        return DataError(first)
    where = f"; all listed in {summary}" if summary is not None else ""
    return DataError(
        f"no image could be reconstructed ({found} image files, {len(skipped)} inputs skipped; "
        f"first: {first}){where}"
    )


def _summarise(run: _Run, found: int, existing: int, seconds: float) -> ReconstructSummary:
    gallery = write_gallery(run.out_dir)
    summary = ReconstructSummary(
        out_dir=run.out_dir, gallery=gallery, found=found, processed=run.processed,
        existing=existing, skipped=tuple(run.skipped), warnings=tuple(run.notes), seconds=seconds,
    )  # fmt: skip
    text = json.dumps(
        {"checkpoint": run.checkpoint, "precision": run.precision, **summary.to_json()},
        indent=2,
        ensure_ascii=False,
    )
    (run.out_dir / "summary.json").write_text(text + "\n", encoding="utf-8")
    return summary


def reconstruct_images(
    model: Unsup3D,
    inputs: Sequence[Path | str],
    out_dir: Path | str,
    options: ReconstructOptions,
    *,
    checkpoint: str = "",
    renderer_cfg: Any = None,
    notes: Sequence[str] = (),
) -> ReconstructSummary:
    """Reconstruct every image among ``inputs`` into ``out_dir`` (see the module docstring).

    Args:
        model: the model, in eval mode, on the device to use.
        inputs: image files and folders (searched recursively).
        out_dir: the output folder (created).
        options: how to run.
        checkpoint: recorded in each result.json.
        renderer_cfg: the renderer settings, for result.json's camera (default: the model's).
        notes: remarks about the model for the summary's warnings (e.g. which preset an
            original checkpoint was read with).

    Returns:
        The :class:`ReconstructSummary`, also written to ``summary.json``.

    Raises:
        DataError: no input image at all, nothing readable, a skipped input with ``strict``,
            or outputs that cannot be written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"output folder {out_dir} exists and is not a folder")
    paths, skipped = discover_images(inputs, exclude=out_dir)
    if options.strict and skipped:
        raise DataError(f"{skipped[0].path}: {skipped[0].reason} (--strict)")
    if not paths:
        raise _nothing_usable(0, skipped, None)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo, existing = _plan(paths, out_dir, options.force)
    run = _Run(out_dir, checkpoint, _camera(model, renderer_cfg), _depth_fields(model), skipped,
               notes=list(notes), precision=model.precision)  # fmt: skip
    if model.confidence_net is None:
        run.notes.append(
            "the model has no confidence network (an original checkpoint without netC, or "
            "model.use_confidence false): no confidence maps are written"
        )
    for note in run.notes:
        log.warning("%s", note)
    for entry in skipped:
        log.warning("skipped %s: %s", entry.path, entry.reason)
    start = time.perf_counter()
    _run_batches(run, model, todo, options)
    summary = _summarise(run, len(paths), existing, time.perf_counter() - start)
    if summary.processed == 0 and existing == 0:
        raise _nothing_usable(len(paths), list(summary.skipped), out_dir / "summary.json")
    return summary


def _camera(model: Unsup3D, renderer_cfg: Any) -> dict:
    cfg = renderer_cfg if renderer_cfg is not None else model.renderer.cfg
    return {
        "fov_deg": cfg.fov_deg,
        "image_size": IMAGE_SIZE,
        "rot_center_depth": cfg.rot_center_depth,
    }


def _depth_fields(model: Unsup3D) -> dict:
    return {
        "depth_range": list(model_depth_range(model)),
        "border_depth": model.border_depth,
        "confidence_maps": model.confidence_net is not None,
    }


def round_floats(value: Any, digits: int = 6) -> Any:
    """Floats in nested lists/dicts rounded (for compact JSON); non-finite become None."""
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [round_floats(v, digits) for v in value]
    return value
