"""``unsup3d export``: textured meshes (OBJ + MTL + PNG, PLY, GLB) of reconstructions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from unsup3d_cli.cli.errors import check_preset, fail, user_errors
from unsup3d_cli.cli.options import DEFAULT_MODEL_HELP, DeviceOption, PresetOption

SourcesArg = Annotated[
    list[Path],
    typer.Argument(
        metavar="SOURCE",
        help="'unsup3d reconstruct' output folders (the whole output or one image's folder); "
        "or image files and folders to reconstruct first (see --checkpoint).",
        show_default=False,
    ),
]
OutOption = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        help="Output folder: NAME.obj + NAME.mtl + NAME_TEXTURE.png, NAME.ply, NAME.glb.",
        file_okay=False,
        show_default=False,
    ),
]
FormatOption = Annotated[
    str, typer.Option("--format", "-f", metavar="obj|ply|glb|all", help="Mesh file format(s).")
]
ViewOption = Annotated[
    str,
    typer.Option(
        "--view",
        metavar="canonical|input",
        help="'canonical': the frontal shape; 'input': posed with the predicted viewpoint, as "
        "in the photo.",
    ),
]
TextureOption = Annotated[
    str,
    typer.Option(
        "--texture",
        metavar="albedo|shaded|input",
        help="'albedo' (canonical_albedo.png), 'shaded' (canonical_image.png) or 'input' "
        "(the photo, projected onto the posed shape).",
    ),
]
CutOption = Annotated[
    bool,
    typer.Option(
        "--cut-discontinuities/--no-cut-discontinuities",
        help="Drop triangles across depth steps larger than --max-depth-jump.",
    ),
]
JumpOption = Annotated[
    float,
    typer.Option(
        "--max-depth-jump",
        help="Largest depth step inside a triangle, as a fraction of the model's depth range "
        "(world units with --absolute-jump).",
    ),
]
AbsoluteJumpOption = Annotated[
    bool, typer.Option("--absolute-jump", help="Read --max-depth-jump in world (camera) units.")
]
CentreOption = Annotated[
    bool,
    typer.Option(
        "--centre/--no-centre",
        help="Origin at the rotation pivot, so the object sits at the origin (else the camera).",
    ),
]
CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        help="Reconstruct the SOURCE images with this model first (the maps are not kept; "
        "run 'unsup3d reconstruct' to keep them). Without it, SOURCEs that hold images but no "
        f"reconstruction are reconstructed with {DEFAULT_MODEL_HELP}.",
        dir_okay=False,
        show_default=False,
    ),
]
DetectFacesOption = Annotated[
    bool | None,
    typer.Option(
        "--detect-faces/--no-detect-faces",
        help="When reconstructing images first: crop the largest face (default: as 'unsup3d "
        "reconstruct').",
        show_default=False,
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite existing mesh files.")]


def export_command(
    sources: SourcesArg,
    out: OutOption,
    fmt: FormatOption = "obj",
    view: ViewOption = "canonical",
    texture: TextureOption = "albedo",
    cut: CutOption = True,
    max_jump: JumpOption = 0.1,
    absolute_jump: AbsoluteJumpOption = False,
    centre: CentreOption = True,
    checkpoint: CheckpointOption = None,
    device: DeviceOption = "auto",
    detect_faces: DetectFacesOption = None,
    force: ForceOption = False,
    preset: PresetOption = None,
) -> None:
    """Turn reconstructed depth maps into textured meshes (axes: y up, z toward the viewer)."""
    from unsup3d_cli import api
    from unsup3d_cli.export import MeshOptions, parse_formats

    if checkpoint is None:
        with user_errors():
            checkpoint = _default_model(sources)
    try:
        formats = parse_formats(fmt)
        options = MeshOptions(
            view=view,
            texture=texture,
            cut_discontinuities=cut,
            max_depth_jump=max_jump,
            jump_relative=not absolute_jump,
            centre=centre,
        )
        if checkpoint is not None:
            api.resolve_device(device)
    except ValueError as exc:
        raise fail(exc) from None
    check_preset(preset)
    with user_errors():
        exported = api.export_meshes(
            sources, out, formats=formats, options=options, checkpoint=checkpoint,
            device=device, detect_faces=detect_faces, force=force, preset=preset,
        )  # fmt: skip
    typer.echo(f"Wrote {len(exported)} mesh(es) as {', '.join(formats)} to {out}")


def _default_model(sources: list[Path]) -> Path | None:
    """The bundled model when the sources hold images rather than reconstructions, else None.

    Raises:
        CheckpointError: images to reconstruct, and no bundled model in this install.
    """
    from unsup3d_cli.export import ExportError, find_records
    from unsup3d_cli.weights import bundled_model_path

    try:
        find_records(sources)
    except ExportError:
        if any(_holds_images(source) for source in sources):
            return bundled_model_path()
    return None  # reconstructions, or nothing usable: export_meshes names the problem


def _holds_images(path: Path) -> bool:
    """Whether ``path`` is an image file or a folder with one somewhere inside."""
    from unsup3d_cli.images import IMAGE_EXTENSIONS

    if path.is_file():
        return path.suffix.lower() in IMAGE_EXTENSIONS
    return path.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.rglob("*"))
