"""Ground-truth poses of a split, read from its optional ``meta.jsonl``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from unsup3d_cli.data import DataError
from unsup3d_cli.geometry import euler_to_rotation

log = logging.getLogger(__name__)

META_FILE = "meta.jsonl"
"""Per-split file with each image's ground-truth pose (one JSON object per line)."""


def _rotation_from_record(record: dict[str, Any]) -> Tensor:
    """A record's 3×3 rotation: ``rotation`` if present, else R = Rz·Ry·Rx(view_angles_rad)."""
    if "rotation" in record:
        rotation = torch.tensor(record["rotation"], dtype=torch.float64)
    elif "view_angles_rad" in record:
        angles = torch.tensor(record["view_angles_rad"], dtype=torch.float64)
        if angles.shape != (3,):
            raise ValueError(f"view_angles_rad must hold 3 numbers, got {angles.tolist()}")
        rotation = euler_to_rotation(angles[None])[0]
    else:
        raise ValueError("needs 'rotation' (3×3) or 'view_angles_rad' ([rx, ry, rz])")
    if rotation.shape != (3, 3) or not torch.isfinite(rotation).all():
        raise ValueError(f"rotation must be a finite 3×3 matrix, got {rotation.tolist()}")
    return rotation


def read_rotations(split_dir: Path | str) -> dict[str, Tensor] | None:
    """Ground-truth rotations from ``<split>/meta.jsonl``, keyed by image file name.

    Each line is a JSON object naming its image under ``image`` (or ``file``; a path or a bare
    name, matched on the file name) with ``rotation`` (3×3, canonical → view, the model's
    convention) or ``view_angles_rad`` ([rx, ry, rz], R = Rz·Ry·Rx).

    Returns:
        File name → rotation (3, 3) float64, or None when the split has no ``meta.jsonl``.

    Raises:
        DataError: naming the file and line of a malformed record, or an unreadable file.
    """
    path = Path(split_dir) / META_FILE
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable: {err}") from None
    rotations: dict[str, Tensor] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            name = record.get("image", record.get("file"))
            if not isinstance(name, str):
                raise ValueError("needs the image file name under 'image' or 'file'")
            rotations[Path(name).name] = _rotation_from_record(record)
        except (ValueError, TypeError, AttributeError) as err:
            raise DataError(f"{path}:{number}: bad pose record: {err}") from None
    return rotations


def split_rotations(split_dir: Path | str) -> dict[str, Tensor] | None:
    """:func:`read_rotations`, or None with a one-line warning when ``meta.jsonl`` is unusable.

    A ``meta.jsonl`` in another schema (or not JSON at all) only costs the viewpoint columns:
    the warning names the file, the line and the problem, and depth is scored as usual.
    """
    try:
        return read_rotations(split_dir)
    except DataError as err:
        log.warning("%s; leaving out the viewpoint columns", err)
        return None
