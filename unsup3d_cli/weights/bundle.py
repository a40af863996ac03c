"""The model bundle: one ``.safetensors`` file of float16 weights and the config they need.

safetensors is a JSON header (names, dtypes, shapes, byte offsets, string metadata) followed by
the raw tensor bytes, so reading a bundle unpickles nothing and runs no code. Floating-point
tensors are stored as float16 (half the size of float32; a relative rounding error of at most
2^-11 for magnitudes above 6.1e-5) and read back as float32; other tensors are stored as they
are. The header's metadata holds strings:

=================  ==========================================================================
``bundle_format``  :data:`BUNDLE_FORMAT`; a file without it is not a bundle
``config``         the experiment config as JSON (what our checkpoints store under "config")
``source_step``    the training step of the checkpoint it was made from ("" when unknown)
``source_format``  that checkpoint's format ('unsup3d_cli' or 'unsup3d-original')
``source_preset``  the preset an original checkpoint was read with ("" otherwise)
``source_file``    that checkpoint's file name
``recipe``         free text: how the model was trained
``program``        the unsup3d version that wrote the file
=================  ==========================================================================

This module reads and writes the files; :mod:`unsup3d_cli.pretrained` builds the metadata and
checks the weights against the model their config builds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor

from unsup3d_cli.engine.checkpoint import CheckpointError

BUNDLE_FORMAT = "unsup3d-bundle/1"
"""The ``bundle_format`` this program writes and reads."""
BUNDLE_SUFFIX = ".safetensors"
"""File name suffix of a bundle; ``unsup3d convert --out X.safetensors`` writes one."""
FORMAT_KEY = "bundle_format"
"""Metadata key of the format tag."""
STORED_DTYPE = torch.float16
"""How floating-point tensors are stored."""
LOADED_DTYPE = torch.float32
"""What floating-point tensors become when read."""
_HEADER_LENGTH_BYTES = 8


def is_safetensors_file(path: Path | str) -> bool:
    """Whether a file is meant to be read as safetensors: by its name or by its first bytes.

    True for a ``.safetensors`` name, and for a file that starts as safetensors do: an 8-byte
    little-endian header length that fits in the file, then ``{``. ``torch.save`` files (a
    zip archive or a pickle) never do.
    """
    path = Path(path)
    if path.suffix.lower() == BUNDLE_SUFFIX:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEADER_LENGTH_BYTES + 1)
        size = path.stat().st_size
    except OSError:
        return False
    if len(head) <= _HEADER_LENGTH_BYTES:
        return False
    header_length = int.from_bytes(head[:_HEADER_LENGTH_BYTES], "little")
    return head[_HEADER_LENGTH_BYTES:] == b"{" and header_length <= size - _HEADER_LENGTH_BYTES


def write_bundle(
    path: Path | str, state_dict: Mapping[str, Tensor], metadata: Mapping[str, str]
) -> None:
    """Write a bundle atomically: ``<path>.tmp``, fsync, then rename over ``path``.

    Args:
        path: the ``.safetensors`` file; its folder is created if needed.
        state_dict: the weights; floating-point tensors are stored as float16.
        metadata: string metadata; ``bundle_format`` = :data:`BUNDLE_FORMAT` is added.

    Raises:
        CheckpointError: a weight beyond float16's range (the message names it), or the file
            cannot be written (``path`` is then as it was).
    """
    path = Path(path)
    tensors = {key: _stored(key, tensor, path) for key, tensor in state_dict.items()}
    payload = safetensors_bytes(tensors, metadata={**metadata, FORMAT_KEY: BUNDLE_FORMAT})
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # disk full, quota, permissions: the previous file is untouched
        raise CheckpointError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _stored(key: str, tensor: Tensor, path: Path) -> Tensor:
    """One tensor as the bundle stores it: float16 if floating, contiguous, owning its memory."""
    tensor = tensor.detach().cpu()
    if not tensor.is_floating_point():
        return tensor.clone().contiguous()
    stored = tensor.to(STORED_DTYPE).contiguous()
    if bool((torch.isinf(stored) & torch.isfinite(tensor)).any()):
        limit = torch.finfo(STORED_DTYPE).max
        raise CheckpointError(
            f"cannot write {path}: weight {key!r} has values beyond float16's range (±{limit:g})"
        )
    return stored


def read_bundle(path: Path | str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Read a bundle's weights and metadata, without unpickling anything.

    Returns:
        The weights on the CPU (floating-point ones as float32) and the string metadata.

    Raises:
        CheckpointError: the file is missing, is not a readable safetensors file, is not an
            unsup3d bundle or is in a newer format (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(path, framework="pt", device="cpu") as reader:
            metadata = dict(reader.metadata() or {})
            _check_format(metadata, path)
            tensors = {key: _loaded(reader.get_tensor(key)) for key in reader.keys()}
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 (a corrupt file can raise anything)
        reason = " ".join(str(exc).split())[:200]
        raise CheckpointError(
            f"cannot read {path} as safetensors: {type(exc).__name__} {reason}".rstrip()
        ) from None
    return tensors, metadata


def _check_format(metadata: Mapping[str, str], path: Path) -> None:
    tag = metadata.get(FORMAT_KEY)
    if tag is None:
        raise CheckpointError(
            f"{path}: a safetensors file, but not an unsup3d model bundle (its metadata has no "
            f"{FORMAT_KEY!r}); write one with 'unsup3d convert CKPT --out X{BUNDLE_SUFFIX}'"
        )
    if tag != BUNDLE_FORMAT:
        raise CheckpointError(
            f"{path} is a model bundle in format {tag!r}; this program reads {BUNDLE_FORMAT}"
        )


def _loaded(tensor: Tensor) -> Tensor:
    return tensor.to(LOADED_DTYPE) if tensor.is_floating_point() else tensor
