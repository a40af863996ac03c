"""Atomic checkpoint files and their rotation.

A checkpoint is one dict saved with ``torch.save``, e.g. ``{model, optimizer, step, epoch,
config}``, to which :func:`save_checkpoint` adds ``version`` and ``program``. A run keeps
``checkpoints/last.pt`` (always the newest) and numbered ``checkpoints/step-XXXXXXXXX.pt``
files, of which :func:`prune_checkpoints` keeps the newest N.

Every checkpoint file, ours or not, is read by :func:`read_checkpoint_file`: PyTorch's
``weights_only`` unpickler, which builds tensors and plain containers and refuses any other
import, so loading a file cannot run code. The original Unsup3D's training checkpoints also
pickle a ``unsup3d.meters.MetricsTrace`` object (a loss history); that class and its siblings
are read as inert :class:`ForeignObject` placeholders and their contents dropped.
"""

from __future__ import annotations

import os
import pickle
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
BEST_NAME = "best.pt"
"""File name of the checkpoint with the lowest validation loss (``TrainConfig.keep_best``)."""

_STEP_PATTERN = re.compile(r"step-(\d+)\.pt")
_GLOBAL_PATTERN = re.compile(r"GLOBAL ([\w.]+)")

FOREIGN_CLASSES = (
    "unsup3d.meters.MetricsTrace",
    "unsup3d.meters.StandardMetrics",
    "unsup3d.meters.TotalAverage",
    "unsup3d.meters.SpeedMeter",
)
"""Classes of the original Unsup3D code that its checkpoints may pickle beside the weights.
They are read as :class:`ForeignObject` (nothing of theirs is imported or called)."""


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not ours (the message names the file)."""


class ForeignObject:
    """Inert stand-in for a pickled object of a :data:`FOREIGN_CLASSES` class.

    Its constructor arguments and pickled state are discarded: no code of the original class
    exists here, and none runs.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        del args, kwargs

    def __setstate__(self, state: Any) -> None:
        """Discard the pickled state."""
        del state

    def __repr__(self) -> str:
        return "ForeignObject()"


def read_checkpoint_file(path: Path | str, map_location: Any = "cpu") -> Any:
    """Read a ``torch.save`` file without running any code from it.

    Uses ``torch.load(..., weights_only=True)``: tensors, state dicts, numbers, strings and
    plain containers load; any other import the file asks for is refused before it happens,
    except the :data:`FOREIGN_CLASSES`, which load as inert :class:`ForeignObject`.

    Args:
        path: the file (zip or legacy ``torch.save`` format).
        map_location: passed to ``torch.load`` (default: tensors on the CPU).

    Returns:
        The unpickled object.

    Raises:
        CheckpointError: the file is missing, unreadable, or asks for code to be imported or
            called (the message names the file and what it asked for).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    placeholders = [(ForeignObject, name) for name in FOREIGN_CLASSES]
    try:
        with torch.serialization.safe_globals(placeholders):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL_PATTERN.search(str(exc))
        if found is None:
            raise CheckpointError(
                f"cannot read checkpoint {path}: not a file of tensors and plain data "
                f"({_unpickler_reason(exc)})"
            ) from None
        raise CheckpointError(
            f"refused to load {path}: it imports {found.group(1)!r}; checkpoints are read as "
            "tensors and plain data only, so a file that needs code to load is not accepted"
        ) from None
    except Exception as exc:  # noqa: BLE001 (a corrupt file can raise anything)
        reason = " ".join(str(exc).split())[:200]
        raise CheckpointError(
            f"cannot read checkpoint {path}: {type(exc).__name__} {reason}".rstrip()
        ) from None


def save_checkpoint(path: Path | str, state: dict[str, Any]) -> None:
    """Save a checkpoint atomically: write ``<path>.tmp``, fsync it, then rename over ``path``.

    A crash mid-write leaves the previous file intact. The caller's dict is not modified; the
    saved dict is ``state`` plus ``version`` = :data:`CHECKPOINT_VERSION` and ``program``.

    Raises:
        CheckpointError: the file cannot be written (disk full, no permission); ``path`` is
            then as it was before the call.

    Args:
        path: destination file; its folder is created if needed.
        state: tensors, state dicts and plain values to save.
    """
    path = Path(path)
    payload = {**state, "version": CHECKPOINT_VERSION, "program": PROGRAM}
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # disk full, quota, permissions: the previous file is untouched
        reason = exc.strerror or str(exc)
        kept = f"; the previous {path.name} is kept" if path.is_file() else ""
        raise CheckpointError(f"cannot write checkpoint {path}: {reason}{kept}") from None
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


def _unpickler_reason(exc: Exception) -> str:
    """The short reason inside PyTorch's long weights-only error message."""
    text = str(exc)
    _, marker, rest = text.partition("WeightsUnpickler error:")
    reason = rest.split("Check the documentation")[0] if marker else text.splitlines()[0]
    return " ".join(reason.split())[:160]


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
    state = read_checkpoint_file(path, map_location)
    validate_checkpoint(state, path)
    return state


def is_our_checkpoint(state: object) -> bool:
    """Whether a loaded object carries this program's checkpoint marker."""
    return isinstance(state, dict) and state.get("program") == PROGRAM


def validate_checkpoint(state: object, path: Path | str) -> None:
    """Check that a loaded object is one of our checkpoints in a format this version reads.

    Raises:
        CheckpointError: not ours, or a newer format version (the message names ``path``).
    """
    if not is_our_checkpoint(state):
        raise CheckpointError(f"not an unsup3d_cli checkpoint: {path}")
    version = state.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; this program reads up to "
            f"{CHECKPOINT_VERSION}"
        )


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
