"""Shared ``Annotated`` aliases for the options of the ``unsup3d`` commands.

Each alias carries its flag names and help text, so every command that takes, say, a config
file spells and documents it the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_MODEL_HELP = (
    "the model bundled with this install (unsup3d_cli/weights/synth_faces.safetensors), where "
    "it has one"
)
"""The default model, as the help of each command that takes --checkpoint names it."""

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help="Experiment YAML file (see configs/); missing keys take the built-in defaults.",
        dir_okay=False,
        show_default=False,
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="SECTION.KEY=VALUE",
        help="Override one config value, e.g. --set train.lr=2e-4 (repeatable; values are "
        "Python literals, anything else is read as a string).",
        show_default=False,
    ),
]
RunDirOption = Annotated[
    Path | None,
    typer.Option(
        "--run-dir",
        help="Folder for config.yaml, checkpoints/, metrics.jsonl and tb/ "
        "(default: runs/NAME/YYYYmmdd-HHMMSS, NAME from the config).",
        file_okay=False,
        show_default=False,
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        metavar="auto|cpu|cuda|cuda:N",
        help="Where to run: 'auto' picks CUDA when available, else the CPU.",
    ),
]
ResumeOption = Annotated[
    bool,
    typer.Option(
        "--resume/--no-resume",
        help="Continue from checkpoints/last.pt in the run folder when it exists, or start afresh.",
    ),
]
PrecisionOption = Annotated[
    str,
    typer.Option(
        "--precision",
        metavar="auto|fp32|bf16",
        help="Arithmetic of the networks: bf16 runs them under bfloat16 autocast, about 1.7× "
        "faster on CPUs with native bfloat16 (AVX512-BF16, AMX) and on GPUs, slower on other "
        "CPUs; depth values move by less than 1e-3. Rendering and metrics stay float32. auto: "
        "bf16 where the device has native bfloat16, else fp32.",
    ),
]
PresetOption = Annotated[
    str | None,
    typer.Option(
        "--preset",
        metavar="celeba|cat|synface|syncar",
        help="For a checkpoint of the original Unsup3D code (netD/netA/netL/netV/netC weights, "
        "e.g. pretrained_celeba/checkpoint030.pth): the settings it was trained with (depth, "
        "rotation and translation ranges, border depth, crop). Default: celeba. Our own "
        "checkpoints carry their settings and ignore it.",
        show_default=False,
    ),
]
