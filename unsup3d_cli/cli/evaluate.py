"""``unsup3d eval``: SIDE / MAD (and viewpoint) of checkpoints and baselines on a test split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from unsup3d_cli.cli.errors import check_device, check_preset, fail, user_errors
from unsup3d_cli.cli.options import (
    DEFAULT_MODEL_HELP,
    DeviceOption,
    PrecisionOption,
    PresetOption,
)

PERTURBATION_CHOICES = ("L1", "L2", "L3", "asym")
BASELINE_CHOICES = ("const", "avg-gt")

CheckpointsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--checkpoint",
        metavar="CKPT",
        help="Checkpoint written by 'unsup3d train' or 'unsup3d convert' (.pt or a .safetensors "
        "bundle), or an original Unsup3D checkpoint (see --preset); repeatable, one table row "
        f"each. 'bundled' names {DEFAULT_MODEL_HELP} (e.g. beside --baseline); without "
        "--checkpoint or --baseline, that model is evaluated.",
        dir_okay=False,
        show_default=False,
    ),
]
DataOption = Annotated[
    Path,
    typer.Option(
        "--data",
        help="Test split in the synface layout: image/*image*.png and depth/*depth*.png "
        "(+ optional meta.jsonl with ground-truth poses).",
        show_default=False,
    ),
]
BaselineOption = Annotated[
    list[str] | None,
    typer.Option(
        "--baseline",
        metavar="const|avg-gt",
        help="Add a baseline row of the paper's Table 2 (repeatable): 'const' (constant null "
        "depth) or 'avg-gt' (mean training ground-truth depth).",
        show_default=False,
    ),
]
TrainDataOption = Annotated[
    Path | None,
    typer.Option(
        "--train-data",
        help="Training split for 'avg-gt' (default: DATA/../train).",
        show_default=False,
    ),
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="JSON report (default: eval[-MODE][-refineN].json in the first checkpoint's run "
        "folder, in the current folder for the bundled model; not written for baselines only).",
        dir_okay=False,
        show_default=False,
    ),
]
MarkdownOption = Annotated[
    Path | None,
    typer.Option("--markdown", help="Also write the table as markdown.", dir_okay=False),
]
OcclusionOption = Annotated[
    str | None,
    typer.Option(
        "--occlusion",
        metavar="L1|L2|L3|asym",
        help="Perturb the test images: textured occluders over 20-40%, 40-60% or 60-80% of the "
        "face (L1-L3), or one random coloured rectangle blended in (asym).",
        show_default=False,
    ),
]
RefineOption = Annotated[
    int,
    typer.Option("--refine", min=0, help="Test-time render-and-compare steps (0: none)."),
]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")]
CropOption = Annotated[
    str,
    typer.Option(
        "--crop",
        metavar="auto|none|SIDE|TOP,LEFT,H,W",
        help="Crop before resizing to 64: 'auto' uses the checkpoints' data.crop (170 for "
        "configs/synface.yaml).",
    ),
]
WorkersOption = Annotated[int, typer.Option("--num-workers", min=0, help="Loader processes.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the perturbations.")]


def parse_crop(text: str) -> object:
    """'auto' → 'auto', 'none' → None, '170' → 170, 't,l,h,w' → a 4-tuple; ValueError else."""
    value = text.strip().lower()
    if value in ("auto", "none"):
        return None if value == "none" else "auto"
    try:
        numbers = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise ValueError(f"--crop {text!r}: use auto, none, SIDE or TOP,LEFT,H,W") from None
    if len(numbers) == 1 and numbers[0] > 0:
        return numbers[0]
    if len(numbers) == 4 and min(numbers[2:]) > 0 and min(numbers[:2]) >= 0:
        return numbers
    raise ValueError(f"--crop {text!r}: use auto, none, a positive SIDE or TOP,LEFT,H,W")


def default_out(checkpoints: list[Path], occlusion: str | None, refine: int) -> Path | None:
    """``<run folder of the first checkpoint>/eval[-MODE][-refineN].json`` (None without one).

    For the bundled model, whose folder is inside the install, the current folder instead.
    """
    if not checkpoints:
        return None
    first = checkpoints[0]
    run_dir = first.parent.parent if first.parent.name == "checkpoints" else first.parent
    suffix = (f"-{occlusion}" if occlusion else "") + (f"-refine{refine}" if refine else "")
    return (Path() if first == _bundled_path() else run_dir) / f"eval{suffix}.json"


def _bundled_model() -> Path:
    """The bundled model, to evaluate when neither --checkpoint nor --baseline is given."""
    from unsup3d_cli.engine.checkpoint import CheckpointError
    from unsup3d_cli.weights import bundled_model_path

    try:
        return bundled_model_path()
    except CheckpointError as exc:
        raise fail(f"nothing to evaluate: {exc} or --baseline") from None


BUNDLED_NAME = "bundled"
"""``--checkpoint bundled``: the model shipped in the package (unless a file has that name)."""


def _names_bundled(path: Path) -> bool:
    return str(path) == BUNDLED_NAME and not path.exists()


def _bundled_path() -> Path:
    from unsup3d_cli.weights import BUNDLED_MODEL

    return BUNDLED_MODEL


def _check_choices(baselines: list[str], occlusion: str | None) -> None:
    for name in baselines:
        if name not in BASELINE_CHOICES:
            raise fail(f"--baseline {name!r}: use {' or '.join(BASELINE_CHOICES)}")
    if occlusion is not None and occlusion not in PERTURBATION_CHOICES:
        raise fail(f"--occlusion {occlusion!r}: use {', '.join(PERTURBATION_CHOICES)}")


def eval_command(
    data: DataOption,
    checkpoint: CheckpointsOption = None,
    baseline: BaselineOption = None,
    train_data: TrainDataOption = None,
    out: OutOption = None,
    markdown: MarkdownOption = None,
    occlusion: OcclusionOption = None,
    refine: RefineOption = 0,
    batch_size: BatchSizeOption = 64,
    device: DeviceOption = "auto",
    crop: CropOption = "auto",
    num_workers: WorkersOption = 0,
    seed: SeedOption = 0,
    precision: PrecisionOption = "fp32",
    preset: PresetOption = None,
) -> None:
    """Score checkpoints and baselines on a test split: SIDE, MAD and viewpoint (paper §7.1)."""
    checkpoints, baselines = list(checkpoint or []), list(baseline or [])
    _check_choices(baselines, occlusion)
    try:
        crop_value = parse_crop(crop)
    except ValueError as exc:
        raise fail(exc) from None
    from unsup3d_cli import api
    from unsup3d_cli.evaluation import EvalOptions

    check_device(device)
    check_preset(preset)
    if not checkpoints and not baselines:
        checkpoints = [_bundled_model()]
    checkpoints = [_bundled_model() if _names_bundled(p) else p for p in checkpoints]
    out = out or default_out(checkpoints, occlusion, refine)
    try:
        options = EvalOptions(
            baselines=tuple(baselines), train_data=train_data, out=out, markdown=markdown,
            perturbation=occlusion, refine_steps=refine, batch_size=batch_size, device=device,
            crop=crop_value, num_workers=num_workers, seed=seed, precision=precision,
            preset=preset,
        )  # fmt: skip
    except ValueError as exc:
        raise fail(exc) from None
    with user_errors():
        report = api.evaluate(data, checkpoints, options)
    print_table(report)
    for label, path in (("JSON", out), ("Markdown", markdown)):
        if path is not None:
            typer.echo(f"{label}: {path}")


def print_table(report) -> None:
    """The results table on the terminal (rich; plain text when not a terminal)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    headers, cells = report.table()
    table = Table(title="unsup3d eval (mean ± std over images)", box=box.SIMPLE_HEAD,
                  pad_edge=False)  # fmt: skip
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 0 else "right")
    for row in cells:
        table.add_row(*row)
    Console().print(table)
