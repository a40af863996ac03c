"""``unsup3d synth --style``: both generators write the synface layout that ``unsup3d eval`` reads.

The heightfield style has its own tests in test_synthetic.py; here a tiny mesh dataset (6 faces:
3 train, 3 test) is written once and checked against the generator, across worker counts and
through ``unsup3d eval``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, runner
from PIL import Image

from unsup3d_cli import api
from unsup3d_cli.cli import app
from unsup3d_cli.data import load_depth, load_image
from unsup3d_cli.geometry import euler_to_rotation
from unsup3d_cli.synth_dataset import STYLES, SynthError, write_dataset
from unsup3d_cli.synth_mesh import MESH_GENERATOR_VERSION, MeshSynthConfig, synthesize_mesh

SEED, NUM, SPLIT = 5, 6, (0.5, 0.0, 0.5)
COUNTS = {"train": 3, "val": 0, "test": 3}
SHARED_KEYS = {
    "index", "image", "depth", "rotation", "view_angles_deg", "view_angles_rad", "translation",
    "light", "background", "foreground_fraction", "identity",
}  # fmt: skip
MESH_KEYS = {
    "face_fraction", "face_fraction_target", "head_scale", "expression", "colours", "hair", "neck",
}  # fmt: skip
LIGHT_KEYS = {"ambient", "diffuse", "direction", "direction_view", "specular", "shininess"}
FILL_KEYS = {"fill", "fill_direction", "fill_direction_view", "fill_tint"}
HAIR_KEYS = {"front_line", "back_line", "volume"}


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def read_meta(split_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (split_dir / "meta.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def mesh_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 mesh faces of seed 5 (train 0-2, test 3-5), written in this process."""
    out = tmp_path_factory.mktemp("styles") / "mesh"
    summary = api.synthesize(out, NUM, SEED, split=SPLIT, workers=1, style="mesh")
    assert summary.style == "mesh" and summary.counts == COUNTS
    return out


def test_dataset_json_records_the_style_and_its_config(mesh_dataset: Path) -> None:
    info = json.loads((mesh_dataset / "dataset.json").read_text())
    assert info["style"] == "mesh" and info["version"] == MESH_GENERATOR_VERSION
    assert info["counts"] == COUNTS and info["index_ranges"]["test"] == [3, 6]
    assert info["generator_config"] == json.loads(json.dumps(asdict(MeshSynthConfig())))
    assert info["camera"]["focal_px"] == pytest.approx(MeshSynthConfig().focal_px)
    assert info["camera"]["rot_center_depth"] == 1.0
    assert not list(mesh_dataset.parent.glob(".*partial*"))


def test_mesh_meta_records_use_the_shared_conventions(mesh_dataset: Path) -> None:
    records = read_meta(mesh_dataset / "train") + read_meta(mesh_dataset / "test")
    assert [r["index"] for r in records] == list(range(NUM))
    assert read_meta(mesh_dataset / "val") == []
    for record in records:
        assert set(record) == SHARED_KEYS | MESH_KEYS
        assert set(record["light"]) == LIGHT_KEYS | FILL_KEYS
        rotation = torch.tensor(record["rotation"], dtype=torch.float64)
        radians = torch.tensor(record["view_angles_rad"], dtype=torch.float64)
        # the model's own R = Rz·Ry·Rx, not the mesh generator's copy of it
        torch.testing.assert_close(rotation, euler_to_rotation(radians[None])[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(
            radians.rad2deg().tolist(), record["view_angles_deg"], atol=1e-6, rtol=0
        )
        light = record["light"]
        direction = torch.tensor(light["direction"], dtype=torch.float64)
        assert math.isclose(float(direction.norm()), 1.0, abs_tol=1e-6)
        torch.testing.assert_close((rotation @ direction).tolist(), light["direction_view"])
        assert 0.3 - 0.02 < record["face_fraction"] < 0.7 + 0.02
        assert record["face_fraction"] <= record["foreground_fraction"] < 1
        assert record["hair"] is None or set(record["hair"]) == HAIR_KEYS
        assert isinstance(record["neck"], bool) and len(record["expression"]) == 5


def test_mesh_pngs_hold_the_generator_output(mesh_dataset: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the writer renders: many small ops, ~20x slower on 2 threads
    try:
        batch = synthesize_mesh(range(3, 6), SEED)  # the test split
    finally:
        torch.set_num_threads(threads)
    for k, record in enumerate(read_meta(mesh_dataset / "test")):
        depth_file = mesh_dataset / "test" / record["depth"]
        with Image.open(depth_file) as png:
            codes = np.asarray(png).astype(np.int64)
        assert torch.equal(torch.from_numpy(codes > 0), batch.mask[k, 0])  # v = 0: background
        decoded = load_depth(depth_file, 64)
        assert (decoded - batch.depth[k])[batch.mask[k]].abs().max() <= 0.2 / 65535 * 2
        image = load_image(mesh_dataset / "test" / record["image"], 64)
        assert (image - batch.image[k]).abs().max() <= 0.5 / 255 + 1e-6
        torch.testing.assert_close(torch.tensor(record["rotation"]), batch.rotation[k])


def test_mesh_bytes_do_not_depend_on_workers_or_batches(mesh_dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_dataset(again, NUM, SEED, split=SPLIT, workers=2, batch_size=2, style="mesh")
    assert tree_bytes(again) == tree_bytes(mesh_dataset)


def test_unknown_style_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="--style 'cartoon'"):
        write_dataset(tmp_path / "out", 2, style="cartoon")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------- CLI


def test_cli_mesh_style_with_two_workers_writes_the_same_bytes(
    mesh_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cli"
    result = runner.invoke(app, ["synth", str(out), "--style", "mesh", "--num", str(NUM), "--seed",
                                 str(SEED), "--split", "0.5,0,0.5", "--workers", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Wrote 6 mesh faces (train/val/test 3/0/3)" in result.stdout
    assert tree_bytes(out) == tree_bytes(mesh_dataset)


def test_cli_rejects_an_unknown_style(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", str(tmp_path / "out"), "--num", "2", "--style", "toon"])
    assert_one_line_error(result, "--style 'toon'", *STYLES)
    assert not (tmp_path / "out").exists()


def test_cli_help_names_the_styles() -> None:
    result = runner.invoke(app, ["synth", "--help"])
    assert result.exit_code == 0
    assert "--style" in result.stdout and "heightfield|mesh" in result.stdout


def geodesic_deg(rotation: list[list[float]]) -> float:
    cosine = (float(torch.tensor(rotation, dtype=torch.float64).trace()) - 1) / 2
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def test_cli_eval_const_scores_a_mesh_test_split(mesh_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", "--data", str(mesh_dataset / "test"), "--baseline",
                                 "const", "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["rows"]
    assert row["name"] == "const" and row["n_images"] == 3 and row["n_empty_mask"] == 0
    assert 0 < row["side"]["mean"] < 0.1 and 0 < row["mad_deg"]["mean"] < 90
    # const predicts the identity view: its error is the angle of the recorded rotation
    expected = [geodesic_deg(r["rotation"]) for r in read_meta(mesh_dataset / "test")]
    assert row["per_image"]["rotation_error_deg"] == pytest.approx(expected, abs=1e-3)


def test_cli_eval_avg_gt_averages_the_mesh_train_split(mesh_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", "--data", str(mesh_dataset / "test"), "--baseline",
                                 "avg-gt", "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["rows"]
    assert row["name"] == "avg-gt" and row["n_images"] == 3 and row["n_train_images"] == 3
    assert 0 < row["side"]["mean"] < 0.1


def test_face_fraction_sets_the_mesh_framing(tmp_path: Path) -> None:
    out = tmp_path / "tight"
    args = ["synth", str(out), "--num", "2", "--split", "1,0,0", "--workers", "1"]
    result = runner.invoke(app, [*args, "--face-fraction", "0.6"])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "dataset.json").read_text())
    assert info["generator_config"]["face_fraction_range"] == [0.6, 0.6]
    measured = [record["face_fraction"] for record in read_meta(out / "train")]
    assert measured == pytest.approx([0.6, 0.6], abs=0.02)  # solved to within ~0.01


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--face-fraction", "0.3,0.2"], "face_fraction_range"),
        (["--face-fraction", "0.99"], "face_fraction_range"),
        (["--face-fraction", "a,b"], "LOW,HIGH"),
        (["--face-fraction", "0.2,0.3,0.4"], "LOW,HIGH"),
        (["--face-fraction", "0.5", "--style", "heightfield"], "--style mesh only"),
    ],
)
def test_face_fraction_is_checked_before_anything_is_written(
    tmp_path: Path, extra: list[str], fragment: str
) -> None:
    result = runner.invoke(app, ["synth", str(tmp_path / "out"), "--num", "2", *extra])
    assert_one_line_error(result, "--face-fraction", fragment)
    assert not (tmp_path / "out").exists()
