"""The fast PNG encoder against Pillow's decoder (which checks every chunk's CRC)."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unsup3d_cli.pngio import SIGNATURE, encode_png, write_png

MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def decode(data: bytes) -> tuple[np.ndarray, str]:
    with Image.open(io.BytesIO(data)) as img:
        img.load()  # verifies the CRCs and the zlib stream
        return np.asarray(img), img.mode


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (64, 64), (7, 130)])
def test_uint8_round_trip(channels: int, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(channels * 100 + shape[1])
    pixels = rng.integers(0, 256, (*shape, channels), dtype=np.uint8)
    back, mode = decode(encode_png(pixels))
    assert mode == MODES[channels]
    np.testing.assert_array_equal(back.reshape(pixels.shape), pixels)


def test_uint8_grey_two_dimensional_and_wrapping_differences() -> None:
    # Neighbours 255 → 0 → 255 make the Sub filter wrap around mod 256 both ways.
    pixels = np.tile(np.array([255, 0, 255, 1, 254, 128], dtype=np.uint8), (4, 1))
    back, mode = decode(encode_png(pixels))
    assert mode == "L"
    np.testing.assert_array_equal(back, pixels)


@pytest.mark.parametrize("shape", [(1, 1), (64, 64), (5, 9)])
def test_uint16_grey_round_trip_big_endian(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[1])
    pixels = rng.integers(0, 65536, shape, dtype=np.uint16)
    pixels.flat[0], pixels.flat[-1] = 65535, 256  # bytes differing between the two endians
    back, mode = decode(encode_png(pixels))
    assert mode.startswith("I")  # Pillow's 16-bit grey ("I;16")
    np.testing.assert_array_equal(back.astype(np.uint16), pixels)


def test_non_contiguous_input_and_every_level() -> None:
    base = np.random.default_rng(0).integers(0, 256, (8, 10, 4), dtype=np.uint8)
    view = base[:, ::2, :3]  # strided RGB
    assert not view.flags.c_contiguous
    for level in range(10):
        back, _ = decode(encode_png(view, level))
        np.testing.assert_array_equal(back, view)


def test_layout_is_signature_ihdr_one_idat_iend() -> None:
    pixels = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    data = encode_png(pixels)
    assert data.startswith(SIGNATURE)
    kinds, offset = [], len(SIGNATURE)
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        crc = int.from_bytes(data[offset + 8 + length : offset + 12 + length], "big")
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        kinds.append(kind)
        offset += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    # Hand-decoded scanlines: filter byte 1, first pixel verbatim, then differences.
    scanlines = zlib.decompress(data[len(SIGNATURE) + 25 + 8 : -12 - 4])
    assert scanlines == bytes([1, 0, 1, 2, 3, 3, 3, 1, 6, 7, 8, 3, 3, 3])


def test_write_png_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "map.png"
    path.write_text("old")
    pixels = np.full((4, 4), 7, dtype=np.uint8)
    write_png(path, pixels)
    np.testing.assert_array_equal(decode(path.read_bytes())[0], pixels)


@pytest.mark.parametrize(
    ("pixels", "fragment"),
    [
        (np.zeros((4, 4), dtype=np.float32), "uint8"),
        (np.zeros((4, 4, 3), dtype=np.uint16), "uint16 grey"),
        (np.zeros((4, 4, 5), dtype=np.uint8), "channel"),
        (np.zeros((4,), dtype=np.uint8), "shape"),
        (np.zeros((0, 4), dtype=np.uint8), "shape"),
    ],
)
def test_rejects_what_it_cannot_encode(pixels: np.ndarray, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        encode_png(pixels)


def test_rejects_a_bad_level() -> None:
    with pytest.raises(ValueError, match="level"):
        encode_png(np.zeros((2, 2), dtype=np.uint8), level=10)
