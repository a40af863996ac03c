"""``unsup3d train``: fit a model to a dataset described by an experiment config."""

from __future__ import annotations

import typer

from unsup3d_cli.cli.errors import check_device, user_errors
from unsup3d_cli.cli.options import (
    ConfigOption,
    DeviceOption,
    ResumeOption,
    RunDirOption,
    SetOption,
)


def train_command(
    config: ConfigOption,
    overrides: SetOption = None,
    run_dir: RunDirOption = None,
    device: DeviceOption = "auto",
    resume: ResumeOption = True,
) -> None:
    """Train Unsup3D with a YAML config and write checkpoints and metrics to a run folder."""
    from unsup3d_cli import api
    from unsup3d_cli.config import load_config

    check_device(device)
    with user_errors():
        cfg = load_config(config, overrides or ())
        out = api.train(cfg, run_dir=run_dir, device=device, resume=resume)
    typer.echo(f"Run directory: {out}")
