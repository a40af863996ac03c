"""``unsup3d convert``: an original Unsup3D checkpoint → an unsup3d checkpoint with its config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from unsup3d_cli.cli.errors import check_preset, user_errors
from unsup3d_cli.cli.options import PresetOption

SourceArg = Annotated[
    Path,
    typer.Argument(
        metavar="ORIGINAL",
        help="Checkpoint of the original Unsup3D code, e.g. pretrained_cat/checkpoint030.pth.",
        dir_okay=False,
        show_default=False,
    ),
]
OutOption = Annotated[
    Path,
    typer.Option(
        "--out", "-o", help="The unsup3d checkpoint to write (.pt).", dir_okay=False,
        show_default=False,
    ),
]  # fmt: skip
ForceOption = Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")]


def convert_command(
    source: SourceArg, out: OutOption, preset: PresetOption = None, force: ForceOption = False
) -> None:
    """Convert an original Unsup3D checkpoint, so later commands need no --preset.

    The weights are copied unchanged; the preset's settings are stored beside them.
    """
    from unsup3d_cli import api

    check_preset(preset)
    with user_errors():
        loaded = api.convert_checkpoint(source, out, preset=preset, force=force)
    typer.echo(f"Wrote {out} ({loaded.preset} preset)")
    if "note" in loaded.info:
        typer.echo(f"Note: {loaded.info['note']}")
