"""Writing a synthetic-face dataset in the synface layout (``unsup3d synth``).

Layout of ``OUT_DIR``::

    dataset.json                      generator version, seed, counts, split, camera, encoding
    {train,val,test}/meta.jsonl       one JSON object per image, in index order
    {train,val,test}/image/NNNNNN_image.png   RGB 8-bit
    {train,val,test}/depth/NNNNNN_depth.png   16-bit grey, v = 65535·(1.1 − d)/0.2 (0 = background)

``NNNNNN`` is the global sample index: the first ``train`` indices go to train, the next to
val, the rest to test. Sample ``i`` is :func:`unsup3d_cli.synthetic.sample_face` of
``(seed, i)``, so the bytes depend on (seed, num, image size, split) only, never on the number
of workers or the batch size. Files are written into a hidden ``.OUT_DIR.partial`` folder next
to ``OUT_DIR`` and moved into place only when everything is written.

A ``meta.jsonl`` line holds ``index``, ``image`` and ``depth`` (paths relative to the split),
``rotation`` (3×3, canonical → view, ``R = Rz·Ry·Rx``), ``view_angles_deg`` and
``view_angles_rad`` (``[rx, ry, rz]`` = pitch, yaw, roll), ``translation``, ``light``
(``ambient``, ``diffuse``, ``direction`` in the canonical frame as the model predicts it,
``direction_view`` = R·direction, ``specular``, ``shininess``), ``asymmetry`` (the
``expressions`` and ``perturbations`` applied, empty lists when none), ``background`` (its
kind), ``foreground_fraction`` and ``identity`` (the shape parameters).
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from unsup3d_cli.data import DEPTH_FAR, DEPTH_RANGE, SPLITS, DataError
from unsup3d_cli.pngio import write_png
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


class SynthError(DataError):
    """A synth request that cannot be carried out (the message names the option or folder)."""


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`write_dataset` wrote."""

    out_dir: Path
    counts: dict[str, int]
    seconds: float
    workers: int


@dataclass(frozen=True)
class _Chunk:
    """One unit of work: samples ``start .. stop − 1`` of one split."""

    folder: Path
    split: str
    start: int
    stop: int
    seed: int
    cfg: SynthConfig = field(default_factory=SynthConfig)


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
    if abs(sum(values) - 1.0) > 1e-6:
        raise SynthError(f"--split {text!r}: the fractions must sum to 1, got {sum(values):g}")
    return values  # type: ignore[return-value]


def split_counts(num: int, fractions: Sequence[float]) -> dict[str, int]:
    """Images per split: train and val rounded, test takes the rest."""
    train = min(num, math.floor(num * fractions[0] + 0.5))
    val = min(num - train, math.floor(num * fractions[1] + 0.5))
    return {"train": train, "val": val, "test": num - train - val}


# ------------------------------------------------------------------------------- encoding


def encode_depth(depth: Tensor) -> np.ndarray:
    """Depth (1, S, S) in world units → 16-bit codes (S, S), ``v = 65535·(1.1 − d)/0.2``."""
    values = (DEPTH_FAR - depth[0].double().numpy()) / DEPTH_RANGE * DEPTH_CODE_MAX
    return np.rint(values).clip(0, DEPTH_CODE_MAX).astype(np.uint16)


def encode_image(image: Tensor) -> np.ndarray:
    """Image (3, S, S) in [0, 1] → uint8 (S, S, 3)."""
    return np.rint(image.permute(1, 2, 0).double().numpy() * 255).clip(0, 255).astype(np.uint8)


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Write uint8 RGB (S, S, 3) or uint16 grey (S, S) as PNG with fixed options (no metadata)."""
    write_png(path, pixels, PNG_COMPRESS_LEVEL)


def _floats(values: Tensor) -> list:
    return [round(float(v), _DECIMALS) for v in values.double().reshape(-1)]


def sample_record(batch: SynthBatch, k: int) -> dict:
    """The ``meta.jsonl`` record of sample ``k`` of a batch (JSON-ready, fixed key order)."""
    spec = batch.specs[k]
    name = f"{spec.index:06d}"
    direction = batch.light_direction[k]
    return {
        "index": spec.index,
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
        "asymmetry": {
            "expressions": [asdict(d) for d in spec.expressions],
            "perturbations": [asdict(p) for p in spec.perturbations],
        },
        "background": spec.background_kind,
        "foreground_fraction": _floats(batch.mask[k].double().mean())[0],
        "identity": dict(zip((n for n, _, _ in SHAPE_RANGES), _floats(spec.shape), strict=True)),
    }


def dataset_info(seed: int, counts: dict[str, int], fractions: Sequence[float],
                 cfg: SynthConfig) -> dict:  # fmt: skip
    """The ``dataset.json`` content (no timestamps, nothing that depends on the workers)."""
    size, fov = cfg.image_size, cfg.renderer.fov_deg
    centre = (size - 1) / 2
    starts = np.cumsum([0] + [counts[s] for s in SPLITS]).tolist()
    ranges = {k: v for k, v in asdict(cfg).items() if k not in ("image_size", "renderer")}
    return {
        "generator": "unsup3d synth",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "num_images": sum(counts.values()),
        "image_size": size,
        "split_fractions": dict(zip(SPLITS, fractions, strict=True)),
        "counts": counts,
        "index_ranges": {s: [starts[i], starts[i + 1]] for i, s in enumerate(SPLITS)},
        "camera": {
            "fov_deg": fov,
            "rot_center_depth": cfg.renderer.rot_center_depth,
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
        "sampling": ranges,
    }


# -------------------------------------------------------------------------------- writing


def _write_chunk(chunk: _Chunk) -> list[dict]:
    """Render one chunk of samples, write its PNGs and return their meta records."""
    batch = synthesize(range(chunk.start, chunk.stop), chunk.seed, chunk.cfg)
    split_dir = chunk.folder / chunk.split
    records = []
    for k in range(len(batch.specs)):
        record = sample_record(batch, k)
        save_png(encode_image(batch.image[k]), split_dir / record["image"])
        save_png(encode_depth(batch.depth[k]), split_dir / record["depth"])
        records.append(record)
    return records


def _chunks(folder: Path, counts: dict[str, int], seed: int, cfg: SynthConfig,
            batch_size: int) -> list[_Chunk]:  # fmt: skip
    chunks, first = [], 0
    for split in SPLITS:
        for start in range(first, first + counts[split], batch_size):
            stop = min(start + batch_size, first + counts[split])
            chunks.append(_Chunk(folder, split, start, stop, seed, cfg))
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


def _config(image_size: int) -> SynthConfig:
    try:
        return SynthConfig(image_size=image_size)
    except ValueError as err:
        raise SynthError(f"--image-size: {err}") from None


def write_dataset(
    out_dir: Path | str,
    num: int,
    seed: int = 0,
    image_size: int = 64,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    workers: int = 1,
    force: bool = False,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Generate ``num`` synthetic faces with ground truth into ``out_dir`` (layout above).

    Args:
        out_dir: output folder; must be absent or empty, or with ``force`` an earlier synth
            output (it is replaced only once the new dataset is complete).
        num: number of images (≥ 1).
        seed: dataset seed.
        image_size: side of the images in pixels (≥ 16).
        split: train, val, test fractions (sum to 1).
        workers: processes (≥ 1); 1 renders in this process. Results do not depend on it.
        force: replace an earlier synth output.
        batch_size: faces rendered per renderer call.
        progress: called with the number of images finished after every batch.

    Returns:
        A :class:`SynthSummary`.

    Raises:
        SynthError: bad arguments or an output folder that may not be replaced.
    """
    if num < 1 or workers < 1 or batch_size < 1:
        raise SynthError(f"need --num >= 1 and --workers >= 1, got {num} and {workers}")
    out_dir, cfg = Path(out_dir).absolute(), _config(image_size)  # '.' has no name to stage by
    fractions = tuple(split)
    _check_target(out_dir, force)
    counts = split_counts(num, fractions)
    start = time.perf_counter()
    staging = _prepare_staging(out_dir)
    try:
        records = _run_chunks(_chunks(staging, counts, seed, cfg, batch_size), workers, progress)
        _write_metadata(staging, records, dataset_info(seed, counts, fractions, cfg))
        _finish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SynthSummary(out_dir, counts, time.perf_counter() - start, workers)


def default_workers() -> int:
    """One worker per CPU core this process may use, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, cores or 1))
