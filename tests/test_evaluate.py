"""``unsup3d eval``: prediction path, baselines, perturbations, poses, report and CLI."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, runner
from PIL import Image

from unsup3d_cli import api
from unsup3d_cli.cli import app
from unsup3d_cli.data import DataError, load_depth
from unsup3d_cli.evaluation import (
    OCCLUSION_LEVELS,
    Candidate,
    EvalConfig,
    EvalOptions,
    Prediction,
    asymmetric_patch,
    average_gt_depth,
    constant_predictor,
    evaluate_split,
    mean_depth_predictor,
    occlude,
    perturb_batch,
    predict_view_depth,
    read_rotations,
)
from unsup3d_cli.geometry import euler_to_rotation
from unsup3d_cli.metrics import erode, geodesic_error
from unsup3d_cli.model import Unsup3D
from unsup3d_cli.render import Renderer

SIZE = 64
ROW_KEYS = {"name", "checkpoint", "n_images", "side", "mad_deg", "mad_deg_paper", "mae", "mse"}


# --------------------------------------------------------------------------------------------
# Fixtures: tiny paired splits in the synface layout, written on the fly


def face_depth(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A random elliptic dome (nearer = smaller depth) on the 1.1 background, (S, S)."""
    coords = np.linspace(-1, 1, size)
    y, x = np.meshgrid(coords, coords, indexing="ij")
    cx, cy = rng.uniform(-0.2, 0.2, 2)
    ax, ay = rng.uniform(0.4, 0.7, 2)
    r2 = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2
    dome = 1.05 - 0.12 * np.sqrt(np.clip(1 - r2, 0, None))
    return np.where(r2 < 1, dome, 1.1)


def write_depth_png(path: Path, depth: np.ndarray) -> None:
    """16-bit encoding of the contract: v = 65535 (1.1 − d) / 0.2, clipped."""
    values = np.clip(np.round(65535 * (1.1 - depth) / 0.2), 0, 65535).astype(np.uint16)
    Image.fromarray(values).save(path)


def write_split(root: Path, depths: list[np.ndarray], seed: int = 0) -> Path:
    """``root/image/NNNNNN_image.png`` (random RGB) and ``root/depth/NNNNNN_depth.png``."""
    rng = np.random.default_rng(seed)
    (root / "image").mkdir(parents=True)
    (root / "depth").mkdir()
    for index, depth in enumerate(depths):
        pixels = rng.integers(0, 256, size=(*depth.shape, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "image" / f"{index:06d}_image.png")
        write_depth_png(root / "depth" / f"{index:06d}_depth.png", depth)
    return root


def write_meta(root: Path, rotations: list[torch.Tensor]) -> None:
    lines = []
    for index, rotation in enumerate(rotations):
        record = {"index": index, "image": f"image/{index:06d}_image.png",
                  "rotation": rotation.tolist(), "translation": [0.0, 0.0, 0.0]}  # fmt: skip
        lines.append(json.dumps(record))
    (root / "meta.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture
def dataset_root(tmp_path: Path) -> Path:
    """``root/{train,test}``: 3 training and 4 test faces; the test split has meta.jsonl."""
    rng = np.random.default_rng(1)
    root = tmp_path / "synth"
    write_split(root / "train", [face_depth(rng) for _ in range(3)], seed=1)
    write_split(root / "test", [face_depth(rng) for _ in range(4)], seed=2)
    write_meta(root / "test", [yaw(a) for a in (0.0, 5.0, 20.0, 40.0)])
    return root


def yaw(degrees: float) -> torch.Tensor:
    return euler_to_rotation(torch.tensor([[0.0, math.radians(degrees), 0.0]]))[0].double()


def load_gt(split: Path) -> torch.Tensor:
    paths = sorted((split / "depth").glob("*.png"))
    return torch.stack([load_depth(p, SIZE) for p in paths])  # (N, 1, S, S)


# --------------------------------------------------------------------------------------------
# The compared prediction


def tiny_model(tiny_checkpoint: Path) -> Unsup3D:
    model, _ = api.load_model(tiny_checkpoint, "cpu")
    return model


@pytest.mark.parametrize("predict_view", [True, False])
def test_fast_path_equals_the_reconstruction_view_depth(
    tiny_checkpoint: Path, predict_view: bool
) -> None:
    model = tiny_model(tiny_checkpoint)
    if not predict_view:
        cfg = replace(model.cfg, predict_view=False)
        stripped = Unsup3D(cfg, model.renderer)
        stripped.load_state_dict(model.state_dict(), strict=False)
        model = stripped.eval()
    image = torch.rand(3, 3, SIZE, SIZE)
    with torch.no_grad():
        decomp = model(image)
        recon = model.reconstruct(decomp)
    fast = predict_view_depth(model, image)
    torch.testing.assert_close(fast.view_depth, recon.view_depth[:3], rtol=0, atol=1e-6)
    assert torch.equal(fast.view_mask, recon.view_mask[:3])
    torch.testing.assert_close(fast.rotation, euler_to_rotation(decomp.view_angles))


def test_fast_path_in_bf16_matches_the_bf16_forward(tiny_checkpoint: Path) -> None:
    model, _ = api.load_model(tiny_checkpoint, "cpu", precision="bf16")
    image = torch.rand(3, 3, SIZE, SIZE)
    with torch.no_grad():
        recon = model.reconstruct(model(image))
    fast = predict_view_depth(model, image)
    assert fast.view_depth.dtype == torch.float32
    torch.testing.assert_close(fast.view_depth, recon.view_depth[:3], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Baselines


def test_average_gt_depth_is_the_mean_over_faces_only(tmp_path: Path) -> None:
    size = SIZE
    depths = [np.full((size, size), 1.1) for _ in range(3)]
    depths[0][:, :20] = 0.95  # face in the left third of image 0
    depths[1][:, 10:30] = 1.0  # overlapping face in image 1
    depths[2][40:, 40:] = 0.92  # image 2
    split = write_split(tmp_path / "train", depths)
    mean, used = average_gt_depth(split, size)
    loaded = load_gt(split)[:, 0].double()  # (3, S, S), as the loader decodes them
    face = loaded < 1.1
    expected = torch.where(
        face.any(0), (loaded * face).sum(0) / face.sum(0).clamp(min=1), torch.tensor(1.1)
    )
    assert used == 3 and mean.shape == (1, 1, size, size)
    torch.testing.assert_close(mean[0, 0].double(), expected.double(), rtol=0, atol=1e-6)
    assert mean[0, 0, 0, 0].item() == pytest.approx(loaded[0, 0, 0].item())  # one face only
    assert mean[0, 0, 0, 15].item() == pytest.approx(loaded[:2, 0, 15].mean().item())
    assert mean[0, 0, 0, 50].item() == pytest.approx(1.1)  # no face in any image: background


def test_baselines_match_their_definitions(dataset_root: Path) -> None:
    test = dataset_root / "test"
    mean, _ = average_gt_depth(dataset_root / "train", SIZE)
    renderer = Renderer()
    candidates = [
        Candidate("const", constant_predictor(), renderer),
        Candidate("avg-gt", mean_depth_predictor(mean), renderer),
    ]
    report = evaluate_split(test, candidates, EvalConfig(batch_size=3))
    gt = load_gt(test).double()
    mask = erode((gt < gt.max()).double())  # every image has background: batch max = 1.1
    flat = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    normals = renderer.normals(gt)  # (N, S, S, 3)
    for index in range(gt.shape[0]):
        inside = mask[index, 0].bool()
        log_gt = gt[index, 0][inside].log()
        const_side = log_gt.std(unbiased=False).item()  # SIDE of a constant = std of ln d_gt
        const_mad = torch.rad2deg(torch.acos((normals[index][inside] @ flat).clamp(-1, 1)))
        assert report.rows[0].per_image["side"][index] == pytest.approx(const_side, rel=1e-4)
        assert report.rows[0].per_image["mad_deg"][index] == pytest.approx(
            const_mad.mean().item(), rel=1e-3
        )
        log_ratio = mean[0, 0].double()[inside].log() - log_gt
        avg_side = log_ratio.std(unbiased=False).item()
        assert report.rows[1].per_image["side"][index] == pytest.approx(avg_side, rel=1e-4)


def test_a_perfect_prediction_scores_zero(dataset_root: Path) -> None:
    test = dataset_root / "test"
    queue = list(load_gt(test).split(2))

    def oracle(image: torch.Tensor) -> Prediction:
        depth = queue.pop(0)
        return Prediction(depth, torch.ones_like(depth))

    report = evaluate_split(test, [Candidate("oracle", oracle, Renderer())], EvalConfig(2))
    row = report.rows[0]
    assert row.n_images == 4
    assert row.metrics["side"].mean == 0.0
    assert row.metrics["mad_deg"].mean == 0.0
    assert 4.0 < row.metrics["mad_deg_paper"].mean < 7.0  # the original's eps floor


def test_images_with_an_empty_mask_are_counted_not_averaged(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    depths = [face_depth(rng), np.full((SIZE, SIZE), 1.1), face_depth(rng)]
    split = write_split(tmp_path / "test", depths)
    report = evaluate_split(split, [Candidate("const", constant_predictor(), Renderer())])
    row = report.to_dict()["rows"][0]
    assert row["n_images"] == 2 and row["n_empty_mask"] == 1
    assert row["per_image"]["side"][1] is None
    assert math.isfinite(row["side"]["mean"])


def test_viewpoint_errors_use_meta_jsonl(dataset_root: Path) -> None:
    test = dataset_root / "test"
    report = evaluate_split(test, [Candidate("const", constant_predictor(), Renderer())])
    row = report.rows[0]
    assert row.per_image["rotation_error_deg"] == pytest.approx([0.0, 5.0, 20.0, 40.0], abs=1e-4)
    assert row.viewpoint["median_deg"] == pytest.approx(12.5, abs=1e-4)
    assert row.viewpoint["acc_pi_18"] == pytest.approx(0.5)  # 0° and 5° are below 10°
    assert row.viewpoint["acc_pi_6"] == pytest.approx(0.75)
    assert report.protocol["n_with_pose"] == 4


# --------------------------------------------------------------------------------------------
# Ground-truth poses


def test_read_rotations_by_file_name(tmp_path: Path) -> None:
    angles = [0.1, -0.3, 0.2]
    records = [
        {"image": "image/000000_image.png", "rotation": yaw(30).tolist()},
        {"file": "000001_image.png", "view_angles_rad": angles},
    ]
    (tmp_path / "meta.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    rotations = read_rotations(tmp_path)
    assert set(rotations) == {"000000_image.png", "000001_image.png"}
    torch.testing.assert_close(rotations["000000_image.png"], yaw(30))
    expected = euler_to_rotation(torch.tensor([angles], dtype=torch.float64))[0]
    torch.testing.assert_close(rotations["000001_image.png"], expected)
    assert read_rotations(tmp_path / "nowhere") is None


@pytest.mark.parametrize(
    "line",
    ['{"image": "a.png"}', '{"rotation": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}',
     '{"image": "a.png", "rotation": [[1, 0], [0, 1]]}', "not json"],
)  # fmt: skip
def test_read_rotations_names_the_bad_line(tmp_path: Path, line: str) -> None:
    good = json.dumps({"image": "b.png", "view_angles_rad": [0, 0, 0]})
    (tmp_path / "meta.jsonl").write_text(f"{good}\n{line}\n")
    with pytest.raises(DataError, match=r"meta\.jsonl:2"):
        read_rotations(tmp_path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"image": "image/000000_image.png", "yaw_deg": 12.0}\n', "needs 'rotation'"),
        ('{"file_name": "000000_image.png", "pose": [0, 1, 0]}\n', "'image' or 'file'"),
        ("image,yaw\n000000_image.png,12\n", "bad pose record"),
    ],
)
def test_meta_jsonl_of_another_schema_only_drops_the_viewpoint(
    dataset_root: Path, caplog: pytest.LogCaptureFixture, text: str, problem: str
) -> None:
    test = dataset_root / "test"
    (test / "meta.jsonl").write_text(text)
    with caplog.at_level(logging.WARNING, logger="unsup3d_cli"):
        report = evaluate_split(test, [Candidate("const", constant_predictor(), Renderer())])
    row = report.rows[0]
    assert row.n_images == 4 and math.isfinite(row.metrics["side"].mean)
    assert row.viewpoint is None and "rotation_error_deg" not in row.per_image
    assert report.protocol["n_with_pose"] == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    for fragment in (f"{test / 'meta.jsonl'}:1", problem, "viewpoint"):
        assert fragment in warnings[0]


def test_cli_eval_with_a_foreign_meta_jsonl_scores_depth(
    tiny_checkpoint: Path, dataset_root: Path
) -> None:
    test = dataset_root / "test"
    (test / "meta.jsonl").write_text('{"image": "image/000000_image.png", "yaw_deg": 3}\n')
    out = dataset_root / "eval.json"
    result = runner.invoke(app, ["eval", "--checkpoint", str(tiny_checkpoint), "--data", str(test),
                                 "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text())["rows"][0]
    assert row["n_images"] == 4 and "viewpoint" not in row


def test_read_rotations_of_an_undecodable_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "meta.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match=r"meta\.jsonl"):
        read_rotations(tmp_path)


def test_geodesic_errors_of_the_yaw_fixture() -> None:
    errors = geodesic_error(yaw(0).expand(3, 3, 3), torch.stack([yaw(5), yaw(-20), yaw(90)]))
    torch.testing.assert_close(errors.rad2deg(), torch.tensor([5.0, 20.0, 90.0]).double())


# --------------------------------------------------------------------------------------------
# Perturbations


@pytest.fixture(scope="module")
def face_mask() -> torch.Tensor:
    return torch.from_numpy(face_depth(np.random.default_rng(7)) < 1.1)


@pytest.mark.parametrize("level", sorted(OCCLUSION_LEVELS))
def test_occlusion_levels_cover_the_stated_share_of_the_face(
    face_mask: torch.Tensor, level: str
) -> None:
    low, high = OCCLUSION_LEVELS[level]
    pixels = int(face_mask.sum())
    image = torch.full((3, SIZE, SIZE), 0.5)
    shares = []
    for draw in range(60):
        gen = torch.Generator().manual_seed(draw)
        occluded, occluder = occlude(image, face_mask, (low, high), gen)
        share = (occluder & face_mask).sum().item() / pixels
        assert low <= share <= high + 1 / pixels
        changed = (occluded != image).any(0)
        assert not (changed & ~occluder).any()  # only the occluder is painted
        shares.append(share)
    assert np.mean(shares) == pytest.approx((low + high) / 2, abs=0.03)
    assert np.std(shares) > 0.03  # the share is drawn across the interval, not fixed


def test_occlusion_without_a_face_leaves_the_image_alone() -> None:
    image = torch.rand(3, SIZE, SIZE)
    out, occluder = occlude(image, torch.zeros(SIZE, SIZE, dtype=torch.bool), (0.2, 0.4),
                            torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.equal(out, image) and not occluder.any()


def test_asymmetric_patch_is_one_blended_rectangle() -> None:
    image = torch.full((3, SIZE, SIZE), 0.5)
    for draw in range(30):
        out = asymmetric_patch(image, torch.Generator().manual_seed(draw))
        rows, cols = (out != image).any(0).nonzero(as_tuple=True)
        height = rows.max().item() - rows.min().item() + 1
        width = cols.max().item() - cols.min().item() + 1
        assert rows.numel() == height * width  # a full rectangle
        for side in (height, width):
            assert round(0.2 * SIZE) <= side <= round(0.5 * SIZE)
        patch = out[:, rows, cols]
        assert torch.allclose(patch, patch[:, :1])  # one colour


def test_perturbations_are_seeded_per_image_not_per_batch() -> None:
    images = torch.rand(3, 3, SIZE, SIZE)
    depth = torch.from_numpy(face_depth(np.random.default_rng(0))).float().expand(3, 1, -1, -1)
    whole = perturb_batch(images, depth, "L2", seed=5, indices=[10, 11, 12])
    single = perturb_batch(images[1:2], depth[1:2], "L2", seed=5, indices=[11])
    assert torch.equal(whole[1], single[0])
    other_seed = perturb_batch(images[1:2], depth[1:2], "L2", seed=6, indices=[11])
    assert not torch.equal(other_seed[0], single[0])
    assert perturb_batch(images, depth, None, 0, [0, 1, 2]) is images
    with pytest.raises(ValueError, match="perturbation"):
        EvalConfig(perturbation="L4")


# --------------------------------------------------------------------------------------------
# Report and API


def test_report_json_has_the_documented_keys(tiny_checkpoint: Path, dataset_root: Path) -> None:
    out = dataset_root / "report.json"
    options = EvalOptions(("const", "avg-gt"), out=out, device="cpu", batch_size=3)
    report = api.evaluate(dataset_root / "test", [tiny_checkpoint], options)
    data = json.loads(out.read_text())
    assert [row["name"] for row in data["rows"]] == ["tiny", "const", "avg-gt"]
    for row in data["rows"]:
        assert ROW_KEYS <= row.keys()
        assert row["n_images"] == 4
        assert {"mean", "std"} == row["side"].keys()
        assert {"median_deg", "acc_pi_6", "acc_pi_18", "n"} <= row.get("viewpoint", {}).keys() or (
            row["name"] == "avg-gt"
        )
    assert data["rows"][0]["checkpoint"] == str(tiny_checkpoint)
    assert data["rows"][2]["n_train_images"] == 3
    protocol = data["protocol"]
    for key in ("compared_depth", "gt_mask", "prediction_mask", "side", "mad_deg",
                "mad_deg_paper", "baselines", "viewpoint", "aggregation"):  # fmt: skip
        assert key in protocol
    assert "background excluded" in protocol["baselines"]["avg-gt"]
    headers, cells = report.table()
    assert "SIDE ×10⁻² ↓" in headers and len(cells) == 3


def test_table_shows_side_in_units_of_1e_2(dataset_root: Path) -> None:
    report = api.evaluate(dataset_root / "test", (), EvalOptions(("const",), device="cpu"))
    side = report.rows[0].metrics["side"]
    cell = report.table()[1][0][2]
    assert cell == f"{side.mean * 100:.3f} ± {side.std * 100:.3f}"


def test_single_image_std_is_null_in_json(tmp_path: Path) -> None:
    split = write_split(tmp_path / "test", [face_depth(np.random.default_rng(0))])
    report = api.evaluate(split, (), EvalOptions(("const",), out=tmp_path / "r.json", device="cpu"))
    assert json.loads((tmp_path / "r.json").read_text())["rows"][0]["side"]["std"] is None
    assert "±" not in report.table()[1][0][2]


def test_checkpoints_with_different_crops_need_an_explicit_crop(
    tiny_checkpoint: Path, dataset_root: Path, tmp_path: Path
) -> None:
    from unsup3d_cli.config import ConfigError
    from unsup3d_cli.engine.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(tiny_checkpoint)
    state["config"]["data"]["crop"] = 170
    other = tmp_path / "cropped.pt"
    save_checkpoint(other, {k: v for k, v in state.items() if k not in ("version", "program")})
    with pytest.raises(ConfigError, match="--crop"):
        api.evaluate(dataset_root / "test", [tiny_checkpoint, other], EvalOptions(device="cpu"))
    options = EvalOptions(device="cpu", crop=None)
    report = api.evaluate(dataset_root / "test", [tiny_checkpoint, other], options)
    assert [row.name for row in report.rows] == ["tiny", "tiny#2"]


def test_rows_record_the_config_digest(tiny_checkpoint: Path, dataset_root: Path) -> None:
    import hashlib

    from unsup3d_cli.config import config_to_dict

    _, cfg = api.load_model(tiny_checkpoint, "cpu")
    text = json.dumps(config_to_dict(cfg), sort_keys=True, default=str)
    report = api.evaluate(dataset_root / "test", [tiny_checkpoint], EvalOptions(device="cpu"))
    info = report.rows[0].info
    assert info["config_digest"] == hashlib.sha256(text.encode()).hexdigest()[:12]
    assert info["config_name"] == "tiny"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"baselines": ("mean",)}, "unknown baseline 'mean'"),
        ({"perturbation": "L9"}, "perturbation"),
        ({"batch_size": 0}, "batch_size"),
        ({"refine_steps": -1}, "refine_steps"),
        ({"num_workers": -2}, "num_workers"),
    ],
)
def test_eval_options_reject_bad_values(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        EvalOptions(**kwargs)


def test_api_evaluate_needs_something_to_evaluate(dataset_root: Path) -> None:
    from unsup3d_cli.config import ConfigError

    with pytest.raises(ConfigError, match="nothing to evaluate"):
        api.evaluate(dataset_root / "test", (), EvalOptions(device="cpu"))


def test_refine_adds_photometric_errors(tiny_checkpoint: Path, dataset_root: Path) -> None:
    options = EvalOptions(device="cpu", refine_steps=2)
    report = api.evaluate(dataset_root / "test", [tiny_checkpoint], options)
    row = report.to_dict()["rows"][0]
    assert row["name"] == "tiny +refine2"
    assert row["photometric_error"]["after"] <= row["photometric_error"]["before"] + 1e-6
    assert report.protocol["refine_steps"] == 2


# --------------------------------------------------------------------------------------------
# CLI


def test_cli_eval_writes_json_and_markdown(tiny_checkpoint: Path, dataset_root: Path) -> None:
    out, markdown = dataset_root / "eval.json", dataset_root / "eval.md"
    result = runner.invoke(app, [
        "eval", "--checkpoint", str(tiny_checkpoint), "--data", str(dataset_root / "test"),
        "--baseline", "const", "--baseline", "avg-gt", "--out", str(out),
        "--markdown", str(markdown), "--device", "cpu",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert [row["name"] for row in rows] == ["tiny", "const", "avg-gt"]
    text = markdown.read_text()
    assert "| method | n | SIDE ×10⁻² ↓ |" in text
    assert "| avg-gt | 4 |" in text
    assert "avg-gt" in result.stdout and str(out) in result.stdout


def test_cli_default_json_goes_to_the_run_folder(tiny_checkpoint: Path, dataset_root: Path) -> None:
    result = runner.invoke(app, [
        "eval", "--checkpoint", str(tiny_checkpoint), "--data", str(dataset_root / "test"),
        "--occlusion", "L1", "--device", "cpu",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    written = tiny_checkpoint.parent.parent / "eval-L1.json"
    assert json.loads(written.read_text())["protocol"]["perturbation"]["mode"] == "L1"


def test_cli_eval_in_bf16_records_it_and_scores_close_to_fp32(
    tiny_checkpoint: Path, dataset_root: Path
) -> None:
    sides = {}
    for precision in ("fp32", "bf16"):
        out = dataset_root / f"eval-{precision}.json"
        result = runner.invoke(app, [
            "eval", "--checkpoint", str(tiny_checkpoint), "--data", str(dataset_root / "test"),
            "--out", str(out), "--device", "cpu", "--precision", precision,
        ])  # fmt: skip
        assert result.exit_code == 0, result.output
        report = json.loads(out.read_text())
        assert report["protocol"]["precision"] == precision
        sides[precision] = report["rows"][0]["side"]["mean"]
    assert sides["bf16"] == pytest.approx(sides["fp32"], rel=0.1)


def test_cli_unknown_precision_is_one_line(tiny_checkpoint: Path, dataset_root: Path) -> None:
    result = runner.invoke(app, ["eval", "--checkpoint", str(tiny_checkpoint), "--data",
                                 str(dataset_root / "test"), "--precision", "fp8"])  # fmt: skip
    assert_one_line_error(result, "fp8")


def test_cli_missing_data_folder_is_one_line(tiny_checkpoint: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-split"
    result = runner.invoke(app, ["eval", "--checkpoint", str(tiny_checkpoint), "--data",
                                 str(missing), "--device", "cpu"])  # fmt: skip
    assert_one_line_error(result, "no-such-split")


def test_cli_foreign_checkpoint_is_one_line(dataset_root: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "other.pth"
    torch.save({"netD": {}, "epoch": 30}, foreign)
    result = runner.invoke(app, ["eval", "--checkpoint", str(foreign), "--data",
                                 str(dataset_root / "test"), "--device", "cpu"])  # fmt: skip
    assert_one_line_error(result, "other.pth")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--baseline", "mean"], "--baseline"),
        (["--baseline", "const", "--occlusion", "L9"], "--occlusion"),
        (["--baseline", "const", "--crop", "big"], "--crop"),
        ([], "nothing to evaluate"),
        (["--baseline", "avg-gt", "--train-data", "/no/such/train"], "/no/such/train"),
    ],
)
def test_cli_bad_options_are_one_line(
    dataset_root: Path, extra: list[str], fragment: str, tmp_path: Path, monkeypatch
) -> None:
    import unsup3d_cli.weights

    # an install without a bundled model: no --checkpoint and no --baseline is then an error
    monkeypatch.setattr(unsup3d_cli.weights, "BUNDLED_MODEL", tmp_path / "none.safetensors")
    result = runner.invoke(app, ["eval", "--data", str(dataset_root / "test"), *extra])
    assert_one_line_error(result, fragment)


def test_original_synface_layout_with_8bit_depth_and_crop(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from unsup3d_cli.engine.checkpoint import load_checkpoint, save_checkpoint

    split = tmp_path / "synface" / "test"
    (split / "image").mkdir(parents=True)
    (split / "depth").mkdir()
    rng = np.random.default_rng(4)
    for index in range(2):
        depth = face_depth(rng, size=256)
        values = np.round(255 * (1.1 - depth) / 0.2).astype(np.uint8)  # the original's 8 bits
        Image.fromarray(np.stack([values] * 3, -1)).save(split / "depth" / f"{index}_depth.png")
        pixels = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(split / "image" / f"{index}_image.png")
    state = load_checkpoint(tiny_checkpoint)
    state["config"]["data"]["crop"] = 170  # as configs/synface.yaml
    cropped = tmp_path / "synface.pt"
    save_checkpoint(cropped, {k: v for k, v in state.items() if k not in ("version", "program")})
    report = api.evaluate(split, [cropped], EvalOptions(("const",), device="cpu"))
    assert report.protocol["crop"] == 170
    assert [row.n_images for row in report.rows] == [2, 2]
    gt = torch.stack([load_depth(split / "depth" / f"{i}_depth.png", SIZE, 170) for i in range(2)])
    expected = Candidate("const", constant_predictor(), Renderer())
    manual = evaluate_split(split, [expected], EvalConfig(crop=170))
    assert manual.rows[0].per_image["side"] == report.rows[1].per_image["side"]
    assert gt.shape == (2, 1, SIZE, SIZE) and gt.max() == pytest.approx(1.1)
