"""The candidates of an evaluation: loaded models and baselines → :class:`Candidate` rows.

The caller (``unsup3d_cli.api.evaluate``) loads each checkpoint and hands over plain values
(:class:`LoadedModel`); this module names the rows, settles the test data's image size and
crop, and builds the baselines.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unsup3d_cli.data import Crop, DataError
from unsup3d_cli.evaluation.baselines import (
    average_gt_depth,
    constant_predictor,
    mean_depth_predictor,
)
from unsup3d_cli.evaluation.options import AUTO_CROP, EvalConfig, EvalOptions
from unsup3d_cli.evaluation.predictors import model_predictor
from unsup3d_cli.evaluation.report import PROTOCOL_TEXT
from unsup3d_cli.evaluation.runner import Candidate
from unsup3d_cli.model import Unsup3D
from unsup3d_cli.render import Renderer

DEFAULT_IMAGE_SIZE = 64
"""Side of the test images when no checkpoint gives its ``data.image_size``."""


@dataclass(frozen=True)
class LoadedModel:
    """A model read from a checkpoint, and what its report row records about it.

    Attributes:
        model: the model, in eval mode on the evaluation device.
        checkpoint: the checkpoint path.
        config_name: the run config's ``name`` (the row label).
        config_digest: short digest of the run config (:func:`config_digest`).
        crop: the run config's ``data.crop`` (the test data's under ``crop='auto'``).
        image_size: the run config's ``data.image_size``.
        info: more fields for the row (e.g. the original checkpoint's format and preset).
    """

    model: Unsup3D
    checkpoint: str
    config_name: str
    config_digest: str
    crop: Crop = None
    image_size: int = DEFAULT_IMAGE_SIZE
    info: dict[str, Any] = field(default_factory=dict)


def config_digest(config: Mapping[str, Any]) -> str:
    """First 12 hex digits of the SHA-256 of a config mapping as sorted-key JSON."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def resolve_crop(crop: Crop | str, models: Sequence[LoadedModel]) -> Crop:
    """The crop of the test data: ``crop`` unless 'auto', else the models' (which must agree).

    Raises:
        ValueError: under 'auto', models trained with different crops.
    """
    if crop != AUTO_CROP:
        return crop
    crops = {repr(entry.crop): entry.crop for entry in models}
    if len(crops) > 1:
        raise ValueError(
            f"the checkpoints were trained with different data.crop values ({', '.join(crops)}); "
            "pass --crop to evaluate them on the same ground truth"
        )
    return next(iter(crops.values())) if crops else None


def split_config(options: EvalOptions, models: Sequence[LoadedModel]) -> EvalConfig:
    """How to read the split: the first model's image size (else 64) and :func:`resolve_crop`.

    Raises:
        ValueError: checkpoints that disagree on the crop, or a value :class:`EvalConfig`
            rejects.
    """
    image_size = models[0].image_size if models else DEFAULT_IMAGE_SIZE
    return options.eval_config(image_size, resolve_crop(options.crop, models))


def model_candidates(models: Sequence[LoadedModel], refine_steps: int = 0) -> list[Candidate]:
    """One row per model, named by its config (``name#2`` … for repeats, `` +refineN``)."""
    candidates: list[Candidate] = []
    seen: dict[str, int] = {}
    for entry in models:
        base = entry.config_name
        name = base if base not in seen else f"{base}#{seen[base] + 1}"
        seen[base] = seen.get(base, 0) + 1
        if refine_steps > 0:
            name = f"{name} +refine{refine_steps}"
        info = {"config_digest": entry.config_digest, "config_name": base, **entry.info}
        predict = model_predictor(entry.model, refine_steps)
        candidates.append(Candidate(name, predict, entry.model.renderer, entry.checkpoint, info))
    return candidates


def baseline_candidates(
    names: Sequence[str], renderer: Renderer, train_dir: Path, image_size: int, crop: Crop
) -> list[Candidate]:
    """One row per baseline ('const', 'avg-gt'), in the order given.

    Raises:
        DataError: 'avg-gt' without a usable training split.
    """
    candidates = []
    for name in names:
        info: dict[str, Any] = {"definition": PROTOCOL_TEXT["baselines"][name]}
        if name == "const":
            candidates.append(Candidate(name, constant_predictor(), renderer, None, info))
            continue
        if not train_dir.is_dir():
            raise DataError(
                f"the avg-gt baseline needs the training split: {train_dir} is not a folder "
                "(pass --train-data)"
            )
        mean_depth, used = average_gt_depth(train_dir, image_size, crop)
        info.update(train_data=str(train_dir), n_train_images=used)
        candidates.append(Candidate(name, mean_depth_predictor(mean_depth), renderer, None, info))
    return candidates


def build_candidates(
    data_dir: Path | str,
    models: Sequence[LoadedModel],
    options: EvalOptions,
    cfg: EvalConfig,
    device: torch.device | str = "cpu",
) -> list[Candidate]:
    """The models' rows, then each requested baseline's once (with the first model's camera).

    Args:
        data_dir: the test split; 'avg-gt' reads ``<data_dir>/../train`` unless
            ``options.train_data`` is given.
        models: the loaded checkpoints, one row each, in order.
        options: the baselines, the training split and the refinement steps.
        cfg: the split settings (:func:`split_config`).
        device: where the baselines' camera lives.

    Raises:
        DataError: 'avg-gt' without a usable training split.
    """
    renderer = Renderer(models[0].model.renderer.cfg) if models else Renderer()
    train = options.train_data
    train_dir = Path(train) if train is not None else Path(data_dir).parent / "train"
    baselines = list(dict.fromkeys(options.baselines))
    return [
        *model_candidates(models, cfg.refine_steps),
        *baseline_candidates(baselines, renderer.to(device), train_dir, cfg.image_size, cfg.crop),
    ]
