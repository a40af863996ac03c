"""Turning the library's user-facing errors into a one-line message and an exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

EXIT_USER_ERROR = 1
"""Exit code for a mistake the user can fix: bad config, missing data, unusable checkpoint."""
EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report it."""


def fail(message: object, code: int = EXIT_USER_ERROR) -> typer.Exit:
    """Print ``Error: <message>`` on one line of stderr and return the exit to raise.

    Args:
        message: the error or text to report; runs of whitespace, line breaks included,
            become single spaces.
        code: the process exit code.

    Returns:
        A ``typer.Exit`` for the caller to raise (``raise fail(...) from None``).
    """
    text = " ".join(str(message).split())
    typer.echo(f"Error: {text}", err=True)
    return typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Report the library's typed user errors without a traceback.

    ``ConfigError``, ``DataError``, ``CheckpointError`` and ``TrainingError`` exit with code 1;
    ``TrainingInterrupted`` (Ctrl-C during training, after its checkpoint is saved) prints its
    message and exits with 130. Anything else is a bug and propagates with its traceback.
    The imports are lazy because they pull in torch.
    """
    from unsup3d_cli.api import TrainingError, TrainingInterrupted
    from unsup3d_cli.config import ConfigError
    from unsup3d_cli.data import DataError
    from unsup3d_cli.engine.checkpoint import CheckpointError

    try:
        yield
    except TrainingInterrupted as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (ConfigError, DataError, CheckpointError, TrainingError) as exc:
        raise fail(exc) from None


def check_device(device: str) -> None:
    """Exit with a one-line ``--device`` error unless the device can be used."""
    from unsup3d_cli.api import resolve_device

    try:
        resolve_device(device)
    except ValueError as exc:
        raise fail(f"--device {device}: {exc}") from None


def check_preset(preset: str | None) -> None:
    """Exit with a one-line ``--preset`` error unless it names a preset (None is fine)."""
    from unsup3d_cli.pretrained import PRESET_NAMES

    if preset is not None and preset not in PRESET_NAMES:
        raise fail(f"--preset {preset!r}: use one of {', '.join(PRESET_NAMES)}")
