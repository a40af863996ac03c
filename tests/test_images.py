"""The one image reader: decoding rules, the shared resize, and the same tensor on every path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from typer.testing import CliRunner

from unsup3d_cli import reconstruct
from unsup3d_cli.cli import app
from unsup3d_cli.data import DataConfig, build_dataset, load_image
from unsup3d_cli.images import DataError, read_grey_levels, read_image, resize_image

HEIGHT, WIDTH = 80, 96
"""Upright size of the files of the cross-path test: larger than 64, not square."""


def _rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _exif_rotated(pixels: np.ndarray, path: Path) -> Path:
    """Save ``pixels`` with EXIF orientation 6: displayed rotated 90° clockwise."""
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(path, exif=exif)
    return path


# ------------------------------------------------------------------------------------------
# Decoding


def test_read_image_8bit_rgb_is_exact(tmp_path: Path) -> None:
    pixels = _rgb(20, 30)
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    decoded = read_image(tmp_path / "rgb.png")
    assert decoded.pixels.dtype == np.float32 and decoded.pixels.shape == (20, 30, 3)
    np.testing.assert_array_equal(decoded.pixels, pixels.astype(np.float32) / np.float32(255))
    assert (decoded.file_size, decoded.scale, decoded.frames) == ((30, 20), 1.0, 1)


def test_read_image_16bit_grey_keeps_its_precision(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8), 1000, dtype=np.uint16)).save(tmp_path / "grey16.png")
    pixels = read_image(tmp_path / "grey16.png").pixels
    np.testing.assert_allclose(pixels, 1000 / 65535, rtol=1e-6)
    assert pixels.shape == (8, 8, 3)


def test_read_image_composites_transparency_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 0  # fully transparent red
    rgba[0, 0] = (0, 0, 255, 255)  # one opaque blue pixel
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    pixels = read_image(tmp_path / "rgba.png").pixels
    np.testing.assert_array_equal(pixels[0, 0], [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(pixels[1:], 1.0)
    palette = Image.fromarray(np.array([[0, 1], [1, 1]], np.uint8), mode="P")
    palette.putpalette([10, 20, 30, 200, 100, 50])
    palette.save(tmp_path / "palette.png", transparency=1)  # index 1 transparent
    pixels = read_image(tmp_path / "palette.png").pixels
    np.testing.assert_allclose(pixels[0, 0], np.array([10, 20, 30]) / 255, rtol=1e-6)
    np.testing.assert_array_equal(pixels[1], 1.0)


def test_read_image_converts_cmyk_like_pillow(tmp_path: Path) -> None:
    Image.fromarray(_rgb(16, 16)).convert("CMYK").save(tmp_path / "cmyk.jpg")
    with Image.open(tmp_path / "cmyk.jpg") as image:
        assert image.mode == "CMYK"
        expected = np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255)
    np.testing.assert_array_equal(read_image(tmp_path / "cmyk.jpg").pixels, expected)


def test_read_image_applies_exif_orientation(tmp_path: Path) -> None:
    path = _exif_rotated(_rgb(40, 80), tmp_path / "rotated.jpg")
    decoded = read_image(path)
    assert decoded.pixels.shape == (80, 40, 3) and decoded.file_size == (80, 40)
    with Image.open(path) as image:  # Pillow's own transposition of the same decoded pixels
        upright = np.asarray(ImageOps.exif_transpose(image), dtype=np.float32) / np.float32(255)
    np.testing.assert_array_equal(decoded.pixels, upright)


def test_read_image_reduces_past_max_side(tmp_path: Path) -> None:
    Image.new("L", (300, 200), 90).save(tmp_path / "big.png")
    decoded = read_image(tmp_path / "big.png", max_side=100)
    assert decoded.pixels.shape == (67, 100, 3) and decoded.scale == 3.0
    np.testing.assert_allclose(decoded.pixels, 90 / 255, rtol=1e-6)
    assert read_image(tmp_path / "big.png").pixels.shape == (200, 300, 3)


def test_read_image_gives_the_first_frame_of_an_animation(tmp_path: Path) -> None:
    first, second = (Image.new("RGB", (8, 6), colour) for colour in ((0, 255, 0), (0, 0, 255)))
    first.save(tmp_path / "anim.gif", save_all=True, append_images=[second], duration=50)
    decoded = read_image(tmp_path / "anim.gif")
    assert decoded.frames == 2
    np.testing.assert_array_equal(decoded.pixels, np.broadcast_to([0.0, 1.0, 0.0], (6, 8, 3)))


@pytest.mark.parametrize("content", [b"not an image", b""])
def test_read_image_unreadable_is_one_line_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_image(path)
    assert str(info.value).startswith(f"{path}: cannot read the image")
    assert "\n" not in str(info.value)


def test_read_grey_levels_8_16_bit_and_channel_zero(tmp_path: Path) -> None:
    Image.fromarray(np.full((3, 3), 51, np.uint8)).save(tmp_path / "d8.png")
    Image.fromarray(np.full((3, 3), 32768, np.uint16)).save(tmp_path / "d16.png")
    rgb = np.zeros((3, 3, 3), np.uint8)
    rgb[..., 0], rgb[..., 1] = 255, 7
    Image.fromarray(rgb).save(tmp_path / "drgb.png")
    np.testing.assert_allclose(read_grey_levels(tmp_path / "d8.png"), 51 / 255, rtol=1e-6)
    np.testing.assert_allclose(read_grey_levels(tmp_path / "d16.png"), 32768 / 65535, rtol=1e-6)
    np.testing.assert_array_equal(read_grey_levels(tmp_path / "drgb.png"), 1.0)
    Image.fromarray(np.ones((3, 3), np.float32)).save(tmp_path / "float.tiff")
    with pytest.raises(DataError, match="unsupported depth pixel format 'F'"):
        read_grey_levels(tmp_path / "float.tiff")


# ------------------------------------------------------------------------------------------
# Resizing


def test_resize_image_shape_range_and_copy() -> None:
    pixels = np.random.default_rng(0).random((30, 50, 3), dtype=np.float32)
    resized = resize_image(pixels, 16)
    assert resized.shape == (3, 16, 16) and resized.dtype == torch.float32
    assert 0.0 <= resized.min() and resized.max() <= 1.0
    same = resize_image(pixels[:16, :16], 16)
    torch.testing.assert_close(same, torch.from_numpy(pixels[:16, :16]).permute(2, 0, 1))
    same[0, 0, 0] = 7.0
    assert pixels[0, 0, 0] != 7.0  # a copy, never a view of the caller's array


def test_resize_image_keeps_a_constant_and_antialiases() -> None:
    constant = resize_image(np.full((40, 40, 1), 0.25, np.float32), 8)
    torch.testing.assert_close(constant, torch.full((1, 8, 8), 0.25))
    stripes = (np.indices((64, 64))[1] % 2).astype(np.float32)[..., None]  # 1-px columns
    inner = resize_image(stripes, 16)[:, 2:-2, 2:-2]  # away from the renormalised border
    torch.testing.assert_close(inner, torch.full_like(inner, 0.5), atol=0.02, rtol=0)


# ------------------------------------------------------------------------------------------
# The same file, the same tensor: training, evaluation and reconstruct


def _assorted_files(folder: Path) -> list[Path]:
    """The issue's files, each HEIGHT × WIDTH once upright."""
    folder.mkdir(parents=True)
    rgba = np.concatenate([_rgb(HEIGHT, WIDTH, 1), _rgb(HEIGHT, WIDTH, 2)[..., :1]], axis=2)
    grey16 = np.linspace(0, 65535, HEIGHT * WIDTH).reshape(HEIGHT, WIDTH).astype(np.uint16)
    Image.fromarray(_rgb(HEIGHT, WIDTH, 0)).save(folder / "rgb8.png")
    Image.fromarray(grey16).save(folder / "grey16.png")
    Image.fromarray(rgba).save(folder / "rgba.png")
    Image.fromarray(_rgb(HEIGHT, WIDTH, 3)).convert("CMYK").save(folder / "cmyk.jpg")
    _exif_rotated(_rgb(WIDTH, HEIGHT, 4), folder / "exif.jpg")  # stored on its side
    frames = [Image.fromarray(_rgb(HEIGHT, WIDTH, seed)).quantize(64) for seed in (5, 6)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    return sorted(folder.iterdir())


def test_the_same_file_gives_the_same_tensor_everywhere(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    files = _assorted_files(root / "train")
    shutil.copytree(root / "train", root / "test" / "image")
    shutil.copytree(root / "train", root / "test" / "depth")  # any decodable file is a depth
    side = HEIGHT  # reconstruct takes the centred square; the datasets are told the same crop
    training = build_dataset(DataConfig(source="folder", root=str(root), crop=side), "train")
    paired = build_dataset(DataConfig(source="paired", root=str(root), crop=side), "test")
    assert [Path(item["path"]).name for item in map(training.__getitem__, range(6))] == [
        p.name for p in files
    ]

    received, infer_batch = [], reconstruct.infer_batch

    def spy(model, images, options):  # the batch exactly as the model receives it
        received.append(images.clone())
        return infer_batch(model, images, options)

    monkeypatch.setattr(reconstruct, "infer_batch", spy)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["reconstruct", "--checkpoint", str(tiny_checkpoint),
                                      str(root / "train"), "--out", str(out), "--device", "cpu",
                                      "--no-detect-faces"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (model_inputs,) = received  # one batch of the six files, in discovery order
    assert model_inputs.shape == (6, 3, 64, 64)

    for k, path in enumerate(files):
        image = training[k]["image"]  # (3, 64, 64)
        assert torch.equal(image, model_inputs[k]), path.name
        assert torch.equal(paired[k]["image"], image), path.name
        assert torch.equal(load_image(path, 64, side), image), path.name
        written = np.asarray(Image.open(out / path.stem / "input.png"))  # (64, 64, 3)
        expected = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        np.testing.assert_array_equal(written, expected, err_msg=path.name)
        record = json.loads((out / path.stem / "result.json").read_text())
        assert record["crop"] == {"method": "center", "box": [0, 8, HEIGHT, HEIGHT]}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processed"] == 6 and not summary["skipped"]
    assert any("anim.gif: 2 frames" in note for note in summary["warnings"])
