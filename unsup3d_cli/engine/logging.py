"""Logging for people (stdlib logging, rich when available) and for machines (JSON lines)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import numpy as np
from torch import Tensor

_HANDLER_NAME = "unsup3d_cli"
_PACKAGE_LOGGER = "unsup3d_cli"


class MetricsWriter:
    """Appends one JSON object per line to a file, flushed at every write.

    The file is opened in append mode so a resumed run continues the same file. Non-finite
    floats are written as ``null`` so that every line is strict JSON.
    """

    def __init__(self, path: Path | str) -> None:
        """Open (and create, with its folder) the JSONL file for appending."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record: numbers, strings, bools, None, one-element tensors, numpy scalars.

        Raises:
            TypeError: if a value cannot be written as JSON (the message names the key).
            ValueError: if the writer is closed.
        """
        if self._file is None:
            raise ValueError(f"metrics writer for {self.path} is closed")
        line = json.dumps({str(k): _plain(v, str(k)) for k, v in record.items()}, allow_nan=False)
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file (further writes raise ValueError); closing twice is fine."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> MetricsWriter:
        """Use as a context manager that closes the file on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the file."""
        self.close()


def _plain(value: Any, key: str) -> Any:
    """A record value as a JSON-safe Python value."""
    if isinstance(value, Tensor | np.ndarray | np.generic):
        size = value.numel() if isinstance(value, Tensor) else np.size(value)
        if size != 1:
            raise TypeError(
                f"metric '{key}': expected a single value, got shape {tuple(value.shape)}"
            )
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{key}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"metric '{key}': cannot write {type(value).__name__} as JSON")


def setup_logging(verbose: bool = False) -> None:
    """Send this package's log records to the console (rich handler if installed).

    Adds one handler to the root logger (only once, however often this is called) and sets the
    ``unsup3d_cli`` logger to INFO, or DEBUG when ``verbose``. Other libraries keep their level.
    """
    root = logging.getLogger()
    if not any(handler.get_name() == _HANDLER_NAME for handler in root.handlers):
        handler = _console_handler()
        handler.set_name(_HANDLER_NAME)
        root.addHandler(handler)
    logging.getLogger(_PACKAGE_LOGGER).setLevel(logging.DEBUG if verbose else logging.INFO)


def _console_handler() -> logging.Handler:
    """A rich console handler, or a plain stderr one when rich is not installed."""
    try:
        from rich.logging import RichHandler  # noqa: PLC0415 (optional: plain handler without)
    except ImportError:
        handler: logging.Handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        return handler
    return RichHandler(show_path=False, rich_tracebacks=False, log_time_format="%H:%M:%S")
