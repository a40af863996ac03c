"""Largest-face detection and the square crops the model expects, with no download.

Faces are found with scikit-image's bundled LBP frontal-face cascade
(``skimage.data.lbp_frontal_face_cascade_filename()``). The crop follows the original demo
(reference §8.2): the crop side is 1.1 × the mean side of the face box, its centre is moved
down by 15% of the half-side, and pixels outside the photo repeat its edge. The cascade's
boxes are tighter than the MTCNN boxes the demo used (brows to mouth rather than forehead to
chin), so a box is first enlarged by :data:`CASCADE_BOX_SCALE` (chosen by eye on
scikit-image's astronaut photo so that the crop runs from the hairline to below the chin, as the
CelebA training crops do).

Boxes are ``(top, left, height, width)`` in pixels of the photo; a crop box may reach past the
photo's edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

FACE_MARGIN = 1.1
"""Crop side over the mean side of the (MTCNN-like) face box, as in the original demo."""
FACE_SHIFT_DOWN = 0.15
"""Downward shift of the crop centre, as a fraction of the crop's half-side."""
CASCADE_BOX_SCALE = 1.1
"""Enlargement that turns a cascade box (brows to lips) into an MTCNN-like one (to the chin)."""
DETECT_SIDE = 384
"""The cascade runs on a copy of the photo whose longer side is at most this many pixels."""
MIN_FACE_FRACTION = 0.08
"""Smallest face searched for, as a fraction of the photo's shorter side (at least 24 px)."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: rows [top, top + height), columns [left, left + width)."""

    top: int
    left: int
    height: int
    width: int

    def as_list(self) -> list[int]:
        """``[top, left, height, width]``, as written to result.json."""
        return [self.top, self.left, self.height, self.width]

    def scaled(self, factor: float) -> Box:
        """The same box in a photo ``factor`` times larger."""
        return Box(
            round(self.top * factor),
            round(self.left * factor),
            max(1, round(self.height * factor)),
            max(1, round(self.width * factor)),
        )


def face_crop_box(face: Box) -> Box:
    """The square training-style crop around a detected face box (reference §8.2).

    Args:
        face: a box from :meth:`FaceDetector.largest_face`.

    Returns:
        A square box, possibly reaching past the photo's edges.
    """
    height, width = face.height * CASCADE_BOX_SCALE, face.width * CASCADE_BOX_SCALE
    centre_row = face.top + face.height / 2
    centre_col = face.left + face.width / 2
    half = max(1, int(FACE_MARGIN / 2 * (height + width) / 2))
    top = round(centre_row + FACE_SHIFT_DOWN * half - half)
    left = round(centre_col - half)
    return Box(top, left, 2 * half, 2 * half)


def center_crop_box(height: int, width: int) -> Box:
    """The largest centred square of a ``height`` × ``width`` photo."""
    side = min(height, width)
    return Box((height - side) // 2, (width - side) // 2, side, side)


def crop_with_edge_padding(image: np.ndarray, box: Box) -> np.ndarray:
    """Cut ``box`` out of an image, repeating the edge pixels where the box leaves it.

    Args:
        image: shape (H, W) or (H, W, C).
        box: the region; any position and size ≥ 1.

    Returns:
        Shape (box.height, box.width[, C]), a new array.
    """
    rows = np.clip(np.arange(box.top, box.top + box.height), 0, image.shape[0] - 1)
    cols = np.clip(np.arange(box.left, box.left + box.width), 0, image.shape[1] - 1)
    return image[rows[:, None], cols[None, :]]


class FaceDetector:
    """Finds the largest frontal face in a photo with scikit-image's bundled LBP cascade.

    The cascade file is read on first use, so a detector is cheap to create and to copy into
    data-loader worker processes.
    """

    def __init__(self, detect_side: int = DETECT_SIDE) -> None:
        self.detect_side = detect_side
        self._cascade = None

    def _get_cascade(self):
        if self._cascade is None:
            from skimage.data import lbp_frontal_face_cascade_filename  # noqa: PLC0415 (slow)
            from skimage.feature import Cascade  # noqa: PLC0415 (only with --detect-faces)

            self._cascade = Cascade(lbp_frontal_face_cascade_filename())
        return self._cascade

    def largest_face(self, grey: np.ndarray) -> Box | None:
        """The largest face box in a grey photo, or None when there is none.

        Args:
            grey: shape (H, W), float in [0, 1] or uint8.

        Returns:
            The face box in the photo's pixels, or None.
        """
        height, width = grey.shape
        factor = min(1.0, self.detect_side / max(height, width))
        small = _downscale(grey.astype(np.float32), factor)  # (h, w)
        shorter = min(small.shape)
        min_side = max(24, int(MIN_FACE_FRACTION * shorter))
        if shorter < min_side:
            return None
        found = self._get_cascade().detect_multi_scale(
            img=small, scale_factor=1.2, step_ratio=1, min_size=(min_side, min_side),
            max_size=(shorter, shorter),
        )  # fmt: skip
        if not found:
            return None
        best = max(found, key=lambda d: d["width"] * d["height"])
        box = Box(best["r"], best["c"], best["height"], best["width"])
        return box.scaled(1 / factor) if factor < 1 else box


def _downscale(grey: np.ndarray, factor: float) -> np.ndarray:
    """Area-average downscale of a float image (H, W) by ``factor`` ≤ 1."""
    if factor >= 1:
        return grey

    height, width = grey.shape
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.BOX))
