"""``unsup3d synth``: generate synthetic faces with ground-truth depth in the synface layout."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from unsup3d_cli.cli.errors import user_errors

OutDirArgument = Annotated[
    Path,
    typer.Argument(
        help="Output folder: {train,val,test}/{image,depth}/ + meta.jsonl, dataset.json.",
        file_okay=False,
        show_default=False,
    ),
]
NumOption = Annotated[int, typer.Option("--num", "-n", help="Number of images in all splits.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Dataset seed (same seed → same bytes).")]
ImageSizeOption = Annotated[int, typer.Option("--image-size", help="Image side in pixels.")]
SplitOption = Annotated[
    str, typer.Option("--split", metavar="TRAIN,VAL,TEST", help="Fractions of the three splits.")
]
WorkersOption = Annotated[
    int,
    typer.Option(
        "--workers", "-j", help="Processes (0: one per CPU core); results do not depend on it."
    ),
]
StyleOption = Annotated[
    str | None,
    typer.Option(
        "--style",
        metavar="heightfield|mesh",
        help="Face generator: 'mesh' (default; triangle-mesh heads with hair and neck from a "
        "rasterizer that shares no code with the model's, with fill light, specular and gamma; "
        "~0.1 s per face per worker) or 'heightfield' (depth-map faces drawn by the model's "
        "own renderer: fast, for tests, but the model is scored on its own images).",
        show_default=False,
    ),
]
FaceFractionOption = Annotated[
    str | None,
    typer.Option(
        "--face-fraction",
        metavar="LOW,HIGH",
        help="Mesh style: the range the head's share of the image is drawn from (default "
        "0.3,0.7; '0.5,0.5' for one framing).",
        show_default=False,
    ),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace OUT_DIR when it holds an earlier synth output.")
]


def synth_command(
    out_dir: OutDirArgument,
    num: NumOption,
    seed: SeedOption = 0,
    image_size: ImageSizeOption = 64,
    split: SplitOption = "0.8,0.1,0.1",
    workers: WorkersOption = 0,
    style: StyleOption = None,
    face_fraction: FaceFractionOption = None,
    force: ForceOption = False,
) -> None:
    """Render synthetic faces with ground-truth depth, pose and light (synface layout)."""
    from unsup3d_cli import api
    from unsup3d_cli.synth_dataset import default_workers, parse_face_fraction, parse_split

    with user_errors():
        run = partial(api.synthesize, out_dir, num, seed, image_size=image_size,
                      split=parse_split(split), workers=workers or default_workers(),
                      force=force, style=style,
                      face_fraction=parse_face_fraction(face_fraction))  # fmt: skip
        if sys.stderr.isatty():
            with typer.progressbar(length=num, label="Rendering", file=sys.stderr) as bar:
                summary = run(progress=bar.update)
        else:
            summary = run()
    counts = "/".join(str(summary.counts[s]) for s in ("train", "val", "test"))
    typer.echo(
        f"Wrote {num} {summary.style} faces (train/val/test {counts}) to {summary.out_dir} "
        f"in {summary.seconds:.1f} s with {summary.workers} worker(s)"
    )
