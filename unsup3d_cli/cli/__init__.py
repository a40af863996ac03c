"""The ``unsup3d`` command line: thin typer commands over :mod:`unsup3d_cli.api`.

Only this package imports typer. Commands import torch and the library lazily, inside the
command function, so ``unsup3d --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from unsup3d_cli import __version__
from unsup3d_cli.cli.convert import convert_command
from unsup3d_cli.cli.evaluate import eval_command
from unsup3d_cli.cli.export import export_command
from unsup3d_cli.cli.reconstruct import reconstruct_command
from unsup3d_cli.cli.synth import synth_command
from unsup3d_cli.cli.train import train_command

app = typer.Typer(
    name="unsup3d",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"unsup3d {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log debug messages as well.")
    ] = False,
) -> None:
    """Unsupervised 3D shape, albedo, light and viewpoint from single-view images.

    A re-implementation of Unsup3D (Wu et al., CVPR 2020) for roughly symmetric objects.
    """
    from unsup3d_cli.engine.logging import setup_logging

    setup_logging(verbose)


app.command("train")(train_command)
app.command("reconstruct")(reconstruct_command)
app.command("export")(export_command)
app.command("eval")(eval_command)
app.command("synth")(synth_command)
app.command("convert")(convert_command)
