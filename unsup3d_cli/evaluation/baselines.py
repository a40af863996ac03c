"""The baselines of the paper's Table 2: constant null depth and the mean training GT depth.

* ``const``: constant null depth, a fronto-parallel plane at depth :data:`CONST_DEPTH`
  (the rotation pivot, mid depth range; SIDE and MAD do not depend on the constant), valid
  everywhere, with the identity rotation as its viewpoint.
* ``avg-gt``: the per-pixel mean of the ground-truth depth over the training split, counting
  each image only where it shows the face (depth < the 1.1 background); pixels with no face
  in any training image take the background depth 1.1 (:func:`average_gt_depth`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor

from unsup3d_cli.data import DEPTH_FAR, Crop, DataError, PairedDepthDataset, load_depth
from unsup3d_cli.evaluation.predictors import Prediction, Predictor

log = logging.getLogger(__name__)

CONST_DEPTH = 1.0
"""Depth of the ``const`` baseline's fronto-parallel plane (the rotation pivot's depth)."""
BASELINES = ("const", "avg-gt")
"""Baselines of the paper's Table 2 that an evaluation can add."""


def constant_predictor(depth: float = CONST_DEPTH) -> Predictor:
    """The ``const`` baseline: a fronto-parallel plane, valid everywhere, identity rotation."""

    def predict(image: Tensor) -> Prediction:
        batch, _, height, width = image.shape
        view_depth = image.new_full((batch, 1, height, width), depth)
        rotation = torch.eye(3, dtype=image.dtype, device=image.device).expand(batch, 3, 3)
        return Prediction(view_depth, torch.ones_like(view_depth), rotation)

    return predict


def mean_depth_predictor(mean_depth: Tensor) -> Predictor:
    """The ``avg-gt`` baseline: one depth map (1, 1, H, W) for every image, valid everywhere."""

    def predict(image: Tensor) -> Prediction:
        view_depth = mean_depth.to(image).expand(image.shape[0], -1, -1, -1)
        return Prediction(view_depth, torch.ones_like(view_depth))

    return predict


def average_gt_depth(
    train_dir: Path | str, image_size: int = 64, crop: Crop = None
) -> tuple[Tensor, int]:
    """Per-pixel mean GT depth of a training split, over the images that show a face there.

    Each depth map (after the same crop and resize as the test data) counts at the pixels where
    it is nearer than the background (depth < 1.1); pixels with no face in any image take the
    background depth 1.1. Unreadable depth files are skipped with a warning.

    Args:
        train_dir: a split in the synface layout (``image/`` and ``depth/``).
        image_size: output side.
        crop: as for the test data.

    Returns:
        The mean map, shape (1, 1, S, S), and the number of depth maps averaged.

    Raises:
        DataError: if the split has no pairs or none of its depth files is readable.
    """
    dataset = PairedDepthDataset(train_dir, image_size, crop)
    total = torch.zeros(1, image_size, image_size, dtype=torch.float64)
    count = torch.zeros_like(total)
    used = 0
    for _, depth_path in dataset.pairs:
        try:
            depth = load_depth(depth_path, image_size, crop).double()  # (1, S, S)
        except DataError as err:
            log.warning("avg-gt: skipping %s", err)
            continue
        face = (depth < DEPTH_FAR).double()
        total += depth * face
        count += face
        used += 1
    if used == 0:
        raise DataError(f"avg-gt: no readable depth file under {dataset.root}")
    mean = torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, DEPTH_FAR))
    return mean.float()[None], used
