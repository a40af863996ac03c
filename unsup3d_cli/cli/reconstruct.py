"""``unsup3d reconstruct``: photos → depth, normals, albedo, light, relit views and a gallery."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from unsup3d_cli.cli.errors import check_device, check_preset, user_errors
from unsup3d_cli.cli.options import (
    DEFAULT_MODEL_HELP,
    DeviceOption,
    PrecisionOption,
    PresetOption,
)

if TYPE_CHECKING:
    from unsup3d_cli.reconstruct import ReconstructSummary

MAX_LISTED = 20
"""Skipped files listed on the console; the rest are in summary.json."""

InputsArg = Annotated[
    list[Path],
    typer.Argument(
        metavar="INPUT...",
        help="Image files (jpg, png, webp, bmp, tiff, ...) and folders, searched recursively.",
        show_default=False,
    ),
]
CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        help="Checkpoint written by 'unsup3d train' or 'unsup3d convert' (e.g. "
        "runs/NAME/TIME/checkpoints/last.pt or a .safetensors bundle; the model is rebuilt "
        "from the config stored in it), or an original Unsup3D checkpoint (see --preset). "
        f"Without it: {DEFAULT_MODEL_HELP}.",
        show_default=False,
    ),
]
OutOption = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        help="Output folder: NAME/ per image, index.html (gallery), summary.json.",
        show_default=False,
    ),
]
DetectFacesOption = Annotated[
    bool | None,
    typer.Option(
        "--detect-faces/--no-detect-faces",
        help="Crop the largest face of each photo (scikit-image's bundled cascade); else the "
        "centred square. Default: on for face models (run name or data root with 'face' or "
        "'celeba'), off otherwise.",
        show_default=False,
    ),
]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")]
RefineOption = Annotated[
    int,
    typer.Option(
        "--refine",
        metavar="STEPS",
        min=0,
        help="Test-time refinement: fit viewpoint and light per image by render-and-compare for "
        "STEPS steps (0: off). The error before and after goes into result.json.",
    ),
]
RefineResidualsOption = Annotated[
    bool,
    typer.Option(
        "--refine-residuals", help="With --refine, also fit small depth and albedo residuals."
    ),
]
AnimateOption = Annotated[
    bool,
    typer.Option("--animate/--no-animate", help="Write a ±60° turntable GIF per image (slower)."),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Overwrite image folders that already exist in --out.")
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="CPU threads for the model (default: every core). On a machine busy with other "
        "work, fewer can be faster.",
        show_default=False,
    ),
]
StrictOption = Annotated[
    bool,
    typer.Option("--strict", help="Stop at the first unreadable or non-image input (exit 1)."),
]


def reconstruct_command(
    inputs: InputsArg,
    out: OutOption,
    checkpoint: CheckpointOption = None,
    detect_faces: DetectFacesOption = None,
    batch_size: BatchSizeOption = 32,
    device: DeviceOption = "auto",
    refine: RefineOption = 0,
    refine_residuals: RefineResidualsOption = False,
    animate: AnimateOption = False,
    force: ForceOption = False,
    strict: StrictOption = False,
    threads: ThreadsOption = None,
    precision: PrecisionOption = "auto",
    preset: PresetOption = None,
) -> None:
    """Reconstruct photos: depth, normals, albedo, light, relit views and an HTML gallery."""
    from unsup3d_cli import api
    from unsup3d_cli.reconstruct import ReconstructOptions
    from unsup3d_cli.weights import bundled_model_path

    check_device(device)
    check_preset(preset)
    options = ReconstructOptions(
        detect_faces=detect_faces, batch_size=batch_size, refine_steps=refine,
        refine_residuals=refine_residuals, animate=animate, force=force, strict=strict,
        threads=threads,
    )  # fmt: skip
    with user_errors():
        checkpoint = bundled_model_path() if checkpoint is None else checkpoint
        summary = api.reconstruct(
            checkpoint, inputs, out, options, device=device, precision=precision, preset=preset
        )
    _report(summary)


def _report(summary: ReconstructSummary) -> None:
    """Print what was done, what was skipped, and where the gallery is."""
    typer.echo(
        f"Reconstructed {summary.processed} image(s) in {summary.seconds:.1f} s "
        f"({summary.images_per_s:.1f} img/s) into {summary.out_dir}"
    )
    if summary.existing:
        typer.echo(f"Kept {summary.existing} existing image folder(s); --force redoes them.")
    if summary.skipped:
        typer.echo(
            f"Skipped {len(summary.skipped)} input(s) (all listed in "
            f"{summary.out_dir / 'summary.json'}):",
            err=True,
        )
        for entry in summary.skipped[:MAX_LISTED]:
            typer.echo(f"  {_one_line(entry.path, entry.reason)}", err=True)
        if len(summary.skipped) > MAX_LISTED:
            typer.echo(f"  ... and {len(summary.skipped) - MAX_LISTED} more", err=True)
    typer.echo(f"Gallery: {summary.gallery}")


def _one_line(path: str, reason: str) -> str:
    return " ".join(f"{path}: {reason}".split())
