"""Writing a synthetic-face dataset in the synface layout (``unsup3d synth``).

Two generators (*styles*) write the same layout:

* ``heightfield`` (:mod:`unsup3d_cli.synthetic`, the default for now): depth-map faces posed and
  drawn by the model's own renderer; fast (a few ms per face), used by quick tests and demos.
* ``mesh`` (:mod:`unsup3d_cli.synth_mesh`): closed triangle-mesh heads with hair and neck, drawn
  by an independent supersampled rasterizer with a fill light, specular highlights, gamma and
  loose framing (no code shared with the model's renderer); about 0.1 s per 64×64 face per
  worker.

Layout of ``OUT_DIR``::

    dataset.json                      style, generator version and config, seed, counts, split,
                                      camera, encoding
    {train,val,test}/meta.jsonl       one JSON object per image, in index order
    {train,val,test}/image/NNNNNN_image.png   RGB 8-bit
    {train,val,test}/depth/NNNNNN_depth.png   16-bit grey, v = 65535·(1.1 − d)/0.2 (0 = background)

``NNNNNN`` is the global sample index: the first ``train`` indices go to train, the next to
val, the rest to test. Sample ``i`` is :func:`unsup3d_cli.synthetic.sample_face` (heightfield)
or :func:`unsup3d_cli.synth_mesh.sample_mesh_face` (mesh) of ``(seed, i)``, so the bytes depend
on (seed, num, image size, split, style) only, never on the number of workers or the batch
size. Every worker process (and this process, while it renders) runs torch on one thread.
Files are written into a hidden ``.OUT_DIR.partial`` folder next to ``OUT_DIR`` and moved into
place only when everything is written. A foreground pixel's depth code is at least 1, so the
file's mask (v > 0) is exactly the generator's.

A ``meta.jsonl`` line of either style holds ``index``, ``image`` and ``depth`` (paths relative
to the split), ``rotation`` (3×3, canonical → view, ``R = Rz·Ry·Rx``), ``view_angles_deg`` and
``view_angles_rad`` (``[rx, ry, rz]`` = pitch, yaw, roll), ``translation`` (``P_view =
R (P − c) + c + t`` about the pivot c), ``light`` (``ambient``, ``diffuse``, ``direction`` in
the canonical frame as the model predicts it, ``direction_view`` = R·direction, ``specular``,
``shininess``), ``background`` (its kind), ``foreground_fraction`` and ``identity`` (the shape
parameters). A heightfield line adds ``asymmetry`` (the ``expressions`` and ``perturbations``
applied, empty lists when none). A mesh line adds to ``light`` the fill light (``fill``,
``fill_direction``, ``fill_direction_view``, ``fill_tint``) and holds ``face_fraction`` (of the
image covered by the head, hair included, neck excluded), ``face_fraction_target``,
``head_scale``, ``expression`` (per-side amounts), ``colours``, ``hair`` (null when bald) and
``neck``.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from unsup3d_cli.data import DEPTH_FAR, DEPTH_RANGE, SPLITS, DataError
from unsup3d_cli.pngio import write_png
from unsup3d_cli.synth_mesh import (
    MESH_GENERATOR_VERSION,
    MeshSynthBatch,
    MeshSynthConfig,
    synthesize_mesh,
)
from unsup3d_cli.synthetic import (
    BACKGROUND_DEPTH,
    GENERATOR_VERSION,
    SHAPE_RANGES,
    SynthBatch,
    SynthConfig,
    synthesize,
)

DEPTH_CODE_MAX = 65535
"""Largest 16-bit depth code (the nearest depth, DEPTH_FAR − DEPTH_RANGE)."""
PNG_COMPRESS_LEVEL = 6
"""zlib level of every PNG written (fixed, so the bytes are reproducible)."""
META_FILE = "meta.jsonl"
INFO_FILE = "dataset.json"
_DECIMALS = 8
STYLES = ("heightfield", "mesh")
"""Face generators: :mod:`unsup3d_cli.synthetic` and :mod:`unsup3d_cli.synth_mesh`."""
DEFAULT_STYLE = "mesh"
"""The style written when none is asked for: the generator that shares no code with the model."""
_VERSIONS = {"heightfield": GENERATOR_VERSION, "mesh": MESH_GENERATOR_VERSION}
_BATCH_SIZES = {"heightfield": 32, "mesh": 8}
"""Faces per chunk of work when none is asked for (a mesh face takes ~15× longer)."""

_SPLIT_SUM_TOLERANCE = 1e-6
"""How far the --split fractions' sum may be from 1 (decimal rounding)."""

GeneratorConfig = SynthConfig | MeshSynthConfig


class SynthError(DataError):
    """A synth request that cannot be carried out (the message names the option or folder)."""


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`write_dataset` wrote."""

    out_dir: Path
    counts: dict[str, int]
    seconds: float
    workers: int
    style: str


@dataclass(frozen=True)
class _Chunk:
    """One unit of work: samples ``start .. stop − 1`` of one split."""

    folder: Path
    split: str
    start: int
    stop: int
    seed: int
    style: str = DEFAULT_STYLE
    cfg: GeneratorConfig = field(default_factory=SynthConfig)


def parse_face_fraction(text: str | None) -> tuple[float, float] | None:
    """'0.3,0.7' → (0.3, 0.7), or a single '0.5' → (0.5, 0.5); None stays None.

    Raises:
        SynthError: not one or two numbers (naming --face-fraction).
    """
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise SynthError(f"--face-fraction {text!r}: give LOW,HIGH or one value, e.g. 0.3,0.7")
    return (values[0], values[-1])


def parse_split(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' → (0.8, 0.1, 0.1): three fractions ≥ 0 that sum to 1.

    Raises:
        SynthError: anything else, with a one-line message naming --split.
    """
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise SynthError(f"--split {text!r}: expected three numbers like 0.8,0.1,0.1") from None
    if len(values) != 3 or not all(math.isfinite(v) and v >= 0 for v in values):
        raise SynthError(f"--split {text!r}: expected three fractions >= 0 (train,val,test)")
    if abs(sum(values) - 1.0) > _SPLIT_SUM_TOLERANCE:
        raise SynthError(f"--split {text!r}: the fractions must sum to 1, got {sum(values):g}")
    return values  # type: ignore[return-value]


def split_counts(num: int, fractions: Sequence[float]) -> dict[str, int]:
    """Images per split: train and val rounded, test takes the rest."""
    train = min(num, math.floor(num * fractions[0] + 0.5))
    val = min(num - train, math.floor(num * fractions[1] + 0.5))
    return {"train": train, "val": val, "test": num - train - val}


# ------------------------------------------------------------------------------- encoding


def encode_depth(depth: Tensor, mask: Tensor | None = None) -> np.ndarray:
    """Depth (1, S, S) in world units → 16-bit codes (S, S), ``v = 65535·(1.1 − d)/0.2``.

    With a foreground ``mask`` (1, S, S) bool, codes inside it are at least 1, so that the
    file's mask (v > 0) equals ``mask`` even where a surface lies within 1.5e-6 of 1.1.
    """
    values = (DEPTH_FAR - depth[0].double().numpy()) / DEPTH_RANGE * DEPTH_CODE_MAX
    codes = np.rint(values).clip(0, DEPTH_CODE_MAX).astype(np.uint16)
    if mask is not None:
        foreground = mask[0].numpy()
        codes[foreground] = np.maximum(codes[foreground], 1)
    return codes


def encode_image(image: Tensor) -> np.ndarray:
    """Image (3, S, S) in [0, 1] → uint8 (S, S, 3)."""
    return np.rint(image.permute(1, 2, 0).double().numpy() * 255).clip(0, 255).astype(np.uint8)


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Write uint8 RGB (S, S, 3) or uint16 grey (S, S) as PNG with fixed options (no metadata)."""
    write_png(path, pixels, PNG_COMPRESS_LEVEL)


def _floats(values: Tensor) -> list:
    return [round(float(v), _DECIMALS) for v in values.double().reshape(-1)]


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {name: round(value, _DECIMALS) for name, value in values.items()}


def _pose_and_light(batch: SynthBatch | MeshSynthBatch, k: int, index: int) -> dict:
    """The keys both styles share: file names, pose and the model's light terms."""
    name = f"{index:06d}"
    direction = batch.light_direction[k]
    return {
        "index": index,
        "image": f"image/{name}_image.png",
        "depth": f"depth/{name}_depth.png",
        "rotation": [_floats(row) for row in batch.rotation[k]],
        "view_angles_deg": _floats(batch.angles[k].double().rad2deg()),
        "view_angles_rad": _floats(batch.angles[k]),
        "translation": _floats(batch.translation[k]),
        "light": {
            "ambient": _floats(batch.ambient[k])[0],
            "diffuse": _floats(batch.diffuse[k])[0],
            "direction": _floats(direction),
            "direction_view": _floats(batch.rotation[k] @ direction),
            "specular": _floats(batch.specular[k])[0],
            "shininess": _floats(batch.shininess[k])[0],
        },
    }


def sample_record(batch: SynthBatch, k: int) -> dict:
    """The ``meta.jsonl`` record of sample ``k`` of a heightfield batch (fixed key order)."""
    spec = batch.specs[k]
    return _pose_and_light(batch, k, spec.index) | {
        "asymmetry": {
            "expressions": [asdict(d) for d in spec.expressions],
            "perturbations": [asdict(p) for p in spec.perturbations],
        },
        "background": spec.background_kind,
        "foreground_fraction": _floats(batch.mask[k].double().mean())[0],
        "identity": dict(zip((n for n, _, _ in SHAPE_RANGES), _floats(spec.shape), strict=True)),
    }


def mesh_sample_record(batch: MeshSynthBatch, k: int) -> dict:
    """The ``meta.jsonl`` record of sample ``k`` of a mesh batch (fixed key order)."""
    meta = batch.metadata[k]
    record = _pose_and_light(batch, k, meta["index"])
    lighting = meta["lighting"]
    fill_direction = batch.rotation.new_tensor(lighting["fill_direction"])  # (3,)
    record["light"] |= {
        "fill": round(lighting["fill"], _DECIMALS),
        "fill_direction": _floats(fill_direction),
        "fill_direction_view": _floats(batch.rotation[k] @ fill_direction),
        "fill_tint": [round(v, _DECIMALS) for v in lighting["fill_tint"]],
    }
    return record | {
        "background": meta["background"],
        "foreground_fraction": _floats(batch.mask[k].double().mean())[0],
        "face_fraction": meta["face_fraction"],
        "face_fraction_target": meta["face_fraction_target"],
        "head_scale": meta["head_scale"],
        "identity": meta["identity"],
        "expression": meta["expression"],
        "colours": meta["colours"],
        "hair": None if meta["hair"] is None else _rounded(meta["hair"]),
        "neck": meta["neck"],
    }


def _camera(cfg: GeneratorConfig) -> tuple[float, float]:
    """(fov_deg, rot_center_depth) of a generator config."""
    if isinstance(cfg, SynthConfig):
        return cfg.renderer.fov_deg, cfg.renderer.rot_center_depth
    if isinstance(cfg, MeshSynthConfig):
        return cfg.fov_deg, cfg.rot_center_depth
    raise TypeError(f"not a generator config: {type(cfg).__name__}")


def dataset_info(seed: int, counts: dict[str, int], fractions: Sequence[float],
                 cfg: GeneratorConfig, style: str = DEFAULT_STYLE) -> dict:  # fmt: skip
    """The ``dataset.json`` content (no timestamps, nothing that depends on the workers)."""
    size, (fov, pivot) = cfg.image_size, _camera(cfg)
    centre = (size - 1) / 2
    starts = np.cumsum([0] + [counts[s] for s in SPLITS]).tolist()
    return {
        "generator": "unsup3d synth",
        "style": style,
        "version": _VERSIONS[style],
        "seed": seed,
        "num_images": sum(counts.values()),
        "image_size": size,
        "split_fractions": dict(zip(SPLITS, fractions, strict=True)),
        "counts": counts,
        "index_ranges": {s: [starts[i], starts[i + 1]] for i, s in enumerate(SPLITS)},
        "camera": {
            "fov_deg": fov,
            "rot_center_depth": pivot,
            "focal_px": centre / math.tan(math.radians(fov) / 2),
            "principal_point_px": [centre, centre],
        },
        "conventions": {
            "rotation": "R = Rz(rz)·Ry(ry)·Rx(rx), [rx, ry, rz] = [pitch, yaw, roll]; "
            "P_view = R (P_canonical − c) + c + t with pivot c = (0, 0, rot_center_depth)",
            "light_direction": "unit vector towards the light in the canonical frame, "
            "+z facing the surface (the model's convention)",
        },
        "depth_encoding": {
            "bits": 16,
            "decode": f"d = {DEPTH_FAR} - {DEPTH_RANGE} * v / {DEPTH_CODE_MAX}",
            "background_depth": BACKGROUND_DEPTH,
        },
        "generator_config": asdict(cfg),
    }


# -------------------------------------------------------------------------------- writing


def _render_chunk(chunk: _Chunk) -> tuple[SynthBatch | MeshSynthBatch, list[dict]]:
    """The chunk's samples rendered by its style's generator, and their meta records."""
    indices = range(chunk.start, chunk.stop)
    if chunk.style == "heightfield" and isinstance(chunk.cfg, SynthConfig):
        batch = synthesize(indices, chunk.seed, chunk.cfg)
        return batch, [sample_record(batch, k) for k in range(len(indices))]
    if chunk.style == "mesh" and isinstance(chunk.cfg, MeshSynthConfig):
        mesh_batch = synthesize_mesh(indices, chunk.seed, chunk.cfg)
        return mesh_batch, [mesh_sample_record(mesh_batch, k) for k in range(len(indices))]
    raise ValueError(f"style {chunk.style!r} with a {type(chunk.cfg).__name__}")


def _write_chunk(chunk: _Chunk) -> list[dict]:
    """Render one chunk of samples, write its PNGs and return their meta records."""
    batch, records = _render_chunk(chunk)
    split_dir = chunk.folder / chunk.split
    for k, record in enumerate(records):
        save_png(encode_image(batch.image[k]), split_dir / record["image"])
        save_png(encode_depth(batch.depth[k], batch.mask[k]), split_dir / record["depth"])
    return records


def _chunks(folder: Path, counts: dict[str, int], seed: int, style: str, cfg: GeneratorConfig,
            batch_size: int) -> list[_Chunk]:  # fmt: skip
    chunks, first = [], 0
    for split in SPLITS:
        for start in range(first, first + counts[split], batch_size):
            stop = min(start + batch_size, first + counts[split])
            chunks.append(_Chunk(folder, split, start, stop, seed, style, cfg))
        first += counts[split]
    return chunks


def _init_worker() -> None:
    torch.set_num_threads(1)


@contextmanager
def _single_thread() -> Iterator[None]:
    """Run torch on one thread for the duration (as the workers do), then restore."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _run_chunks(chunks: list[_Chunk], workers: int,
                progress: Callable[[int], None] | None) -> list[dict]:  # fmt: skip
    """Write every chunk, in this process or in ``workers`` child processes."""
    records: list[dict] = []

    def collect(done: list[dict]) -> None:
        records.extend(done)
        if progress is not None:
            progress(len(done))

    if workers == 1:
        with _single_thread():
            for chunk in chunks:
                collect(_write_chunk(chunk))
        return records
    # fork (where the OS has it) spares every worker the import of torch and torchvision;
    # workers run torch on one thread, as DataLoader workers do.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        for done in pool.map(_write_chunk, chunks):
            collect(done)
    return records


def _check_target(out_dir: Path, force: bool) -> None:
    """Refuse a file, or a non-empty folder unless ``force`` and it is a synth output."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthError(f"output {out_dir} exists and is not a folder")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not force:
        raise SynthError(f"output folder {out_dir} is not empty (use --force to replace it)")
    if not (out_dir / INFO_FILE).is_file():
        raise SynthError(
            f"--force replaces only an earlier synth output (with {INFO_FILE}); "
            f"{out_dir} has none, so it is left alone"
        )


def _finish(staging: Path, out_dir: Path) -> None:
    """Move the complete staging folder's content to ``out_dir``, replacing what was there.

    A new ``out_dir`` is one rename. An existing one keeps its inode (it may be a shell's
    working directory): its entries are moved aside, then the new ones moved in, with
    ``dataset.json`` last so that its presence marks a complete dataset.
    """
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    retired = out_dir.with_name(f".{out_dir.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    retired.mkdir()
    for entry in list(out_dir.iterdir()):
        entry.rename(retired / entry.name)
    for entry in sorted(staging.iterdir(), key=lambda path: path.name == INFO_FILE):
        entry.rename(out_dir / entry.name)
    staging.rmdir()
    shutil.rmtree(retired)


def _prepare_staging(out_dir: Path) -> Path:
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)  # left over by an interrupted run
    for split in SPLITS:
        (staging / split / "image").mkdir(parents=True)
        (staging / split / "depth").mkdir(parents=True)
    return staging


def _write_metadata(staging: Path, records: list[dict], info: dict) -> None:
    """Write ``meta.jsonl`` per split (index order) and ``dataset.json``."""
    ranges = info["index_ranges"]
    ordered = sorted(records, key=lambda record: record["index"])
    for split in SPLITS:
        low, high = ranges[split]
        text = "".join(json.dumps(r) + "\n" for r in ordered if low <= r["index"] < high)
        (staging / split / META_FILE).write_text(text, encoding="utf-8")
    (staging / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def generator_config(
    style: str, image_size: int, face_fraction: tuple[float, float] | None = None
) -> GeneratorConfig:
    """The default config of a style's generator at this image size.

    Args:
        style: one of :data:`STYLES`.
        image_size: side of the images in pixels.
        face_fraction: for the mesh style, the (low, high) range of the fraction of the image
            the head covers (None: the generator's default).

    Raises:
        SynthError: an unknown style (naming --style), a bad size (naming --image-size), or a
            bad or inapplicable face fraction (naming --face-fraction).
    """
    if style not in STYLES:
        raise SynthError(f"--style {style!r}: use one of {', '.join(STYLES)}")
    if face_fraction is not None and style != "mesh":
        raise SynthError(f"--face-fraction applies to --style mesh only, not {style!r}")
    try:
        if style != "mesh":
            return SynthConfig(image_size=image_size)
        cfg = MeshSynthConfig(image_size=image_size)
    except ValueError as err:
        raise SynthError(f"--image-size: {err}") from None
    if face_fraction is None:
        return cfg
    try:
        return replace(cfg, face_fraction_range=tuple(face_fraction))
    except ValueError as err:
        raise SynthError(f"--face-fraction: {err}") from None


def write_dataset(
    out_dir: Path | str,
    num: int,
    seed: int = 0,
    *,
    generator: GeneratorConfig | None = None,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    workers: int = 1,
    force: bool = False,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    style: str = DEFAULT_STYLE,
) -> SynthSummary:
    """Generate ``num`` synthetic faces with ground truth into ``out_dir`` (layout above).

    Args:
        out_dir: output folder; must be absent or empty, or with ``force`` an earlier synth
            output (it is replaced only once the new dataset is complete).
        num: number of images (≥ 1).
        seed: dataset seed.
        generator: the style's generator settings (:func:`generator_config` builds them from
            the options); None: its defaults (64×64 images).
        split: train, val, test fractions (sum to 1).
        workers: processes (≥ 1); 1 renders in this process. Results do not depend on it.
        force: replace an earlier synth output.
        batch_size: faces per unit of work (None: 32 heightfield, 8 mesh faces). Results do
            not depend on it.
        progress: called with the number of images finished after every batch.
        style: the generator, one of :data:`STYLES` (see the module docstring).

    Returns:
        A :class:`SynthSummary`.

    Raises:
        SynthError: bad arguments or an output folder that may not be replaced.
    """
    if num < 1 or workers < 1 or (batch_size is not None and batch_size < 1):
        raise SynthError(f"need --num >= 1 and --workers >= 1, got {num} and {workers}")
    cfg = generator_config(style, 64) if generator is None else generator
    if not isinstance(cfg, MeshSynthConfig if style == "mesh" else SynthConfig):
        raise SynthError(f"the generator settings given are not the {style} style's")
    out_dir = Path(out_dir).absolute()  # '.' has no name to stage by
    chunk_size = batch_size or _BATCH_SIZES[style]
    fractions = tuple(split)
    _check_target(out_dir, force)
    counts = split_counts(num, fractions)
    start = time.perf_counter()
    staging = _prepare_staging(out_dir)
    try:
        chunks = _chunks(staging, counts, seed, style, cfg, chunk_size)
        records = _run_chunks(chunks, workers, progress)
        _write_metadata(staging, records, dataset_info(seed, counts, fractions, cfg, style))
        _finish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SynthSummary(out_dir, counts, time.perf_counter() - start, workers, style)


def default_workers() -> int:
    """One worker per CPU core this process may use, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, cores or 1))
