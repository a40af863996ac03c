"""``unsup3d reconstruct``: input discovery, photo reading, face crops, outputs and bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from unsup3d_cli.cli import app
from unsup3d_cli.data import DataError
from unsup3d_cli.facecrop import (
    Box,
    FaceDetector,
    center_crop_box,
    crop_with_edge_padding,
    face_crop_box,
)
from unsup3d_cli.reconstruct import (
    ReconstructOptions,
    depth_png_codes,
    discover_images,
    output_maps,
    output_names,
    prepare_photo,
    read_photo,
)

CONTRACT_FILES = (
    "input.png",
    "reconstruction.png",
    "canonical_albedo.png",
    "canonical_shading.png",
    "canonical_image.png",
    "canonical_depth.png",
    "canonical_depth.npy",
    "view_depth.npy",
    "view_mask.png",
    "canonical_normal.png",
    "confidence.png",
    "confidence_flip.png",
    "relit_left.png",
    "relit_right.png",
    "relit_above.png",
    "result.json",
)


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # (512, 512, 3) uint8


def _rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def good_photos(tmp_path: Path) -> Path:
    """A folder of readable photos in assorted formats, sizes and modes."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(_rgb(64, 64)).save(folder / "small.png")
    Image.fromarray(_rgb(90, 120, 1)[..., 0]).save(folder / "sub" / "grey.bmp")
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 0  # fully transparent red → white
    Image.fromarray(rgba).save(folder / "sub" / "rgba.png")
    wide = np.linspace(0, 65535, 48 * 48).reshape(48, 48).astype(np.uint16)
    Image.fromarray(wide).save(folder / "wide16.tiff")
    Image.fromarray(_rgb(70, 70, 2)).save(folder / "lossless.webp", lossless=True)
    return folder


@pytest.fixture
def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    """The issue's bad inputs: each must be skipped with a one-line message naming it."""
    folder = tmp_path / "bad"
    (folder / "empty").mkdir(parents=True)
    (folder / "text.png").write_text("this is not a PNG")
    buffer = io.BytesIO()
    Image.fromarray(_astronaut()).save(buffer, "JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "one.png")
    return {
        "empty": folder / "empty",
        "text": folder / "text.png",
        "truncated": folder / "truncated.jpg",
        "tiny": folder / "one.png",
    }


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10000×10000 grey PNG (small on disk, 100 Mpx decoded)."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("L", (10_000, 10_000), 90).save(path, compress_level=1)
    return path


def _run(*args: object):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


# ------------------------------------------------------------------------------------------
# Discovery and names


def test_discover_images_recurses_and_lists_the_rest(tmp_path: Path, good_photos: Path) -> None:
    (good_photos / "notes.txt").write_text("hi")
    (good_photos / ".hidden.png").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    out = good_photos / "out"
    out.mkdir()
    Image.fromarray(_rgb(64, 64)).save(out / "old.png")  # inside the output folder: ignored
    inputs = [good_photos, good_photos / "small.png", tmp_path / "empty", tmp_path / "missing.jpg"]
    images, skipped = discover_images(inputs, exclude=out)
    assert [p.name for p in images] == [
        "lossless.webp", "small.png", "grey.bmp", "rgba.png", "wide16.tiff"
    ]  # fmt: skip
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert reasons["notes.txt"].startswith("not an image file")
    assert reasons["empty"] == "no image files in this folder"
    assert reasons["missing.jpg"] == "no such file or folder"


def test_discover_images_lists_symbolic_link_loops_and_broken_links(
    tmp_path: Path, good_photos: Path
) -> None:
    (good_photos / "a.png").symlink_to("b.png")  # a.png → b.png → a.png
    (good_photos / "b.png").symlink_to("a.png")
    (good_photos / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    images, skipped = discover_images([good_photos, good_photos / "a.png"])
    assert [p.name for p in images] == [
        "lossless.webp", "small.png", "grey.bmp", "rgba.png", "wide16.tiff"
    ]  # fmt: skip
    assert [(Path(s.path).name, s.reason) for s in skipped] == [
        ("a.png", "symbolic link loop"),
        ("b.png", "symbolic link loop"),
        ("gone.jpg", "broken symbolic link (its target does not exist)"),
        ("a.png", "symbolic link loop"),  # given by name: the same reason
    ]


def test_a_symbolic_link_loop_is_listed_in_the_summary_and_on_the_console(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(_rgb(64, 64)).save(folder / "face.png")
    (folder / "a.png").symlink_to("b.png")
    (folder / "b.png").symlink_to("a.png")
    out = tmp_path / "out"
    result = _run("reconstruct", "--checkpoint", tiny_checkpoint, folder, "--out", out,
                  "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("a.png", "b.png"):
        line = f"{folder / name}: symbolic link loop"
        assert any(line in printed for printed in result.output.splitlines()), result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processed"] == 1 and summary["skipped_count"] == 2
    assert summary["skipped"] == [
        {"path": str(folder / "a.png"), "reason": "symbolic link loop"},
        {"path": str(folder / "b.png"), "reason": "symbolic link loop"},
    ]


def test_an_animated_gif_is_read_as_its_first_frame(tmp_path: Path) -> None:
    first, second = (Image.new("RGB", (50, 40), colour) for colour in ((255, 0, 0), (0, 0, 255)))
    path = tmp_path / "blink.gif"
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    images, skipped = discover_images([tmp_path])
    assert images == [path] and not skipped  # a .gif is an image file
    photo, scale, notes = read_photo(path)
    assert photo.shape == (40, 50, 3) and scale == 1.0
    np.testing.assert_allclose(photo, np.broadcast_to([1.0, 0.0, 0.0], photo.shape))
    assert len(notes) == 1 and notes[0].startswith(f"{path}: 2 frames")
    assert "the first one is used" in notes[0]


def test_output_names_are_unique_and_stable() -> None:
    paths = [Path("a/face.jpg"), Path("b/face.png"), Path("c/Face.jpg"), Path("d/other.png")]
    assert output_names(paths) == ["face", "face_2", "Face_3", "other"]


# ------------------------------------------------------------------------------------------
# Reading photos


def test_read_photo_converts_modes(good_photos: Path) -> None:
    grey, _, _ = read_photo(good_photos / "sub" / "grey.bmp")
    assert grey.shape == (90, 120, 3) and np.array_equal(grey[..., 0], grey[..., 2])
    rgba, _, _ = read_photo(good_photos / "sub" / "rgba.png")
    np.testing.assert_allclose(rgba, 1.0)  # transparent → white background
    wide, _, _ = read_photo(good_photos / "wide16.tiff")
    assert wide.dtype == np.float32 and wide.min() == 0.0 and wide.max() == pytest.approx(1.0)
    assert len(np.unique(wide[..., 0])) > 256  # no 8-bit round trip


def test_read_photo_applies_exif_orientation(tmp_path: Path) -> None:
    pixels = _rgb(40, 80)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image.save(tmp_path / "rotated.png", exif=exif)
    upright, scale, notes = read_photo(tmp_path / "rotated.png")
    assert upright.shape == (80, 40, 3) and scale == 1.0 and not notes
    np.testing.assert_allclose(upright * 255, np.rot90(pixels, k=-1), atol=1e-3)


def test_read_photo_reduces_a_huge_image(huge_png: Path) -> None:
    photo, scale, notes = read_photo(huge_png)
    assert max(photo.shape[:2]) <= 2048 and scale == pytest.approx(10_000 / photo.shape[1])
    np.testing.assert_allclose(photo, 90 / 255, atol=1e-6)
    assert len(notes) == 1 and str(huge_png) in notes[0] and "\n" not in notes[0]


@pytest.mark.parametrize("kind", ["text", "truncated", "tiny"])
def test_read_photo_rejects_bad_files(bad_inputs: dict[str, Path], kind: str) -> None:
    with pytest.raises(DataError) as info:
        read_photo(bad_inputs[kind])
    message = str(info.value)
    assert message.startswith(str(bad_inputs[kind])) and "\n" not in message


# ------------------------------------------------------------------------------------------
# Face crops


def test_face_crop_box_matches_the_original_demo_margin() -> None:
    # cascade box 80 → MTCNN-like 88; half = int(0.55·88) = 48; centre (140, 140) moved down
    # by 0.15·48 = 7.2 → top = round(147.2 − 48) = 99, left = 140 − 48 = 92.
    assert face_crop_box(Box(100, 100, 80, 80)) == Box(99, 92, 96, 96)
    assert center_crop_box(30, 50) == Box(0, 10, 30, 30)


def test_crop_with_edge_padding_repeats_the_border() -> None:
    image = np.arange(12).reshape(3, 4)
    crop = crop_with_edge_padding(image, Box(-1, 2, 3, 3))
    assert crop.tolist() == [[2, 3, 3], [2, 3, 3], [6, 7, 7]]


def test_face_detector_finds_the_astronaut(tmp_path: Path) -> None:
    grey = _astronaut().mean(axis=2)
    face = FaceDetector().largest_face(grey)
    assert face is not None
    centre_row, centre_col = face.top + face.height / 2, face.left + face.width / 2
    assert 90 < centre_row < 150 and 190 < centre_col < 250  # her face, not the flag or badge
    Image.fromarray(_astronaut()).save(tmp_path / "astronaut.png")
    photo = prepare_photo(tmp_path / "astronaut.png", 0, detector=FaceDetector())
    assert photo.crop_method == "face" and photo.image.shape == (3, 64, 64)


def test_prepare_photo_falls_back_to_a_centre_crop(tmp_path: Path) -> None:
    Image.fromarray(np.full((60, 100, 3), 128, np.uint8)).save(tmp_path / "flat.png")
    photo = prepare_photo(tmp_path / "flat.png", 3, detector=FaceDetector())
    assert (photo.crop_method, photo.box) == ("center", (0, 20, 60, 60))
    assert "no face found" in photo.notes[0] and str(tmp_path / "flat.png") in photo.notes[0]
    plain = prepare_photo(tmp_path / "flat.png", 3)
    assert plain.crop_method == "center" and plain.notes == ()


# ------------------------------------------------------------------------------------------
# End to end


def _decode_depth_png(path: Path, depth_range: list[float]) -> np.ndarray:
    """``canonical_depth.png`` → depth, as ``depth_png_codes`` documents it."""
    near, far = depth_range
    return far - (far - near) * np.asarray(Image.open(path), dtype=np.float64) / 65535


def test_depth_png_codes_span_the_models_depth_range() -> None:
    depth = torch.tensor([[[0.5, 1.0, 2.0, 2.5, 0.4]]])  # (B, H, W): near, mid, far, past both
    codes = depth_png_codes(depth, (0.5, 2.0))
    assert codes.dtype == np.uint16
    assert codes.tolist() == [[[65535, 43690, 0, 0, 65535]]]  # 65535·(2 − 1)/1.5 = 43690
    default = depth_png_codes(torch.tensor([[[0.9, 1.0, 1.1]]]), (0.9, 1.1))
    assert default.tolist() == [[[65535, 32768, 0]]]  # the synface-like 1.1 − 0.2·v/65535


def test_canonical_depth_png_follows_the_checkpoints_depth_range() -> None:
    from unsup3d_cli.model import ModelConfig, Unsup3D
    from unsup3d_cli.render import Renderer

    cfg = ModelConfig(width=16, encoder_width=16, depth_zdim=32, confidence_zdim=16,
                      min_depth=0.5, max_depth=2.0)  # fmt: skip
    model = Unsup3D(cfg, Renderer()).eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        decomp = model(images)
        maps = output_maps(model, images, decomp, model.reconstruct(decomp, mirror=False))
    depth = decomp.depth[:, 0].numpy()  # (B, H, W)
    assert ((depth < 0.9) | (depth > 1.1)).any()  # a fixed 0.9–1.1 encoding would clip these
    decoded = 2.0 - 1.5 * maps["canonical_depth.png"].astype(np.float64) / 65535
    np.testing.assert_allclose(decoded, depth, atol=1.5 / 65535)


def test_canonical_shading_png_is_the_diffuse_term_under_the_predicted_light() -> None:
    from unsup3d_cli.model import ModelConfig, Unsup3D
    from unsup3d_cli.render import Renderer

    cfg = ModelConfig(width=16, encoder_width=16, depth_zdim=32, confidence_zdim=16)
    model = Unsup3D(cfg, Renderer()).eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        decomp = model(images)
        recon = model.reconstruct(decomp, mirror=False)
        maps = output_maps(model, images, decomp, recon)
    normal = recon.canonical_normal.double()  # (B, H, W, 3)
    light = decomp.light_direction.double()  # (B, 3)
    cosine = np.einsum("bhwc,bc->bhw", normal.numpy(), light.numpy()).clip(min=0)  # by hand
    shading = maps["canonical_shading.png"].astype(np.float64) / 255  # (B, H, W)
    np.testing.assert_allclose(shading, cosine, atol=0.5 / 255 + 1e-6)
    # ka + kd · the map is the shading the model applies, which an 8-bit image would clip
    ka, kd = decomp.ambient.double()[:, None, None], decomp.diffuse.double()[:, None, None]
    full = recon.shading[:, 0].double().numpy()
    np.testing.assert_allclose(ka.numpy() + kd.numpy() * shading, full, atol=kd.max().item() / 255)


def test_reconstruction_error_hand_computed() -> None:
    from unsup3d_cli.model import Reconstruction
    from unsup3d_cli.reconstruct import reconstruction_error

    target = torch.full((2, 3, 8, 8), 0.5)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, :4] = 1  # top half valid
    rendered = target.clone()
    rendered[0, :, :4] += 0.2  # image 0: off by 0.2 where valid
    rendered[1, :, 4:] += 0.9  # image 1: off only where invalid
    rendered[1, 0, :4] += 0.3  # ... and by 0.3 in one channel of three where valid
    zeros = torch.zeros(2, 1, 8, 8)
    recon = Reconstruction(
        canonical_depth=zeros, canonical_albedo=target, canonical_normal=zeros, shading=zeros,
        canonical_image=target, view_depth=zeros, view_mask=mask, mask=mask, image=rendered,
    )  # fmt: skip
    torch.testing.assert_close(reconstruction_error(target, recon), torch.tensor([0.2, 0.1]))


def test_reconstruct_writes_the_contract_folder(
    tiny_checkpoint: Path, good_photos: Path, bad_inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    bad = [bad_inputs[k] for k in ("empty", "text", "truncated", "tiny")]
    result = _run("reconstruct", "--checkpoint", tiny_checkpoint, good_photos, *bad,
                  "--out", out, "--batch-size", "2", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    for path in bad:  # each named on one line of the report
        assert any(str(path) in line for line in result.output.splitlines()), path
    names = {"small", "grey", "rgba", "wide16", "lossless"}
    assert {p.parent.name for p in out.glob("*/result.json")} == names
    folder = out / "small"
    assert sorted(p.name for p in folder.iterdir()) == sorted(CONTRACT_FILES)
    record = json.loads((folder / "result.json").read_text())
    assert record["source"] == str(good_photos / "small.png")
    assert record["crop"] == {"method": "full", "box": [0, 0, 64, 64]}
    assert set(record) >= {"view", "light", "camera", "depth_range", "border_depth"}
    assert record["view"]["scale"] == 1.0  # a model without a predicted size
    assert record["photometric_error"]["after"] is None
    assert 0 < record["photometric_error"]["before"] < 1
    depth = np.load(folder / "canonical_depth.npy")
    assert depth.shape == (64, 64) and depth.dtype == np.float32
    decoded = _decode_depth_png(folder / "canonical_depth.png", record["depth_range"])
    np.testing.assert_allclose(decoded, depth, atol=4e-6)
    assert set(np.unique(np.asarray(Image.open(folder / "view_mask.png")))) <= {0, 255}
    assert Image.open(folder / "input.png").size == (64, 64)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processed"] == 5 and summary["skipped_count"] == 4
    assert {Path(s["path"]).name for s in summary["skipped"]} == {p.name for p in bad}
    assert (out / "index.html").is_file()


def test_reconstruct_in_bf16_is_close_to_fp32(
    tiny_checkpoint: Path, good_photos: Path, tmp_path: Path
) -> None:
    depths = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        result = _run("reconstruct", "--checkpoint", tiny_checkpoint, good_photos / "small.png",
                      "--out", out, "--device", "cpu", "--precision", precision)  # fmt: skip
        assert result.exit_code == 0, result.output
        depths[precision] = np.load(out / "small" / "canonical_depth.npy")
    assert depths["bf16"].dtype == np.float32
    np.testing.assert_allclose(depths["bf16"], depths["fp32"], atol=5e-3)  # range 0.9–1.1


@pytest.mark.parametrize("native", [True, False])
def test_reconstruct_defaults_to_bf16_where_the_cpu_has_it(
    tiny_checkpoint: Path, good_photos: Path, tmp_path: Path, monkeypatch, native: bool
) -> None:
    from unsup3d_cli import api

    monkeypatch.setattr(api, "has_native_bfloat16", lambda device: native)
    api.reconstruct(tiny_checkpoint, [good_photos / "small.png"], tmp_path / "out", device="cpu")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["precision"] == ("bf16" if native else "fp32")


def test_native_bfloat16_probe_reads_the_cpu_flags(monkeypatch) -> None:
    from unsup3d_cli import api
    from unsup3d_cli.config import ConfigError
    from unsup3d_cli.model import has_native_bfloat16

    cpu = torch.device("cpu")
    for avx512_bf16, amx in ((True, False), (False, True), (False, False)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v,
                            raising=False)  # fmt: skip
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert has_native_bfloat16(cpu) == (avx512_bf16 or amx)
        assert api.resolve_precision("auto", cpu) == ("bf16" if avx512_bf16 or amx else "fp32")
    assert api.resolve_precision("fp32", cpu) == "fp32"
    assert api.resolve_precision("bf16", cpu) == "bf16"
    assert not has_native_bfloat16(torch.device("meta"))
    with pytest.raises(ConfigError, match="fp8"):
        api.resolve_precision("fp8", cpu)


def test_reconstruct_a_huge_image_with_loader_workers(
    tiny_checkpoint: Path, huge_png: Path, good_photos: Path, tmp_path: Path
) -> None:
    from unsup3d_cli import api

    options = ReconstructOptions(batch_size=2, num_workers=1)
    summary = api.reconstruct(tiny_checkpoint, [huge_png, good_photos], tmp_path / "out",
                              options, device="cpu")  # fmt: skip
    assert summary.processed == 6 and not summary.skipped
    assert any(str(huge_png) in note for note in summary.warnings)
    record = json.loads((tmp_path / "out" / "huge" / "result.json").read_text())
    assert record["crop"] == {"method": "full", "box": [0, 0, 10_000, 10_000]}


def test_existing_outputs_are_kept_without_force(tiny_checkpoint: Path, tmp_path: Path) -> None:
    photo = tmp_path / "face.png"
    Image.fromarray(_rgb(64, 64)).save(photo)
    out = tmp_path / "out"
    args = ("reconstruct", "--checkpoint", tiny_checkpoint, photo, "--out", out)
    assert _run(*args).exit_code == 0
    marker = out / "face" / "input.png"
    marker.write_bytes(b"edited")
    again = _run(*args)
    assert again.exit_code == 0 and "Kept 1 existing" in again.output
    assert marker.read_bytes() == b"edited"
    assert _run(*args, "--force").exit_code == 0
    assert Image.open(marker).size == (64, 64)


def test_animate_writes_a_turntable(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import imageio.v3 as iio

    from unsup3d_cli import api
    from unsup3d_cli.reconstruct import TURNTABLE_STEPS

    Image.fromarray(_rgb(64, 64)).save(tmp_path / "face.png")
    api.reconstruct(tiny_checkpoint, [tmp_path / "face.png"], tmp_path / "out",
                    ReconstructOptions(animate=True), device="cpu")  # fmt: skip
    frames = iio.imread(tmp_path / "out" / "face" / "turntable.gif", index=None)
    assert frames.shape[:3] == (2 * TURNTABLE_STEPS, 64, 64)


# ------------------------------------------------------------------------------------------
# Bad input → exit 1, one line, no traceback


def _one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "tiny"])
def test_nothing_readable_exits_with_one_line(
    tiny_checkpoint: Path, bad_inputs: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    result = _run("reconstruct", "--checkpoint", tiny_checkpoint, bad_inputs[kind],
                  "--out", tmp_path / "out")  # fmt: skip
    assert str(bad_inputs[kind]) in _one_error_line(result)


def test_strict_stops_at_a_bad_file(
    tiny_checkpoint: Path, good_photos: Path, bad_inputs: dict[str, Path], tmp_path: Path
) -> None:
    result = _run("reconstruct", "--checkpoint", tiny_checkpoint, good_photos,
                  bad_inputs["text"], "--out", tmp_path / "out", "--strict")  # fmt: skip
    assert str(bad_inputs["text"]) in _one_error_line(result)


def test_unusable_checkpoints_exit_with_one_line(good_photos: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"weight": torch.zeros(2)}, "epoch": 3}, foreign)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    for checkpoint in (tmp_path / "missing.pt", foreign, text):
        result = _run("reconstruct", "--checkpoint", checkpoint, good_photos,
                      "--out", tmp_path / "out")  # fmt: skip
        assert str(checkpoint) in _one_error_line(result)
    assert not (tmp_path / "out").exists()


def test_cli_detects_the_astronauts_face(tiny_checkpoint: Path, tmp_path: Path) -> None:
    Image.fromarray(_astronaut()).save(tmp_path / "astronaut.jpg")
    result = _run("reconstruct", "--checkpoint", tiny_checkpoint, tmp_path / "astronaut.jpg",
                  "--out", tmp_path / "out", "--detect-faces")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Gallery: " in result.output
    record = json.loads((tmp_path / "out" / "astronaut" / "result.json").read_text())
    top, left, height, width = record["crop"]["box"]
    assert record["crop"]["method"] == "face" and height == width
    assert top < 100 < top + height and left < 220 < left + width  # around her face


def test_reconstruct_help_documents_every_option() -> None:
    import typer

    command = typer.main.get_command(app).commands["reconstruct"]
    undocumented = [p.name for p in command.params if p.param_type_name == "option" and not p.help]
    assert not undocumented
    if not torch.cuda.is_available():
        result = _run("reconstruct", "--checkpoint", "x.pt", "y.png", "--out", "o",
                      "--device", "cuda")  # fmt: skip
        assert "CUDA is not available" in _one_error_line(result)
