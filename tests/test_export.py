"""Meshes from reconstruct folders: counts, purity, files, views, textures and the CLI.

The reconstruct folders are written here (per the contract's format), not by ``reconstruct``.
Expected vertex/face counts come from an independent loop over the pixel grid.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import trimesh
from cli_helpers import assert_one_line_error, runner
from PIL import Image

from unsup3d_cli import api
from unsup3d_cli.cli import app
from unsup3d_cli.export import (
    CameraInfo,
    ExportError,
    MeshOptions,
    ReconstructionRecord,
    build_mesh,
    export_folders,
    export_record,
    find_records,
    load_record,
    parse_formats,
    sample_texture,
)
from unsup3d_cli.reconstruct import ReconstructOptions

SIZE = 64
FOV_DEG = 10.0
PIVOT = 1.0
DEPTH_RANGE = (0.9, 1.1)
BORDER = 1.04
FILE_AXES = np.diag([1.0, -1.0, -1.0])
ROTATION_DEG = (10.0, 20.0, 5.0)
TRANSLATION = (0.01, -0.02, 0.03)


# ---------------------------------------------------------------------------------------------
# Fixtures: synthetic reconstruct folders


def bump_depth() -> np.ndarray:
    """A Gaussian bump at 1.0 − 0.05, border columns, background rows, two invalid pixels."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    depth = 1.0 - 0.05 * np.exp(-((rows - 32) ** 2 + (cols - 32) ** 2) / (2 * 12.0**2))
    depth[:6, :] = DEPTH_RANGE[1]  # background (far plane)
    depth[:, :2] = BORDER
    depth[:, -2:] = BORDER
    depth[40, 20] = np.nan
    depth[50, 50] = 0.0
    return depth.astype(np.float32)


def step_depth() -> np.ndarray:
    """1.0 left of column 32, 1.05 from it on: a 0.05 step (0.25 of the depth range)."""
    depth = np.full((SIZE, SIZE), 1.0)
    depth[:, 32:] = 1.05
    depth[:, :2] = BORDER
    depth[:, -2:] = BORDER
    return depth.astype(np.float32)


def pattern_image(seed: int) -> np.ndarray:
    """An RGB image with a distinct colour per pixel, (S, S, 3) uint8."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    return np.stack([cols * 4, rows * 4, (rows * 7 + cols * 3 + seed) % 256], axis=-1).astype(
        np.uint8
    )


def write_folder(
    folder: Path,
    depth: np.ndarray,
    rotation_deg=(0.0, 0.0, 0.0),
    translation=(0.0, 0.0, 0.0),
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "canonical_depth.npy", depth)
    for seed, name in enumerate(("canonical_albedo", "canonical_image", "input")):
        Image.fromarray(pattern_image(seed)).save(folder / f"{name}.png")
    result = {
        "source": f"{folder.name}.png",
        "checkpoint": "tiny.pt",
        "crop": {"method": "full", "box": [0, 0, SIZE, SIZE]},
        "view": {"rotation_deg": list(rotation_deg), "translation": list(translation)},
        "light": {"ambient": 0.5, "diffuse": 0.5, "direction": [0.0, 0.0, 1.0]},
        "camera": {"fov_deg": FOV_DEG, "image_size": SIZE, "rot_center_depth": PIVOT},
        "depth_range": list(DEPTH_RANGE),
        "border_depth": BORDER,
        "photometric_error": {"before": 0.1, "after": None},
    }
    (folder / "result.json").write_text(json.dumps(result))
    return folder


@pytest.fixture
def recon_dir(tmp_path: Path) -> Path:
    """A reconstruct output folder with two images: a posed bump and a frontal step."""
    root = tmp_path / "recon"
    write_folder(root / "bump", bump_depth(), ROTATION_DEG, TRANSLATION)
    write_folder(root / "step", step_depth())
    (root / "index.html").write_text("<html></html>")
    return root


def record_of(depth: np.ndarray, rotation_deg=(0.0, 0.0, 0.0), translation=(0.0, 0.0, 0.0)):
    return ReconstructionRecord(
        name="mem",
        canonical_depth=depth,
        camera=CameraInfo(fov_deg=FOV_DEG, image_size=SIZE, rot_center_depth=PIVOT),
        rotation_deg=rotation_deg,
        translation=translation,
        depth_range=DEPTH_RANGE,
        border_depth=BORDER,
    )


# ---------------------------------------------------------------------------------------------
# Independent references


def expected_counts(depth: np.ndarray, max_jump: float | None, columns: int = 2) -> tuple:
    """(vertices, faces) by looping over grid cells: two triangles per cell, as the renderer."""
    depth = depth.astype(np.float64)
    height, width = depth.shape

    def kept(r: int, c: int) -> bool:
        d = depth[r, c]
        return bool(np.isfinite(d) and 0 < d < DEPTH_RANGE[1] - 1e-6) and (
            columns <= c < width - columns
        )

    used, faces = set(), 0
    for r in range(height - 1):
        for c in range(width - 1):
            cell = (((r, c), (r + 1, c), (r, c + 1)), ((r, c + 1), (r + 1, c), (r + 1, c + 1)))
            for tri in cell:
                if not all(kept(*p) for p in tri):
                    continue
                zs = [depth[p] for p in tri]
                if max_jump is not None and max(zs) - min(zs) > max_jump:
                    continue
                faces += 1
                used.update(tri)
    return len(used), faces


def camera_point(depth: np.ndarray, row: int, col: int) -> np.ndarray:
    centre = (SIZE - 1) / 2
    focal = centre / math.tan(math.radians(FOV_DEG) / 2)
    d = float(depth[row, col])
    return np.array([d * (col - centre) / focal, d * (row - centre) / focal, d])


def rotation_matrix(degrees) -> np.ndarray:
    rx, ry, rz = (math.radians(a) for a in degrees)
    cx, sx, cy, sy, cz, sz = (f(a) for a in (rx, ry, rz) for f in (math.cos, math.sin))
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def vertex_of(mesh, row: int, col: int) -> int:
    (index,) = np.flatnonzero(mesh.pixels == row * SIZE + col)
    return int(index)


def load_mesh(path: Path) -> trimesh.Trimesh:
    return trimesh.load(path, force="mesh", process=False)


# ---------------------------------------------------------------------------------------------
# Round trips


def test_every_format_loads_back_with_the_expected_counts(recon_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "meshes"
    exported = export_folders(find_records([recon_dir]), out, ("obj", "ply", "glb"))
    assert [e.name for e in exported] == ["bump", "step"]
    jump = 0.1 * (DEPTH_RANGE[1] - DEPTH_RANGE[0])
    for name, depth in (("bump", bump_depth()), ("step", step_depth())):
        n_vertices, n_faces = expected_counts(depth, jump)
        for fmt in ("obj", "ply", "glb"):
            mesh = load_mesh(out / f"{name}.{fmt}")
            assert mesh.vertices.shape == (n_vertices, 3), (name, fmt)
            assert mesh.faces.shape == (n_faces, 3), (name, fmt)


def test_counts_without_cutting_match_the_grid(recon_dir: Path, tmp_path: Path) -> None:
    options = MeshOptions(cut_discontinuities=False)
    export_folders([recon_dir / "bump"], tmp_path / "o", ("ply",), options)
    mesh = load_mesh(tmp_path / "o" / "bump.ply")
    assert (len(mesh.vertices), len(mesh.faces)) == expected_counts(bump_depth(), None)


def test_obj_references_its_material_and_texture(recon_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "meshes"
    export_folders([recon_dir / "bump"], out, ("obj",), MeshOptions(texture="shaded"))
    lines = (out / "bump.obj").read_text().splitlines()
    mtllib = [line.split()[1] for line in lines if line.startswith("mtllib ")]
    assert mtllib == ["bump.mtl"]
    material = (out / "bump.mtl").read_text().splitlines()
    (texture,) = [line.split()[1] for line in material if line.startswith("map_Kd ")]
    assert texture == "bump_shaded.png"
    saved = np.asarray(Image.open(out / texture))
    assert np.array_equal(saved, pattern_image(1))  # canonical_image.png, unchanged
    uv = np.array([[float(x) for x in line.split()[1:]] for line in lines if line[:3] == "vt "])
    assert len(uv) == sum(line.startswith("v ") for line in lines)
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    loaded = load_mesh(out / "bump.obj")
    assert loaded.visual.uv is not None and loaded.visual.material.image is not None


def test_glb_embeds_the_texture_and_keeps_the_uvs(recon_dir: Path, tmp_path: Path) -> None:
    options = MeshOptions(texture="input", view="input")
    export_folders([recon_dir / "bump"], tmp_path, ("glb",), options)
    loaded = load_mesh(tmp_path / "bump.glb")
    mesh = build_mesh(load_record(recon_dir / "bump"), options)
    image = loaded.visual.material.baseColorTexture
    assert np.array_equal(np.asarray(image.convert("RGB")), pattern_image(2))
    np.testing.assert_allclose(loaded.visual.uv, mesh.uv, atol=1e-6)
    np.testing.assert_allclose(loaded.vertices, mesh.vertices, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Purity


def test_inputs_are_never_modified(tmp_path: Path) -> None:
    depth = bump_depth()
    depth.setflags(write=False)  # any in-place write raises
    before = depth.copy()
    texture = pattern_image(0)
    texture.setflags(write=False)
    record = record_of(depth, ROTATION_DEG, TRANSLATION)
    for view in ("canonical", "input"):
        for tex in ("albedo", "input"):
            for centre in (True, False):
                build_mesh(record, MeshOptions(view=view, texture=tex, centre=centre))
    export_record(record, texture, tmp_path, "mem", ("obj", "ply", "glb"), MeshOptions())
    sample_texture(texture, np.array([[0.5, 0.5]]))
    np.testing.assert_array_equal(depth, before, strict=True)
    assert np.array_equal(texture, pattern_image(0))


# ---------------------------------------------------------------------------------------------
# Geometry


def test_cutting_removes_exactly_the_faces_across_the_step() -> None:
    record = record_of(step_depth())
    whole = build_mesh(record, MeshOptions(cut_discontinuities=False))
    cut = build_mesh(record, MeshOptions())  # 0.1 of the range = 0.02 < 0.05
    valid_columns, rows = SIZE - 4, SIZE
    assert len(whole.faces) == 2 * (rows - 1) * (valid_columns - 1)
    assert len(cut.faces) == len(whole.faces) - 2 * (rows - 1)  # the cells of columns 31–32
    assert len(cut.vertices) == len(whole.vertices) == rows * valid_columns
    side = (cut.pixels[cut.faces] % SIZE) >= 32  # (F, 3)
    assert np.all(side.all(axis=1) | ~side.any(axis=1))  # no kept face straddles the step
    absolute = build_mesh(record, MeshOptions(max_depth_jump=0.04, jump_relative=False))
    assert len(absolute.faces) == len(cut.faces)
    loose = build_mesh(record, MeshOptions(max_depth_jump=0.06, jump_relative=False))
    assert len(loose.faces) == len(whole.faces)


def test_canonical_and_input_view_differ_by_the_stored_transform() -> None:
    depth = bump_depth()
    record = record_of(depth, ROTATION_DEG, TRANSLATION)
    canonical = build_mesh(record, MeshOptions(view="canonical"))
    posed = build_mesh(record, MeshOptions(view="input"))
    np.testing.assert_array_equal(canonical.pixels, posed.pixels)
    np.testing.assert_array_equal(canonical.faces, posed.faces)
    rotation, translation = rotation_matrix(ROTATION_DEG), np.array(TRANSLATION)
    pivot = np.array([0.0, 0.0, PIVOT])
    point = camera_point(depth, 30, 40)
    index = vertex_of(canonical, 30, 40)
    np.testing.assert_allclose(canonical.vertices[index], FILE_AXES @ (point - pivot), atol=1e-9)
    expected = FILE_AXES @ (rotation @ (point - pivot) + translation)
    np.testing.assert_allclose(posed.vertices[index], expected, atol=1e-9)
    # all vertices: posed = (F R F) canonical + F t in the centred file frame
    mapped = canonical.vertices @ (FILE_AXES @ rotation @ FILE_AXES).T + FILE_AXES @ translation
    np.testing.assert_allclose(posed.vertices, mapped, atol=1e-9)
    uncentred = build_mesh(record, MeshOptions(view="input", centre=False))
    expected = FILE_AXES @ (rotation @ (point - pivot) + pivot + translation)
    np.testing.assert_allclose(uncentred.vertices[index], expected, atol=1e-9)


def test_input_view_applies_the_stored_scale_about_the_pivot(tmp_path: Path) -> None:
    depth = bump_depth()
    folder = write_folder(tmp_path / "face", depth, ROTATION_DEG, TRANSLATION)
    result = json.loads((folder / "result.json").read_text())
    result["view"]["scale"] = 0.8
    (folder / "result.json").write_text(json.dumps(result))
    record = load_record(folder)
    assert record.scale == 0.8
    posed = build_mesh(record, MeshOptions(view="input"))
    rotation, translation = rotation_matrix(ROTATION_DEG), np.array(TRANSLATION)
    point, pivot = camera_point(depth, 30, 40), np.array([0.0, 0.0, PIVOT])
    expected = FILE_AXES @ (0.8 * rotation @ (point - pivot) + translation)
    np.testing.assert_allclose(posed.vertices[vertex_of(posed, 30, 40)], expected, atol=1e-9)
    result["view"]["scale"] = -1.0
    (folder / "result.json").write_text(json.dumps(result))
    with pytest.raises(ExportError, match="'view.scale' must be > 0"):
        load_record(folder)


def test_meshes_are_upright_and_face_the_viewer() -> None:
    mesh = build_mesh(record_of(bump_depth()), MeshOptions())
    top, bottom = vertex_of(mesh, 10, 32), vertex_of(mesh, 50, 32)
    assert mesh.vertices[top, 1] > mesh.vertices[bottom, 1]  # y up
    left, right = vertex_of(mesh, 32, 10), vertex_of(mesh, 32, 50)
    assert mesh.vertices[left, 0] < mesh.vertices[right, 0]  # x right
    centre = vertex_of(mesh, 32, 32)
    assert mesh.vertices[centre, 2] > mesh.vertices[left, 2]  # the bump comes toward +z
    corners = mesh.vertices[mesh.faces]  # (F, 3, 3)
    winding = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert np.all(winding[:, 2] > 0)  # counter-clockwise seen from +z
    assert np.all(mesh.normals[:, 2] > 0.5)


# ---------------------------------------------------------------------------------------------
# Textures


def test_grid_textures_map_each_vertex_to_its_pixel(recon_dir: Path, tmp_path: Path) -> None:
    record = load_record(recon_dir / "bump")
    mesh = build_mesh(record, MeshOptions(texture="albedo", view="input"))
    rows, cols = np.divmod(mesh.pixels, SIZE)
    np.testing.assert_allclose(mesh.uv[:, 0], (cols + 0.5) / SIZE)
    np.testing.assert_allclose(mesh.uv[:, 1], 1 - (rows + 0.5) / SIZE)
    export_folders([recon_dir / "bump"], tmp_path, ("ply",), MeshOptions(texture="albedo"))
    colours = load_mesh(tmp_path / "bump.ply").visual.vertex_colors[:, :3]
    np.testing.assert_array_equal(colours, pattern_image(0)[rows, cols])


@pytest.mark.parametrize("fmt", ["obj", "glb"])
def test_trimesh_reads_the_texture_at_each_vertex_pixel(
    recon_dir: Path, tmp_path: Path, fmt: str
) -> None:
    """trimesh's own UV lookup (v up, origin bottom-left) agrees with the pixel grid."""
    export_folders([recon_dir / "step"], tmp_path, (fmt,), MeshOptions(texture="albedo"))
    loaded = load_mesh(tmp_path / f"step.{fmt}")
    mesh = build_mesh(load_record(recon_dir / "step"), MeshOptions(texture="albedo"))
    rows, cols = np.divmod(mesh.pixels, SIZE)
    colours = loaded.visual.to_color().vertex_colors[:, :3]
    np.testing.assert_array_equal(colours, pattern_image(0)[rows, cols])


def test_input_texture_lands_on_the_pixel_for_the_identity_view(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "recon" / "frontal", bump_depth())
    options = MeshOptions(texture="input", view="input")
    mesh = build_mesh(load_record(folder), options)
    rows, cols = np.divmod(mesh.pixels, SIZE)
    np.testing.assert_allclose(mesh.uv[:, 0], (cols + 0.5) / SIZE, atol=1e-9)
    np.testing.assert_allclose(mesh.uv[:, 1], 1 - (rows + 0.5) / SIZE, atol=1e-9)
    export_folders([folder], tmp_path / "out", ("ply",), options)
    colours = load_mesh(tmp_path / "out" / "frontal.ply").visual.vertex_colors[:, :3]
    np.testing.assert_array_equal(colours, pattern_image(2)[rows, cols])


def test_input_texture_uvs_stay_in_the_unit_square_when_posed() -> None:
    record = record_of(bump_depth(), (0.0, 60.0, 0.0), (0.05, 0.0, 0.0))
    mesh = build_mesh(record, MeshOptions(texture="input"))
    assert mesh.uv.min() >= 0.0 and mesh.uv.max() <= 1.0
    assert np.ptp(mesh.uv[:, 0]) > 0.1  # not collapsed


# ---------------------------------------------------------------------------------------------
# Reading folders and errors


def test_find_records_takes_a_whole_output_or_one_folder(recon_dir: Path) -> None:
    assert [p.name for p in find_records([recon_dir])] == ["bump", "step"]
    assert [p.name for p in find_records([recon_dir / "step"])] == ["step"]
    assert len(find_records([recon_dir, recon_dir / "step"])) == 2  # no duplicates


def test_same_names_from_two_outputs_get_suffixes(tmp_path: Path) -> None:
    first = write_folder(tmp_path / "a" / "face", step_depth())
    second = write_folder(tmp_path / "b" / "face", step_depth())
    exported = export_folders([first, second], tmp_path / "out", ("ply",))
    assert [e.name for e in exported] == ["face", "face_2"]
    assert (tmp_path / "out" / "face_2.ply").is_file()


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda r: r["camera"].pop("fov_deg"), "'camera.fov_deg'"),
        (lambda r: r["view"].update(rotation_deg=[1, 2]), "'view.rotation_deg'"),
        (lambda r: r.pop("depth_range"), "'depth_range'"),
    ],
)
def test_malformed_result_json_names_the_file_and_key(tmp_path: Path, edit, fragment) -> None:
    folder = write_folder(tmp_path / "face", step_depth())
    result = json.loads((folder / "result.json").read_text())
    edit(result)
    (folder / "result.json").write_text(json.dumps(result))
    with pytest.raises(ExportError, match="result.json") as info:
        load_record(folder)
    assert fragment in str(info.value)


def test_depth_of_the_wrong_size_is_reported(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "face", step_depth())
    np.save(folder / "canonical_depth.npy", np.ones((32, 32), np.float32))
    with pytest.raises(ExportError, match="canonical_depth.npy"):
        export_folders([folder], tmp_path / "out")


def test_a_depth_map_with_no_surface_is_reported(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "face", np.full((SIZE, SIZE), 1.1, np.float32))
    with pytest.raises(ExportError, match="canonical_depth.npy: no surface"):
        export_folders([folder], tmp_path / "out")


def test_names_with_spaces_become_valid_obj_references(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "my face", step_depth())
    export_folders([folder], tmp_path / "out", ("obj",))
    assert "mtllib my_face.mtl" in (tmp_path / "out" / "my_face.obj").read_text()
    assert len(load_mesh(tmp_path / "out" / "my_face.obj").faces) > 0


def test_parse_formats() -> None:
    assert parse_formats("all") == ("obj", "ply", "glb")
    assert parse_formats("glb,obj,glb") == ("glb", "obj")
    with pytest.raises(ValueError, match="stl"):
        parse_formats("stl")


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_writes_all_formats_and_refuses_to_overwrite(recon_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "meshes"
    args = ["export", str(recon_dir), "--out", str(out), "--format", "all", "--view", "input"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Wrote 2 mesh(es)" in result.stdout
    for name in ("bump", "step"):
        for suffix in (".obj", ".mtl", "_albedo.png", ".ply", ".glb"):
            assert (out / f"{name}{suffix}").is_file()
    assert_one_line_error(runner.invoke(app, args), str(out / "bump.obj"), "--force")
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


@pytest.mark.parametrize(
    ("make_args", "fragments"),
    [
        (lambda d, t: [str(t / "missing")], lambda d, t: [str(t / "missing")]),
        (lambda d, t: [str(t / "empty")], lambda d, t: [str(t / "empty" / "result.json")]),
        (lambda d, t: [str(d), "--format", "stl"], lambda d, t: ["stl"]),
        (lambda d, t: [str(d), "--view", "side"], lambda d, t: ["side"]),
        (lambda d, t: [str(d), "--texture", "wood"], lambda d, t: ["wood"]),
        (
            lambda d, t: [str(d / "step" / "result.json")],
            lambda d, t: [str(d / "step" / "result.json")],
        ),
    ],
    ids=["missing", "no-result-json", "format", "view", "texture", "file-source"],
)
def test_cli_errors_are_one_line(recon_dir: Path, tmp_path: Path, make_args, fragments) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    args = ["export", *make_args(recon_dir, tmp_path), "--out", str(tmp_path / "out")]
    assert_one_line_error(runner.invoke(app, args), *fragments(recon_dir, tmp_path))


def test_cli_reports_a_missing_texture_file(recon_dir: Path, tmp_path: Path) -> None:
    (recon_dir / "step" / "input.png").unlink()
    args = ["export", str(recon_dir), "--out", str(tmp_path / "o"), "--texture", "input"]
    assert_one_line_error(runner.invoke(app, args), str(recon_dir / "step" / "input.png"))
    assert not (tmp_path / "o").exists()  # checked before anything is written


# ---------------------------------------------------------------------------------------------
# --checkpoint: reconstruct first


def test_checkpoint_runs_reconstruct_into_a_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_reconstruct(checkpoint, inputs, out_dir, options, **kwargs):
        calls.append((checkpoint, inputs, out_dir, options, kwargs))
        for path in inputs:
            write_folder(Path(out_dir) / Path(path).stem, bump_depth())
        return {"done": len(inputs)}

    monkeypatch.setattr(api, "reconstruct", fake_reconstruct, raising=False)
    images = [tmp_path / "a.png", tmp_path / "b.png"]
    exported = api.export_meshes(
        images, tmp_path / "out", formats=("glb",), checkpoint=tmp_path / "m.pt", device="cpu"
    )
    assert [e.name for e in exported] == ["a", "b"]
    ((checkpoint, inputs, work_dir, options, kwargs),) = calls
    assert checkpoint == tmp_path / "m.pt" and inputs == images
    assert options == ReconstructOptions(detect_faces=None, force=True)  # None: the model decides
    assert kwargs == {"device": "cpu", "preset": None}
    assert not Path(work_dir).exists()  # the temporary folder is gone
    _, n_faces = expected_counts(bump_depth(), 0.1 * (DEPTH_RANGE[1] - DEPTH_RANGE[0]))
    assert len(load_mesh(tmp_path / "out" / "a.glb").faces) == n_faces


def test_cli_checkpoint_end_to_end(tiny_checkpoint: Path, tmp_path: Path) -> None:
    images = tmp_path / "photos"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        pixels = rng.integers(0, 256, size=(80, 72, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"photo{index}.png")
    out = tmp_path / "meshes"
    args = ["export", str(images), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    options = ["--format", "all", "--view", "input", "--texture", "input", "--device", "cpu"]
    result = runner.invoke(app, [*args, *options])
    assert result.exit_code == 0, result.output
    for fmt in ("obj", "ply", "glb"):
        meshes = sorted(out.glob(f"*.{fmt}"))
        assert [path.stem for path in meshes] == ["photo0", "photo1"]
        assert all(len(load_mesh(path).faces) > 0 for path in meshes)
