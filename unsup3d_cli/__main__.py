"""``python -m unsup3d_cli``: the same entry point as the ``unsup3d`` command."""

from __future__ import annotations

from unsup3d_cli.cli import app

if __name__ == "__main__":
    app(prog_name="unsup3d")
