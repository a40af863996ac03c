"""``unsup3d convert``: a checkpoint → an unsup3d checkpoint (.pt) or a float16 bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from unsup3d_cli.cli.errors import check_preset, fail, user_errors
from unsup3d_cli.cli.options import PresetOption

SourceArg = Annotated[
    Path,
    typer.Argument(
        metavar="CHECKPOINT",
        help="Checkpoint of the original Unsup3D code, e.g. pretrained_cat/checkpoint030.pth; "
        "for a .safetensors --out, also one of ours.",
        dir_okay=False,
        show_default=False,
    ),
]
OutOption = Annotated[
    Path,
    typer.Option(
        "--out", "-o",
        help="The file to write: an unsup3d checkpoint (.pt), or with a .safetensors name a "
        "model bundle (the weights in float16, half their float32 size, with the config and "
        "provenance, in one file).",
        dir_okay=False, show_default=False,
    ),
]  # fmt: skip
RecipeOption = Annotated[
    str | None,
    typer.Option(
        "--recipe",
        help="Free text stored in a .safetensors bundle: how the model was trained.",
        show_default=False,
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")]


def convert_command(
    source: SourceArg,
    out: OutOption,
    preset: PresetOption = None,
    force: ForceOption = False,
    recipe: RecipeOption = None,
) -> None:
    """Convert a checkpoint, so later commands need no --preset, or bundle it for shipping.

    To .pt: an original Unsup3D checkpoint's weights, unchanged, with the preset's settings
    beside them. To .safetensors: any checkpoint's weights in float16 with their settings.
    """
    from unsup3d_cli import api
    from unsup3d_cli.weights.bundle import BUNDLE_SUFFIX

    check_preset(preset)
    bundle = out.suffix.lower() == BUNDLE_SUFFIX
    if recipe is not None and not bundle:
        raise fail(f"--recipe is stored in {BUNDLE_SUFFIX} bundles only, not in {out.name}")
    with user_errors():
        loaded = api.convert_checkpoint(source, out, preset=preset, force=force,
                                        recipe=recipe or "")  # fmt: skip
    what = f"{loaded.preset} preset" if loaded.preset else f"from {loaded.source_format}"
    typer.echo(f"Wrote {out} ({'float16 bundle, ' if bundle else ''}{what})")
    if "note" in loaded.info:
        typer.echo(f"Note: {loaded.info['note']}")
