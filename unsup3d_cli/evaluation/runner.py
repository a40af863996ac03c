"""Running an evaluation: stream a paired split once and score every candidate on each batch.

The split is in the synface layout (``image/`` + ``depth/``, read by
:class:`~unsup3d_cli.data.PairedDepthDataset`); the images are optionally perturbed
(:mod:`~unsup3d_cli.evaluation.perturb`), every :class:`Candidate` predicts on each batch, and
the metrics of :mod:`unsup3d_cli.metrics` (the paper's protocol, reference §7.1) are
aggregated per candidate into the :class:`~unsup3d_cli.evaluation.report.EvalReport`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from unsup3d_cli.data import PairedDepthDataset, make_loader
from unsup3d_cli.evaluation.options import EvalConfig
from unsup3d_cli.evaluation.perturb import perturb_batch
from unsup3d_cli.evaluation.poses import split_rotations
from unsup3d_cli.evaluation.predictors import Prediction, Predictor
from unsup3d_cli.evaluation.report import (
    DEPTH_METRICS,
    EvalReport,
    EvalRow,
    Summary,
    protocol_definitions,
)
from unsup3d_cli.metrics import (
    DepthScores,
    depth_metrics,
    depth_normals,
    geodesic_error,
    viewpoint_summary,
)
from unsup3d_cli.render import Renderer


@dataclass(frozen=True)
class Candidate:
    """Something to score: a name, how it predicts, and the camera for its normals.

    Attributes:
        name: row label.
        predict: images → :class:`Prediction`.
        renderer: camera used for the normals of the prediction and of the GT depth.
        checkpoint: checkpoint path (None for a baseline).
        info: extra fields recorded in the row (e.g. ``config_digest``, ``definition``).
    """

    name: str
    predict: Predictor
    renderer: Renderer
    checkpoint: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


class _RowAccumulator:
    """Collects the per-image results of one candidate over the batches."""

    def __init__(self, candidate: Candidate) -> None:
        self.candidate = candidate
        self.files: list[str] = []
        self.values: dict[str, list[float]] = {key: [] for key in DEPTH_METRICS}
        self.rotation_errors: list[float | None] = []
        self.photometric: dict[str, list[float]] = {"before": [], "after": []}

    def add(
        self,
        files: list[str],
        scores: DepthScores,
        prediction: Prediction,
        gt_rotation: list[Tensor | None],
    ) -> None:
        self.files.extend(files)
        for key in DEPTH_METRICS:
            self.values[key].extend(getattr(scores, key).double().cpu().tolist())
        self.rotation_errors.extend(_rotation_errors(prediction.rotation, gt_rotation))
        for key, value in (
            ("before", prediction.photometric_before),
            ("after", prediction.photometric_after),
        ):
            if value is not None:
                self.photometric[key].extend(value.double().cpu().tolist())

    def row(self) -> EvalRow:
        scored = [math.isfinite(v) for v in self.values["side"]]
        info = dict(self.candidate.info)
        info["n_empty_mask"] = scored.count(False)
        if self.photometric["after"]:
            info["photometric_error"] = {
                key: Summary.of(vals).mean for key, vals in self.photometric.items()
            }
        per_image: dict[str, list] = {"file": list(self.files), **self.values}
        errors = [e for e in self.rotation_errors if e is not None]
        viewpoint = None
        if errors:
            viewpoint = viewpoint_summary(torch.tensor(errors, dtype=torch.float64))
            per_image["rotation_error_deg"] = [
                math.degrees(e) if e is not None else None for e in self.rotation_errors
            ]
        metrics = {key: Summary.of(vals) for key, vals in self.values.items()}
        return EvalRow(
            self.candidate.name, self.candidate.checkpoint, sum(scored), metrics, viewpoint,
            per_image, info,
        )  # fmt: skip


def _rotation_errors(rotation: Tensor | None, gt: list[Tensor | None]) -> list[float | None]:
    """Geodesic error (radians) per image where both rotations are known, else None."""
    if rotation is None:
        return [None] * len(gt)
    known = [i for i, r in enumerate(gt) if r is not None]
    errors: list[float | None] = [None] * len(gt)
    if known:
        target = torch.stack([gt[i] for i in known]).to(rotation)  # (K, 3, 3)
        values = geodesic_error(rotation[known], target).double().cpu().tolist()
        for i, value in zip(known, values, strict=True):
            errors[i] = value
    return errors


def _batches(data_dir: Path, cfg: EvalConfig) -> tuple[PairedDepthDataset, Iterator[dict]]:
    dataset = PairedDepthDataset(data_dir, cfg.image_size, cfg.crop)
    loader = make_loader(
        dataset, cfg.batch_size, shuffle=False, hflip=False, seed=0, num_workers=cfg.num_workers
    )
    return dataset, (batch for batch in loader if batch is not None)


def evaluate_split(
    data_dir: Path | str,
    candidates: Sequence[Candidate],
    cfg: EvalConfig | None = None,
    device: torch.device | str = "cpu",
    protocol: dict[str, Any] | None = None,
) -> EvalReport:
    """Score every candidate on a paired split, streaming it once.

    Args:
        data_dir: split folder in the synface layout (``image/``, ``depth/``, optional
            ``meta.jsonl`` with ground-truth poses, see
            :func:`~unsup3d_cli.evaluation.poses.read_rotations`).
        candidates: what to score, one row each, in this order.
        cfg: reading, perturbation and refinement settings.
        device: where predictions and metrics run.
        protocol: extra entries for the report's protocol (merged over the defaults).

    Returns:
        The :class:`EvalReport`.

    Raises:
        DataError: the split is missing or empty. A ``meta.jsonl`` that cannot be read as poses
            only leaves out the viewpoint columns, with a warning.
    """
    cfg = cfg or EvalConfig()
    if not candidates:
        raise ValueError("nothing to evaluate: give at least one checkpoint or baseline")
    device = torch.device(device)
    rotations = split_rotations(data_dir)
    dataset, batches = _batches(Path(data_dir), cfg)
    rows = [_RowAccumulator(candidate) for candidate in candidates]
    for batch in batches:
        _score_batch(batch, rows, cfg, device, rotations)
    info = {"n_pairs": len(dataset), "n_unreadable": dataset.num_skipped}
    info["n_with_pose"] = _count_with_pose(dataset, rotations)
    merged = {**protocol_definitions(cfg, data_dir), **info, **(protocol or {})}
    return EvalReport(tuple(row.row() for row in rows), merged)


def _count_with_pose(dataset: PairedDepthDataset, rotations: dict[str, Tensor] | None) -> int:
    if rotations is None:
        return 0
    return sum(image.name in rotations for image, _ in dataset.pairs)


def _score_batch(
    batch: dict[str, Any],
    rows: list[_RowAccumulator],
    cfg: EvalConfig,
    device: torch.device,
    rotations: dict[str, Tensor] | None,
) -> None:
    depth = batch["depth"].to(device)  # (B, 1, S, S)
    image = perturb_batch(
        batch["image"], batch["depth"], cfg.perturbation, cfg.perturbation_seed,
        batch["index"].tolist(),
    ).to(device)  # fmt: skip
    files = [Path(p).name for p in batch["path"]]
    gt_rotation = [rotations.get(f) if rotations else None for f in files]
    gt_normals: dict[Any, tuple[Tensor, Tensor]] = {}  # per camera, shared by the candidates
    for row in rows:
        prediction = row.candidate.predict(image)
        renderer = row.candidate.renderer
        with torch.no_grad():
            if renderer.cfg not in gt_normals:
                gt_normals[renderer.cfg] = depth_normals(depth, renderer)
            scores = depth_metrics(
                prediction.view_depth, prediction.view_mask, depth, renderer,
                gt_normals[renderer.cfg],
            )  # fmt: skip
        row.add(files, scores, prediction, gt_rotation)
