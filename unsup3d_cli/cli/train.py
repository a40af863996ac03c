"""``unsup3d train``: fit a model to a dataset described by an experiment config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from unsup3d_cli.cli.errors import check_device, user_errors
from unsup3d_cli.cli.options import (
    ConfigOption,
    DeviceOption,
    ResumeOption,
    RunDirOption,
    SetOption,
)

InitFromOption = Annotated[
    Path | None,
    typer.Option(
        "--init-from",
        metavar="CKPT",
        help="Start from the weights of this checkpoint (an unsup3d one, or an original "
        "Unsup3D checkpointNNN.pth) instead of a random init, to fine-tune; the optimizer "
        "starts afresh. The config decides the architecture, which must match. Ignored when "
        "resuming.",
        dir_okay=False,
        show_default=False,
    ),
]


def train_command(
    config: ConfigOption,
    overrides: SetOption = None,
    run_dir: RunDirOption = None,
    device: DeviceOption = "auto",
    resume: ResumeOption = True,
    init_from: InitFromOption = None,
) -> None:
    """Train Unsup3D with a YAML config and write checkpoints and metrics to a run folder.

    Runs on several processes under torchrun (GPUs or CPUs, one node or several), e.g.
    torchrun --standalone --nproc_per_node=2 -m unsup3d_cli train -c configs/smoke.yaml;
    train.batch_size is then the batch of all processes together.
    """
    from unsup3d_cli import api
    from unsup3d_cli.config import load_config

    check_device(device)
    with user_errors():
        cfg = load_config(config, overrides or ())
        out = api.train(cfg, run_dir=run_dir, device=device, resume=resume, init_from=init_from)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, the main process reports
        typer.echo(f"Run directory: {out}")
