"""The synthetic-face generator (unsup3d_cli.synthetic) and ``unsup3d synth`` (synth_dataset)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error
from PIL import Image
from typer.testing import CliRunner

from unsup3d_cli.cli import app
from unsup3d_cli.data import PairedDepthDataset, load_depth, load_image
from unsup3d_cli.geometry import euler_to_rotation
from unsup3d_cli.render import Renderer
from unsup3d_cli.synth_dataset import (
    SynthError,
    encode_depth,
    parse_split,
    split_counts,
    write_dataset,
)
from unsup3d_cli.synthetic import (
    BACKGROUND_DEPTH,
    EXPRESSION_KINDS,
    PERTURBATION_KINDS,
    SynthConfig,
    canonical_faces,
    render_faces,
    sample_face,
    synthesize,
    synthetic_sample,
)

SEED, NUM, SPLIT = 3, 20, (0.6, 0.2, 0.2)
COUNTS = {"train": 12, "val": 4, "test": 4}
SYMMETRIC = SynthConfig(expression_probability=0.0, perturbation_probability=0.0)
ASYMMETRIC = SynthConfig(expression_probability=1.0, perturbation_probability=1.0)
META_KEYS = {
    "index", "image", "depth", "rotation", "view_angles_deg", "view_angles_rad", "translation",
    "light", "asymmetry", "background", "foreground_fraction", "identity",
}  # fmt: skip


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def read_meta(split_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (split_dir / "meta.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 faces, seed 3, written in this process in batches of 8."""
    out = tmp_path_factory.mktemp("synth") / "faces"
    write_dataset(out, NUM, SEED, split=SPLIT, workers=1, batch_size=8, style="heightfield")
    return out


# ------------------------------------------------------------------------ the generator


def test_synthetic_sample_shapes_ranges_and_repeatability() -> None:
    image, depth = synthetic_sample(5, 1)
    assert image.shape == (3, 64, 64) and depth.shape == (1, 64, 64)
    assert image.dtype == depth.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    face = depth < BACKGROUND_DEPTH
    assert 0.1 < face.float().mean() < 0.8  # a face, with background around it
    assert depth[~face].eq(BACKGROUND_DEPTH).all()  # background exactly 1.1
    assert 0.9 <= depth.min() and depth.max() <= BACKGROUND_DEPTH
    again_image, again_depth = synthetic_sample(5, 1)
    assert torch.equal(image, again_image) and torch.equal(depth, again_depth)
    assert not torch.equal(image, synthetic_sample(6, 1)[0])
    assert not torch.equal(image, synthetic_sample(5, 2)[0])
    small, small_depth = synthetic_sample(5, 1, size=32)
    assert small.shape == (3, 32, 32) and small_depth.shape == (1, 32, 32)


def test_a_sample_does_not_depend_on_its_batch() -> None:
    batch = synthesize(range(6), 0)
    alone = synthesize([4], 0)
    assert torch.equal(batch.image[4], alone.image[0])
    assert torch.equal(batch.depth[4], alone.depth[0])


def test_canonical_shape_and_albedo_are_mirror_symmetric() -> None:
    faces = canonical_faces([sample_face(i, 0, SYMMETRIC) for i in range(6)], SYMMETRIC)
    for name in ("depth", "surface", "indicator", "albedo", "mask"):
        value = getattr(faces, name)
        assert torch.equal(value, value.flip(-1)), name
    assert 0.9 <= faces.depth.min() and faces.depth.max() <= BACKGROUND_DEPTH
    assert faces.depth[faces.mask].max() < BACKGROUND_DEPTH


def test_asymmetries_break_the_symmetry_and_are_recorded() -> None:
    specs = [sample_face(i, 0, ASYMMETRIC) for i in range(6)]
    faces = canonical_faces(specs, ASYMMETRIC)
    plain = canonical_faces([dataclasses.replace(s, expressions=()) for s in specs], ASYMMETRIC)
    for k, spec in enumerate(specs):
        assert spec.expressions and spec.perturbations
        assert {e.kind for e in spec.expressions} <= set(EXPRESSION_KINDS)
        assert {p.kind for p in spec.perturbations} <= set(PERTURBATION_KINDS)
        assert not torch.equal(faces.albedo[k], faces.albedo[k].flip(-1))
        shift = (faces.depth[k] - plain.depth[k]).abs().max()
        assert 0 < shift < 0.01  # small, expression-like
        assert not torch.equal(faces.depth[k], faces.depth[k].flip(-1))


def test_sampled_views_and_lights_stay_in_range() -> None:
    cfg = SynthConfig()
    specs = [sample_face(i, 7, cfg) for i in range(200)]
    degrees = torch.stack([s.angles for s in specs]).rad2deg().abs()
    limits = torch.tensor([cfg.pitch_range_deg, cfg.yaw_range_deg, cfg.roll_range_deg])
    assert (degrees <= limits + 1e-4).all()
    assert (degrees.amax(0) > 0.9 * limits).all()  # the ranges are used, not just respected
    translation = torch.stack([s.translation for s in specs])
    assert translation[:, :2].abs().max() <= cfg.xy_translation_range
    assert translation[:, 2].eq(0).all()
    light = torch.stack([s.light for s in specs])
    for column, (low, high) in ((0, cfg.ambient_range), (1, cfg.diffuse_range),
                                (4, cfg.specular_range), (5, cfg.shininess_range)):  # fmt: skip
        assert low <= light[:, column].min() and light[:, column].max() <= high
    assert light[:, 2:4].abs().max() <= cfg.light_xy_range
    batch = render_faces(specs[:4], cfg)
    torch.testing.assert_close(batch.light_direction.norm(dim=1), torch.ones(4))
    assert (batch.light_direction[:, 2] > 0).all()


def test_image_and_depth_share_the_rendered_face_mask() -> None:
    batch = synthesize(range(6), 11)
    assert torch.equal(batch.mask, batch.depth < BACKGROUND_DEPTH)
    backgrounds = torch.stack([s.background for s in batch.specs])
    assert torch.equal(
        torch.where(batch.mask, 0.0, batch.image), torch.where(batch.mask, 0.0, backgrounds)
    )
    # Re-render the posed face mesh from the canonical surface and the ground-truth pose.
    renderer = Renderer()
    surface = batch.canonical.surface
    warped = renderer.warp_depth(surface, batch.rotation, batch.translation, (0.0, math.inf))
    view_depth = warped.depth
    assert (view_depth - batch.depth)[batch.mask].abs().max() < 1e-5
    indicator, _ = renderer.render_view(batch.canonical.indicator, surface, batch.rotation,
                                        batch.translation, background=0.0)  # fmt: skip
    rerendered = (indicator >= 0.5) & (view_depth < BACKGROUND_DEPTH - 1e-5)
    assert torch.equal(rerendered, batch.mask)


# ----------------------------------------------------------------------- written datasets


def test_layout_counts_and_dataset_json(dataset: Path) -> None:
    info = json.loads((dataset / "dataset.json").read_text())
    assert info["seed"] == SEED and info["num_images"] == NUM and info["image_size"] == 64
    assert info["counts"] == COUNTS and info["version"]
    assert info["style"] == "heightfield"  # the default style
    assert info["generator_config"]["face_scale"] == SynthConfig().face_scale
    assert info["camera"]["fov_deg"] == 10.0 and info["camera"]["rot_center_depth"] == 1.0
    first = 0
    for split, count in COUNTS.items():
        names = [f"{i:06d}" for i in range(first, first + count)]
        images = sorted(p.name for p in (dataset / split / "image").iterdir())
        depths = sorted(p.name for p in (dataset / split / "depth").iterdir())
        assert images == [f"{n}_image.png" for n in names]
        assert depths == [f"{n}_depth.png" for n in names]
        assert [r["index"] for r in read_meta(dataset / split)] == list(range(first, first + count))
        first += count
    assert not list(dataset.parent.glob(".*partial*"))


def test_pngs_encode_images_and_16_bit_depth(dataset: Path) -> None:
    batch = synthesize(range(12, 16), SEED)  # the val split
    for k, index in enumerate(range(12, 16)):
        depth_file = dataset / "val" / "depth" / f"{index:06d}_depth.png"
        with Image.open(depth_file) as depth_png:
            assert depth_png.mode in ("I;16", "I") and depth_png.size == (64, 64)
            codes = np.asarray(depth_png)
        assert codes.max() <= 65535 and codes[~batch.mask[k, 0].numpy()].max() == 0
        assert codes[batch.mask[k, 0].numpy()].min() > 0
        decoded = load_depth(depth_file, 64)
        assert (decoded - batch.depth[k]).abs().max() <= 0.2 / 65535 * 2
        image = load_image(dataset / "val" / "image" / f"{index:06d}_image.png", 64)
        assert (image - batch.image[k]).abs().max() <= 0.5 / 255 + 1e-6


def test_encode_depth_round_trip_extremes() -> None:
    depth = torch.tensor([[[0.9, 1.0, 1.1, 1.2, 0.8, 1.1 - 1e-6]]])
    assert encode_depth(depth).tolist() == [[65535, 32768, 0, 0, 65535, 0]]
    mask = torch.tensor([[[True, True, False, False, True, True]]])
    assert encode_depth(depth, mask).tolist() == [[65535, 32768, 0, 0, 65535, 1]]


def test_meta_records(dataset: Path) -> None:
    for record in read_meta(dataset / "test"):
        assert set(record) == META_KEYS
        assert (dataset / "test" / record["image"]).is_file()
        assert (dataset / "test" / record["depth"]).is_file()
        rotation = torch.tensor(record["rotation"], dtype=torch.float64)
        radians = torch.tensor(record["view_angles_rad"], dtype=torch.float64)
        torch.testing.assert_close(rotation, euler_to_rotation(radians[None])[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(
            rotation @ rotation.T, torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0
        )
        torch.testing.assert_close(
            radians.rad2deg(), torch.tensor(record["view_angles_deg"], dtype=torch.float64)
        )
        assert len(record["translation"]) == 3
        light = record["light"]
        assert set(light) == {
            "ambient",
            "diffuse",
            "direction",
            "direction_view",
            "specular",
            "shininess",
        }
        assert math.isclose(sum(v * v for v in light["direction"]), 1.0, abs_tol=1e-6)
        assert set(record["asymmetry"]) == {"expressions", "perturbations"}
        assert 0 < record["foreground_fraction"] < 1


def test_rerendering_the_recorded_pose_reproduces_the_depth_mask(dataset: Path) -> None:
    renderer = Renderer()
    records = read_meta(dataset / "train")[:4]
    specs = [sample_face(r["index"], SEED, SynthConfig()) for r in records]
    faces = canonical_faces(specs, SynthConfig())
    rotation = torch.tensor([r["rotation"] for r in records])
    translation = torch.tensor([r["translation"] for r in records])
    view_depth = renderer.warp_depth(faces.surface, rotation, translation, (0.0, math.inf)).depth
    indicator, _ = renderer.render_view(faces.indicator, faces.surface, rotation, translation, 0.0)
    rendered_mask = (indicator >= 0.5) & (view_depth < BACKGROUND_DEPTH - 1e-5)
    for k, record in enumerate(records):
        with Image.open(dataset / "train" / record["depth"]) as png:
            file_mask = torch.from_numpy(np.asarray(png).astype(np.int64) > 0)
        assert torch.equal(file_mask, rendered_mask[k, 0])


def test_bytes_do_not_depend_on_workers_or_batches(dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_dataset(again, NUM, SEED, split=SPLIT, workers=2, batch_size=5, style="heightfield")
    assert tree_bytes(again) == tree_bytes(dataset)


def test_paired_loader_reads_the_output(dataset: Path) -> None:
    items = PairedDepthDataset(dataset / "train", 64, None, ("image", "depth"), ("image", "depth"))
    assert len(items) == COUNTS["train"]
    item = items[0]
    assert item["image"].shape == (3, 64, 64) and item["depth"].shape == (1, 64, 64)


def test_failed_run_leaves_no_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from unsup3d_cli import synth_dataset

    def broken(chunk):  # noqa: ANN001
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth_dataset, "_write_chunk", broken)
    with pytest.raises(RuntimeError):
        write_dataset(tmp_path / "out", 4, workers=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "text", ["0.8,0.1", "0.8,0.1,0.2", "a,b,c", "0.9,0.2,-0.1", "nan,0,1", "0.8;0.1;0.1"]
)
def test_parse_split_rejects(text: str) -> None:
    with pytest.raises(SynthError, match="--split"):
        parse_split(text)


def test_parse_split_and_counts() -> None:
    assert parse_split("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    assert split_counts(200, (0.8, 0.1, 0.1)) == {"train": 160, "val": 20, "test": 20}
    assert split_counts(7, (0.5, 0.5, 0.0)) == {"train": 4, "val": 3, "test": 0}
    assert sum(split_counts(10_001, (0.33, 0.33, 0.34)).values()) == 10_001


# ---------------------------------------------------------------------------------- CLI


def invoke(*args: str):
    env = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    try:
        runner = CliRunner(env=env, mix_stderr=False)
    except TypeError:
        runner = CliRunner(env=env)
    return runner.invoke(app, list(args))


def test_cli_writes_the_same_bytes(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = invoke("synth", str(out), "--num", str(NUM), "--seed", str(SEED), "--split",
                    "0.6,0.2,0.2", "--workers", "1", "--style", "heightfield")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert re.search(r"Wrote 20 heightfield faces \(train/val/test 12/4/4\)", result.stdout)
    assert tree_bytes(out) == tree_bytes(dataset)


def test_cli_refuses_a_non_empty_folder_without_force(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    result = invoke("synth", str(tmp_path), "--num", "2")
    assert_one_line_error(result, str(tmp_path), "--force")
    forced = invoke("synth", str(tmp_path), "--num", "2", "--force")
    assert_one_line_error(forced, "dataset.json")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_cli_force_replaces_an_earlier_output(tmp_path: Path) -> None:
    out = tmp_path / "faces"
    assert invoke("synth", str(out), "--num", "3", "--workers", "1").exit_code == 0
    assert invoke("synth", str(out), "--num", "2", "--workers", "1").exit_code == 1
    result = invoke("synth", str(out), "--num", "2", "--workers", "1", "--force")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "dataset.json").read_text())["num_images"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--split", "0.5,0.5"), "--split"),
        (("--split", "0.7,0.2,0.2"), "sum to 1"),
        (("--num", "0"), "--num"),
        (("--image-size", "4"), "--image-size"),
    ],
)
def test_cli_rejects_bad_options(tmp_path: Path, args: tuple[str, ...], fragment: str) -> None:
    options = {"--num": "2", **dict(zip(args[::2], args[1::2], strict=True))}
    flat = [item for pair in options.items() for item in pair]
    result = invoke("synth", str(tmp_path / "out"), *flat)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "out").exists()
