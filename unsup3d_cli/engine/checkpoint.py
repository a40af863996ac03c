"""Atomic checkpoint files and their rotation.

A checkpoint is one dict saved with ``torch.save``, e.g. ``{model, optimizer, step, epoch,
config}``, to which :func:`save_checkpoint` adds ``version`` and ``program``. A run keeps
``checkpoints/last.pt`` (always the newest) and numbered ``checkpoints/step-XXXXXXXXX.pt``
files, of which :func:`prune_checkpoints` keeps the newest N.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_VERSION = 1
"""Format version written into every checkpoint; newer files are refused."""
PROGRAM = "unsup3d_cli"
"""Marker stored under ``state["program"]`` to recognise our checkpoints."""
LAST_NAME = "last.pt"
"""File name of the rolling latest checkpoint in a checkpoint folder."""

_STEP_PATTERN = re.compile(r"step-(\d+)\.pt")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not ours (the message names the file)."""


def save_checkpoint(path: Path | str, state: dict[str, Any]) -> None:
    """Save a checkpoint atomically: write ``<path>.tmp``, fsync it, then rename over ``path``.

    A crash mid-write leaves the previous file intact. The caller's dict is not modified; the
    saved dict is ``state`` plus ``version`` = :data:`CHECKPOINT_VERSION` and ``program``.

    Args:
        path: destination file; its folder is created if needed.
        state: tensors, state dicts and plain values to save.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**state, "version": CHECKPOINT_VERSION, "program": PROGRAM}
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable where the OS allows it (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: Path | str, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: checkpoint file.
        map_location: passed to ``torch.load`` (default: tensors on the CPU).

    Returns:
        The saved dict, including ``version`` and ``program``.

    Raises:
        CheckpointError: if the file is missing or unreadable, is not a dict, is not an
            unsup3d_cli checkpoint, or has a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 (unpickling can raise anything)
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(
            f"cannot read checkpoint {path}: {type(exc).__name__} {reason}"
        ) from exc
    if not isinstance(state, dict) or state.get("program") != PROGRAM:
        raise CheckpointError(f"not an unsup3d_cli checkpoint: {path}")
    version = state.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; this program reads up to "
            f"{CHECKPOINT_VERSION}"
        )
    return state


def step_checkpoint_name(step: int) -> str:
    """File name of the numbered checkpoint of a step, e.g. ``step-000001234.pt``."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return f"step-{step:09d}.pt"


def list_step_checkpoints(directory: Path | str) -> list[Path]:
    """Numbered checkpoints in a folder, oldest step first ([] if the folder is missing)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _STEP_PATTERN.fullmatch(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(directory: Path | str) -> Path | None:
    """``last.pt`` if present, else the newest numbered checkpoint, else None."""
    directory = Path(directory)
    last = directory / LAST_NAME
    if last.is_file():
        return last
    steps = list_step_checkpoints(directory)
    return steps[-1] if steps else None


def prune_checkpoints(directory: Path | str, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` numbered checkpoints (``keep < 0`` keeps all).

    ``last.pt`` and any other file are never touched.

    Returns:
        The deleted paths, oldest first.
    """
    if keep < 0:
        return []
    steps = list_step_checkpoints(directory)
    removed = steps[: max(len(steps) - keep, 0)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
