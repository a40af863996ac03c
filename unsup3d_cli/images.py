"""Reading image files: the one place where a file becomes a float image.

The training and evaluation datasets (:mod:`unsup3d_cli.data`) and ``reconstruct``'s photos
(:mod:`unsup3d_cli.reconstruct`) all decode with :func:`read_image` and resize to the model's
size with :func:`resize_image`, so a file reaches the networks as the same tensor whichever
command reads it. Crops (a configured box, a face, a centred square) belong to the callers and
are cut from the decoded array between the two steps.

Decoding, for every format Pillow reads (:data:`IMAGE_EXTENSIONS` are the suffixes searched):

* the EXIF orientation is applied, so the image is upright as a viewer shows it;
* 8-bit channels are divided by 255; 16-bit (and 32-bit integer) grey by 65535, with no 8-bit
  round trip; float grey is clipped to [0, 1];
* grey is repeated into RGB; palette, CMYK and other modes are converted to RGB;
* transparency (an alpha channel or a transparent palette entry) is composited over white;
* an animated file (GIF, WebP) or a multi-page TIFF gives its first frame.

Depth maps are decoded by :func:`read_grey_levels` (the same opening and orientation, but raw
grey levels: no colour conversion, no compositing).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif",
)  # fmt: skip
"""File name suffixes (compared case-insensitively) that count as images."""
WIDE_MAX = 65535.0
"""Value of white in 16-bit (and 32-bit integer) grey images."""

_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation → the transposition that makes the image upright (as ImageOps does)."""
_WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_UNSUPPORTED_DEPTH_MODES = ("F", "I;16S", "I;32", "I;32S")


class DataError(ValueError):
    """A data folder or file is missing, empty or unreadable (the message names it).

    Defined here, the lowest module that raises it; :mod:`unsup3d_cli.data` re-exports it.
    """


@dataclass(frozen=True)
class DecodedImage:
    """An image file decoded to RGB floats, upright."""

    pixels: np.ndarray
    """Shape (H, W, 3), float32 in [0, 1]."""
    file_size: tuple[int, int]
    """(width, height) stored in the file, before orientation and any reduction."""
    scale: float = 1.0
    """File pixels per returned pixel: 1 unless the image was reduced (``max_side``)."""
    frames: int = 1
    """Frames (or pages) in the file; above 1, ``pixels`` is the first."""


def read_image(path: Path | str, max_side: int | None = None) -> DecodedImage:
    """Decode an image file to upright RGB floats (rules in the module docstring).

    Args:
        path: the image file.
        max_side: if given, an image whose longer side exceeds it is decoded at reduced size
            (JPEG) or reduced by an integer factor, to a longer side of at most ``max_side``.

    Returns:
        The :class:`DecodedImage`.

    Raises:
        DataError: unreadable, truncated or not an image (one line naming the file).
    """
    flat, file_size, scale, frames = _decode(Path(path), _as_rgb_l_or_f, max_side)
    return DecodedImage(_to_rgb_array(flat), file_size, scale, frames)


def read_grey_levels(path: Path | str) -> np.ndarray:
    """Decode a depth-map file to its grey levels over the file's maximum, upright.

    8-bit files (grey, or channel 0 of a colour file) are divided by 255, 16-bit grey by 65535.

    Returns:
        Shape (H, W), float32 in [0, 1].

    Raises:
        DataError: unreadable, or a pixel format that is not 8- or 16-bit (names the file).
    """
    path = Path(path)
    plane, *_ = _decode(path, lambda img: _grey_plane(img, path), None)
    vmax = WIDE_MAX if plane.mode in _WIDE_GREY_MODES else 255.0
    return np.asarray(plane).astype(np.float32) / np.float32(vmax)  # (H, W)


def resize_image(pixels: np.ndarray, size: int) -> Tensor:
    """Resize an image to the model's square size: bilinear, antialiased, on floats.

    Args:
        pixels: shape (H, W, C), values in [0, 1].
        size: output side S in pixels.

    Returns:
        A new tensor of shape (C, S, S), float32, clipped to [0, 1] (returned unchanged, as a
        copy, when already S × S).
    """
    image = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))  # (H, W, C)
    image = image.permute(2, 0, 1)  # (C, H, W)
    if image.shape[-2:] == (size, size):
        return image.clone(memory_format=torch.contiguous_format)
    resized = F.interpolate(
        image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )  # (1, C, S, S)
    return resized[0].clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Decoding


def _decode(
    path: Path, flatten: Callable[[Image.Image], Image.Image], max_side: int | None
) -> tuple[Image.Image, tuple[int, int], float, int]:
    """Open, decode and ``flatten`` the first frame, reduce it to ``max_side``, make it upright.

    Returns:
        The flattened image, the file's (width, height), file pixels per returned pixel, and
        the file's number of frames.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                file_size, frames = img.size, getattr(img, "n_frames", 1)
                factor = _reduction(img.size, max_side)
                if factor > 1 and img.format == "JPEG":
                    img.draft(img.mode, (img.size[0] // factor, img.size[1] // factor))
                orientation = img.getexif().get(_ORIENTATION_TAG)
                img.load()
                flat = flatten(img)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders raise anything on a broken file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read the image ({reason})") from None
    factor = _reduction(flat.size, max_side)
    if factor > 1:
        flat = flat.reduce(factor)
    scale = file_size[0] / flat.size[0]
    if orientation in _TRANSPOSE:
        flat = flat.transpose(_TRANSPOSE[orientation])
    return flat, file_size, scale, frames


def _reduction(size: tuple[int, int], max_side: int | None) -> int:
    """The integer factor that brings the longer side to at most ``max_side`` (1 if None)."""
    return 1 if max_side is None else max(1, -(-max(size) // max_side))


def _as_rgb_l_or_f(img: Image.Image) -> Image.Image:
    """Any mode → 8-bit 'RGB' or 'L', or float grey 'F' in [0, 1]; alpha over white."""
    if img.mode in _WIDE_GREY_MODES:
        return Image.fromarray(np.asarray(img, dtype=np.float32) / np.float32(WIDE_MAX))
    if img.mode == "F":
        return img
    if img.mode in _ALPHA_MODES or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img if img.mode == "L" else img.convert("RGB")


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """An 'RGB', 'L' or 'F' image → float32 array (H, W, 3) in [0, 1]."""
    if img.mode == "RGB":
        return np.asarray(img, dtype=np.float32) / np.float32(255)  # (H, W, 3)
    grey = np.asarray(img, dtype=np.float32)  # (H, W)
    if img.mode == "L":
        grey = grey / np.float32(255)
    else:
        grey = np.clip(np.nan_to_num(grey), 0.0, 1.0)
    return np.repeat(grey[..., None], 3, axis=2)  # (H, W, 3)


def _grey_plane(img: Image.Image, path: Path) -> Image.Image:
    """A depth file's single plane: 16-bit grey as is, else channel 0 of its RGB (8-bit)."""
    if img.mode in _WIDE_GREY_MODES:
        return img
    if img.mode in _UNSUPPORTED_DEPTH_MODES:
        raise DataError(f"{path}: unsupported depth pixel format {img.mode!r} (want 8/16-bit)")
    return img.convert("RGB").getchannel(0)
