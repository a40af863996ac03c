"""Evaluation on a paired depth split: checkpoints and the paper's baselines → one table.

The protocol is the paper's (reference §7.1), implemented in :mod:`unsup3d_cli.metrics`; this
module streams a split in the synface layout (``image/`` + ``depth/``, read by
:class:`~unsup3d_cli.data.PairedDepthDataset`) once, optionally perturbs the images, runs every
candidate (a model or a baseline) on each batch, and aggregates the per-image scores into an
:class:`EvalReport` (mean ± unbiased std over images, like the original's ``eval_scores.txt``).

Candidates:

* a model: the compared depth is ``Reconstruction.view_depth[:B]``, the canonical depth
  rendered into the input view by the predicted viewpoint, with ``view_mask[:B]`` as its
  validity mask. Without ``refine`` only the depth and viewpoint networks run
  (:func:`predict_view_depth`; the same tensors as the full ``reconstruct``, checked by the
  tests), since nothing else enters the metrics.
* ``const``: constant null depth, a fronto-parallel plane at depth :data:`CONST_DEPTH`
  (the rotation pivot, mid depth range; SIDE and MAD do not depend on the constant), valid
  everywhere, with the identity rotation as its viewpoint.
* ``avg-gt``: the per-pixel mean of the ground-truth depth over the training split, counting
  each image only where it shows the face (depth < the 1.1 background); pixels with no face
  in any training image take the background depth 1.1 (:func:`average_gt_depth`).

Perturbations (``EvalConfig.perturbation``): ``L1``/``L2``/``L3`` cover a share of the face
(GT depth < background) drawn uniformly from 20–40 %, 40–60 % or 60–80 % with random textured
occluders (:func:`occlude`); ``asym`` blends one random coloured rectangle into the image
(:func:`asymmetric_patch`). Both are seeded per image (seed, dataset index), so every
candidate sees the same perturbed images, whatever the batch size.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from unsup3d_cli.data import (
    DEPTH_FAR,
    Crop,
    DataError,
    PairedDepthDataset,
    load_depth,
    make_loader,
)
from unsup3d_cli.geometry import euler_to_rotation
from unsup3d_cli.metrics import (
    DepthScores,
    depth_metrics,
    depth_normals,
    geodesic_error,
    viewpoint_summary,
)
from unsup3d_cli.model import Decomposition, Unsup3D
from unsup3d_cli.model.decomposition import decode_depth, decode_view, fill_border
from unsup3d_cli.render import Renderer

log = logging.getLogger(__name__)

CONST_DEPTH = 1.0
"""Depth of the ``const`` baseline's fronto-parallel plane (the rotation pivot's depth)."""
BASELINES = ("const", "avg-gt")
"""Baselines of the paper's Table 2 that :func:`evaluate_split` can add."""
OCCLUSION_LEVELS = {"L1": (0.2, 0.4), "L2": (0.4, 0.6), "L3": (0.6, 0.8)}
"""Share of the face covered by occluders, per level (drawn uniformly in the interval)."""
PERTURBATIONS = (*OCCLUSION_LEVELS, "asym")
"""Accepted values of :attr:`EvalConfig.perturbation` (besides None)."""
ASYM_SIDE_RANGE = (0.2, 0.5)
"""Side of the ``asym`` rectangle as a share of the image side, per axis."""
ASYM_ALPHA_RANGE = (0.5, 1.0)
"""Blending weight of the ``asym`` rectangle."""
DEPTH_METRICS = ("side", "mad_deg", "mad_deg_paper", "mae", "mse")
"""Per-image depth metrics, in report order (see :class:`~unsup3d_cli.metrics.DepthScores`)."""
META_FILE = "meta.jsonl"
"""Per-split file with each image's ground-truth pose (one JSON object per line)."""


@dataclass(frozen=True)
class EvalConfig:
    """How a split is read and perturbed, and how models are run on it."""

    batch_size: int = 64
    """Images per batch."""
    image_size: int = 64
    """Side of the square images and depth maps after crop and resize."""
    crop: Crop = None
    """Centre-crop side or (top, left, height, width) box applied before resizing (synface: 170)."""
    perturbation: str | None = None
    """None, 'L1', 'L2', 'L3' (occlusion levels) or 'asym' (asymmetric coloured rectangle)."""
    perturbation_seed: int = 0
    """Seed of the perturbations; image i of the split uses (seed, i)."""
    refine_steps: int = 0
    """Test-time render-and-compare steps per batch (``unsup3d_cli.refine``); 0 = none."""
    num_workers: int = 0
    """Data loader worker processes."""

    def __post_init__(self) -> None:
        """Reject values that cannot describe an evaluation (ValueError naming the field)."""
        if self.perturbation is not None and self.perturbation not in PERTURBATIONS:
            raise ValueError(
                f"perturbation must be one of {', '.join(PERTURBATIONS)} or None, "
                f"got {self.perturbation!r}"
            )
        for name, low in (("batch_size", 1), ("image_size", 3), ("refine_steps", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")


# --------------------------------------------------------------------------------------------
# Predictions


@dataclass(frozen=True)
class Prediction:
    """What a candidate predicts for a batch of B images.

    Attributes:
        view_depth: depth in the input view, (B, 1, H, W).
        view_mask: 1 where ``view_depth`` is valid, (B, 1, H, W).
        rotation: predicted viewpoint rotation, (B, 3, 3), or None.
        photometric_before: per-image photometric error before refinement, (B,), or None.
        photometric_after: the same after refinement, (B,), or None.
    """

    view_depth: Tensor
    view_mask: Tensor
    rotation: Tensor | None = None
    photometric_before: Tensor | None = None
    photometric_after: Tensor | None = None


Predictor = Callable[[Tensor], Prediction]
"""Images (B, 3, H, W) in [0, 1] → :class:`Prediction`."""


@torch.no_grad()
def predict_view_depth(model: Unsup3D, image: Tensor) -> Prediction:
    """The model's input-view depth, without the networks the metrics do not use.

    Runs only the depth and viewpoint networks and renders the un-flipped branch: the same
    tensors as ``model.reconstruct(model(image)).view_depth[:B]`` and ``view_mask[:B]``
    (rendering is per image, so the mirrored half changes nothing), at a fraction of the cost.

    Args:
        model: the model, in eval mode.
        image: shape (B, 3, 64, 64), in [0, 1].

    Returns:
        The :class:`Prediction` (depth, mask and viewpoint rotation).
    """
    cfg = model.cfg
    signed = (image * 2 - 1).contiguous(memory_format=torch.channels_last)  # as in forward
    view_net = getattr(model, "view_net", None)
    with model.network_autocast(signed):
        raw_depth = model.depth_net(signed)
        raw_view = view_net(signed) if view_net is not None else None
    depth = decode_depth(raw_depth.float(), cfg.min_depth, cfg.max_depth)
    depth = fill_border(depth, model.border_depth)  # (B, 1, H, W)
    if raw_view is None:  # a model without a viewpoint network predicts the identity view
        angles = translation = signed.new_zeros(signed.shape[0], 3)
    else:
        angles, translation = decode_view(
            raw_view.float(), cfg.rotation_range_deg, cfg.xy_translation_range,
            cfg.z_translation_range,
        )  # fmt: skip
    rotation = euler_to_rotation(angles)  # (B, 3, 3)
    view_depth, view_mask = model.renderer.warp_depth(
        depth, rotation, translation, model.view_depth_range
    )
    return Prediction(view_depth, view_mask, rotation)


def refined_prediction(model: Unsup3D, image: Tensor, steps: int) -> Prediction:
    """Prediction after ``steps`` of test-time refinement (``unsup3d_cli.refine.refine``).

    Raises:
        ValueError: if ``unsup3d_cli.refine`` is not available.
    """
    try:
        from unsup3d_cli.refine import refine  # lazy: only when refinement is asked for
    except ImportError as err:
        raise ValueError(f"refine_steps={steps} needs unsup3d_cli.refine ({err})") from err
    with torch.no_grad():
        decomp: Decomposition = model(image)
    with torch.enable_grad():
        decomp, before, after = refine(model, image, decomp.detach(), steps)
    with torch.no_grad():
        recon = model.reconstruct(decomp)
    depth, _ = recon.split(recon.view_depth)
    mask, _ = recon.split(recon.view_mask)
    rotation = euler_to_rotation(decomp.view_angles)
    return Prediction(depth, mask, rotation, before.detach(), after.detach())


def model_predictor(model: Unsup3D, refine_steps: int = 0) -> Predictor:
    """A :data:`Predictor` running ``model`` (with refinement when ``refine_steps`` > 0)."""
    if refine_steps > 0:
        return lambda image: refined_prediction(model, image, refine_steps)
    return lambda image: predict_view_depth(model, image)


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


# --------------------------------------------------------------------------------------------
# Perturbations


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen, dtype=torch.float64))


def _texture(size: int, gen: torch.Generator) -> Tensor:
    """A random texture (3, S, S) in [0, 1]: noisy colour, stripes, checker or colour noise."""
    kind = int(torch.randint(4, (), generator=gen))
    colors = torch.rand(2, 3, 1, 1, generator=gen)  # (2, 3, 1, 1)
    coords = torch.arange(size, dtype=torch.float32)
    y, x = torch.meshgrid(coords, coords, indexing="ij")  # (S, S)
    if kind == 0:
        noise = 0.08 * torch.randn(3, size, size, generator=gen)
        return (colors[0] + noise).clamp(0, 1)
    if kind == 1:
        angle, period = _uniform(gen, 0, math.pi), _uniform(gen, 3, 10)
        phase = (x * math.cos(angle) + y * math.sin(angle)) / period
        pick = (phase.floor() % 2).bool()  # (S, S)
    elif kind == 2:
        cell = int(torch.randint(2, 9, (), generator=gen))
        pick = ((x // cell + y // cell) % 2).bool()
    else:
        coarse = torch.rand(1, 3, 5, 5, generator=gen)
        return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)[0]
    return torch.where(pick, colors[0], colors[1])  # (3, S, S)


def _occluder_field(face: Tensor, gen: torch.Generator) -> Tensor:
    """A smooth random field (S, S), high on one to three elliptic blobs anchored on the face."""
    size = face.shape[-1]
    coords = torch.arange(size, dtype=torch.float32)
    y, x = torch.meshgrid(coords, coords, indexing="ij")  # (S, S)
    face_pixels = face.nonzero()  # (N, 2) rows, cols
    field = torch.zeros(size, size)
    for _ in range(int(torch.randint(1, 4, (), generator=gen))):
        cy, cx = face_pixels[int(torch.randint(len(face_pixels), (), generator=gen))].tolist()
        ry, rx = _uniform(gen, 0.1, 0.4) * size, _uniform(gen, 0.1, 0.4) * size
        angle = _uniform(gen, 0, math.pi)
        du, dv = x - cx, y - cy
        u = (du * math.cos(angle) + dv * math.sin(angle)) / rx
        v = (-du * math.sin(angle) + dv * math.cos(angle)) / ry
        field = torch.maximum(field, torch.exp(-(u**2 + v**2)))
    coarse = torch.rand(1, 1, 6, 6, generator=gen)
    wobble = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)[0, 0]
    return field + 0.15 * wobble


def occlude(
    image: Tensor, face: Tensor, coverage_range: tuple[float, float], gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Cover a random share of the face with randomly textured occluders.

    The share f is drawn uniformly in ``coverage_range``; the occluder is the region where a
    smooth random field (one to three elliptic blobs plus a low-frequency wobble) exceeds its
    value at the ⌈f·N⌉-th highest of the N face pixels, so it covers exactly that many face
    pixels (f up to 1/N) and may spill over the background.

    Args:
        image: shape (3, S, S), in [0, 1].
        face: the face mask, shape (S, S), bool.
        coverage_range: (low, high) share of the face to cover.
        gen: random generator (CPU).

    Returns:
        The occluded image (3, S, S) and the occluder mask (S, S), bool. An image with no face
        pixel comes back unchanged.
    """
    count = int(face.sum())
    if count == 0:
        return image, torch.zeros_like(face)
    low, high = coverage_range
    target = min(max(math.ceil(_uniform(gen, low, high) * count), 1), count)
    field = _occluder_field(face.cpu(), gen)  # (S, S)
    threshold = field[face.cpu()].topk(target).values[-1]
    occluder = (field >= threshold).to(image.device)  # (S, S)
    texture = _texture(image.shape[-1], gen).to(image)
    return torch.where(occluder, texture, image), occluder


def asymmetric_patch(image: Tensor, gen: torch.Generator) -> Tensor:
    """Blend one random coloured rectangle into an image (the paper's asymmetric perturbation).

    Each side is 20–50 % of the image side, the position uniform over the image, the colour
    uniform in RGB and the blending weight α uniform in [0.5, 1].

    Args:
        image: shape (3, S, S), in [0, 1].
        gen: random generator (CPU).

    Returns:
        The perturbed image (3, S, S).
    """
    size = image.shape[-1]
    height = round(_uniform(gen, *ASYM_SIDE_RANGE) * size)
    width = round(_uniform(gen, *ASYM_SIDE_RANGE) * size)
    top = int(torch.randint(size - height + 1, (), generator=gen))
    left = int(torch.randint(size - width + 1, (), generator=gen))
    color = torch.rand(3, 1, 1, generator=gen).to(image)
    alpha = _uniform(gen, *ASYM_ALPHA_RANGE)
    out = image.clone()
    patch = out[:, top : top + height, left : left + width]
    out[:, top : top + height, left : left + width] = (1 - alpha) * patch + alpha * color
    return out


def _perturbation_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + index) % 2**63)


def perturb_batch(
    image: Tensor, gt_depth: Tensor, mode: str | None, seed: int, indices: Sequence[int]
) -> Tensor:
    """Apply a perturbation to each image of a batch, seeded by (seed, dataset index).

    Args:
        image: shape (B, 3, S, S).
        gt_depth: shape (B, 1, S, S); the face is where it is below the 1.1 background.
        mode: None, 'L1', 'L2', 'L3' or 'asym'.
        seed: perturbation seed.
        indices: dataset index of each image, length B.

    Returns:
        The perturbed images, shape (B, 3, S, S) (the input itself when ``mode`` is None).
    """
    if mode is None:
        return image
    out = []
    for item, depth, index in zip(image, gt_depth, indices, strict=True):
        gen = _perturbation_generator(seed, int(index))
        if mode == "asym":
            out.append(asymmetric_patch(item, gen))
        elif mode in OCCLUSION_LEVELS:
            out.append(occlude(item, depth[0] < DEPTH_FAR, OCCLUSION_LEVELS[mode], gen)[0])
        else:
            raise ValueError(f"unknown perturbation {mode!r}; use {', '.join(PERTURBATIONS)}")
    return torch.stack(out)  # (B, 3, S, S)


# --------------------------------------------------------------------------------------------
# Ground-truth poses


def _rotation_from_record(record: dict[str, Any]) -> Tensor:
    """A record's 3×3 rotation: ``rotation`` if present, else R = Rz·Ry·Rx(view_angles_rad)."""
    if "rotation" in record:
        rotation = torch.tensor(record["rotation"], dtype=torch.float64)
    elif "view_angles_rad" in record:
        angles = torch.tensor(record["view_angles_rad"], dtype=torch.float64)
        if angles.shape != (3,):
            raise ValueError(f"view_angles_rad must hold 3 numbers, got {angles.tolist()}")
        rotation = euler_to_rotation(angles[None])[0]
    else:
        raise ValueError("needs 'rotation' (3×3) or 'view_angles_rad' ([rx, ry, rz])")
    if rotation.shape != (3, 3) or not torch.isfinite(rotation).all():
        raise ValueError(f"rotation must be a finite 3×3 matrix, got {rotation.tolist()}")
    return rotation


def read_rotations(split_dir: Path | str) -> dict[str, Tensor] | None:
    """Ground-truth rotations from ``<split>/meta.jsonl``, keyed by image file name.

    Each line is a JSON object naming its image under ``image`` (or ``file``; a path or a bare
    name, matched on the file name) with ``rotation`` (3×3, canonical → view, the model's
    convention) or ``view_angles_rad`` ([rx, ry, rz], R = Rz·Ry·Rx).

    Returns:
        File name → rotation (3, 3) float64, or None when the split has no ``meta.jsonl``.

    Raises:
        DataError: naming the file and line of a malformed record.
    """
    path = Path(split_dir) / META_FILE
    if not path.is_file():
        return None
    rotations: dict[str, Tensor] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            name = record.get("image", record.get("file"))
            if not isinstance(name, str):
                raise ValueError("needs the image file name under 'image' or 'file'")
            rotations[Path(name).name] = _rotation_from_record(record)
        except (ValueError, TypeError, AttributeError) as err:
            raise DataError(f"{path}:{number}: bad pose record: {err}") from None
    return rotations


# --------------------------------------------------------------------------------------------
# Aggregation and the report


@dataclass(frozen=True)
class Summary:
    """Mean and unbiased standard deviation (``torch.std``) of a per-image metric."""

    mean: float
    std: float

    @staticmethod
    def of(values: Sequence[float]) -> Summary:
        """Summary of finite values (NaN mean for none; NaN std for fewer than two)."""
        data = torch.tensor([v for v in values if math.isfinite(v)], dtype=torch.float64)
        if data.numel() == 0:
            return Summary(math.nan, math.nan)
        std = float(data.std()) if data.numel() > 1 else math.nan
        return Summary(float(data.mean()), std)


@dataclass(frozen=True)
class EvalRow:
    """The scores of one candidate (a checkpoint or a baseline) on the split.

    Attributes:
        name: row label.
        checkpoint: checkpoint path, or None for a baseline.
        n_images: images scored (a non-empty mask).
        metrics: metric name (:data:`DEPTH_METRICS`) → :class:`Summary` over those images.
        viewpoint: NeMo's summary (``median_deg``, ``acc_pi_6``, ``acc_pi_18``, ``n``), or None.
        per_image: ``file`` and each metric per image (NaN where the mask was empty), plus
            ``rotation_error_deg`` when poses are known.
        info: anything else worth recording (config digest, empty masks, refinement errors).
    """

    name: str
    checkpoint: str | None
    n_images: int
    metrics: dict[str, Summary]
    viewpoint: dict[str, float] | None = None
    per_image: dict[str, list] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: name, checkpoint, n_images, each metric, viewpoint, info, per_image."""
        row: dict[str, Any] = {
            "name": self.name,
            "checkpoint": self.checkpoint,
            "n_images": self.n_images,
        }
        for key, summary in self.metrics.items():
            row[key] = {"mean": _finite(summary.mean), "std": _finite(summary.std)}
        if self.viewpoint is not None:
            row["viewpoint"] = dict(self.viewpoint)
        row.update(self.info)
        row["per_image"] = {k: [_finite(v) for v in vals] for k, vals in self.per_image.items()}
        return row


def _finite(value: Any) -> Any:
    """NaN/inf → None (JSON has no NaN); anything else unchanged."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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


@dataclass(frozen=True)
class EvalReport:
    """Rows (one per candidate) and the protocol they were measured under."""

    rows: tuple[EvalRow, ...]
    protocol: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """``{"rows": [...], "protocol": {...}}``, JSON-ready (NaN → null)."""
        return {"rows": [row.to_dict() for row in self.rows], "protocol": self.protocol}

    def write_json(self, path: Path | str) -> Path:
        """Write :meth:`to_dict` as indented JSON (folders created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Headers and formatted cells of the results table (SIDE ×10⁻², like the paper)."""
        return table_cells(self.rows)

    def to_markdown(self) -> str:
        """The table and the definitions, as markdown."""
        return format_markdown(self)

    def write_markdown(self, path: Path | str) -> Path:
        """Write :meth:`to_markdown` (folders created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_markdown())
        return path


# --------------------------------------------------------------------------------------------
# Running


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
            ``meta.jsonl``).
        candidates: what to score, one row each, in this order.
        cfg: reading, perturbation and refinement settings.
        device: where predictions and metrics run.
        protocol: extra entries for the report's protocol (merged over the defaults).

    Returns:
        The :class:`EvalReport`.

    Raises:
        DataError: the split is missing, empty or has a malformed ``meta.jsonl``.
    """
    cfg = cfg or EvalConfig()
    if not candidates:
        raise ValueError("nothing to evaluate: give at least one checkpoint or baseline")
    device = torch.device(device)
    rotations = read_rotations(data_dir)
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


def protocol_definitions(cfg: EvalConfig, data_dir: Path | str) -> dict[str, Any]:
    """The definitions every report carries (what was compared, how, in which units)."""
    perturbation = {"mode": cfg.perturbation, "seed": cfg.perturbation_seed}
    if cfg.perturbation in OCCLUSION_LEVELS:
        low, high = OCCLUSION_LEVELS[cfg.perturbation]
        perturbation["definition"] = (
            f"random textured occluders (1-3 elliptic blobs with a low-frequency wobble; noisy "
            f"colour, stripes, checker or colour noise) covering a share of the face drawn "
            f"uniformly in [{low:.0%}, {high:.0%}], the face being GT depth < 1.1"
        )
    elif cfg.perturbation == "asym":
        perturbation["definition"] = (
            "one random coloured rectangle per image, each side 20-50% of the image side, "
            "uniform position and RGB colour, alpha-blended with alpha uniform in [0.5, 1]"
        )
    return {
        "data": str(data_dir),
        "image_size": cfg.image_size,
        "crop": list(cfg.crop) if isinstance(cfg.crop, tuple) else cfg.crop,
        "perturbation": perturbation,
        "refine_steps": cfg.refine_steps,
        **PROTOCOL_TEXT,
    }


PROTOCOL_TEXT: dict[str, Any] = {
    "compared_depth": "the predicted canonical depth rendered into the input view by the "
    "predicted viewpoint and clamped to [min-margin, max+margin] (Reconstruction.view_depth[:B]); "
    "our rasterizer samples pixel centres (no NMR half-pixel shift, so the last row and column "
    "are not systematically invalid)",
    "gt_depth": "d = 1.1 - 0.2 * v / vmax from the depth PNG (8- or 16-bit), after the same "
    "crop and bilinear resize as the image",
    "gt_mask": "[d_gt < max of d_gt over the batch] eroded by 1 px",
    "prediction_mask": "validity mask of the un-flipped reconstruction (view_mask[:B]) eroded by "
    "1 px",
    "erosion": "3x3 average pool, stride 1, zero padding 1, > 0.99 (also strips the image's "
    "outer ring)",
    "mask": "gt_mask * prediction_mask",
    "side": "per image sqrt(mean_mask((delta - mean_mask(delta))^2)), delta = ln d_pred - ln "
    "d_gt (natural log, population std; no epsilon); raw values here, x1e-2 in tables",
    "mad_deg": "per image mean over the mask of the angle between unit normals (Kahan's "
    "2 atan2(|a - b|, |a + b|) = arccos(a.b)), degrees; identical depth maps score 0",
    "mad_deg_paper": "the original as coded: normals n/(|n|+1e-7), mean of "
    "arccos(clamp(n_pred.n_gt, -1, 1)) in degrees; identical 64x64 depth maps already score "
    "about 6 deg",
    "normals": "central differences of the back-projected points (same camera K for prediction "
    "and ground truth); the 1-px outer ring is (0, 0, 1) and masked out",
    "mae": "masked mean |d_pred - d_gt| (world units; not in the paper)",
    "mse": "masked mean (d_pred - d_gt)^2 (world units^2; not in the paper)",
    "aggregation": "per-image scores; mean and unbiased std (torch.std) over the images with a "
    "non-empty mask (n_images); images with an empty mask are counted in n_empty_mask",
    "baselines": {
        "const": f"constant null depth: a fronto-parallel plane at depth {CONST_DEPTH} (SIDE and "
        "MAD do not depend on the constant), valid everywhere; viewpoint = identity rotation",
        "avg-gt": "per-pixel mean of the GT depth over the training split, counting each image "
        "only where it shows the face (d < 1.1, background excluded); pixels with no face in "
        "any training image take the background depth 1.1; valid everywhere",
    },
    "viewpoint": "when meta.jsonl is present: geodesic error |log(R_pred^T R_gt)|_F / sqrt(2) "
    "(the rotation angle) per image; median in degrees and accuracy (share < threshold) at "
    "pi/6 and pi/18 (NeMo); R_pred = Rz Ry Rx of the predicted view angles",
}
"""Fixed definitions recorded in every report's protocol."""


# --------------------------------------------------------------------------------------------
# Formatting


TABLE_HEADERS = (
    "method", "n", "SIDE ×10⁻² ↓", "MAD ° ↓", "MAD paper ° ↓", "rot. median ° ↓",
    "Acc π/6 ↑", "Acc π/18 ↑",
)  # fmt: skip
"""Columns of the results table (MAD paper: the original's n/(‖n‖+1e-7) normals; rot. median:
median geodesic viewpoint error)."""


def _pm(summary: Summary, scale: float = 1.0, digits: int = 3) -> str:
    if not math.isfinite(summary.mean):
        return "–"
    if not math.isfinite(summary.std):
        return f"{summary.mean * scale:.{digits}f}"
    return f"{summary.mean * scale:.{digits}f} ± {summary.std * scale:.{digits}f}"


def table_cells(rows: Sequence[EvalRow]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells: SIDE ×10⁻² (3 decimals), MAD in degrees (2 decimals), viewpoint."""
    cells = []
    for row in rows:
        view = row.viewpoint
        cells.append([
            row.name,
            str(row.n_images),
            _pm(row.metrics["side"], 100.0),
            _pm(row.metrics["mad_deg"], digits=2),
            _pm(row.metrics["mad_deg_paper"], digits=2),
            f"{view['median_deg']:.2f}" if view else "–",
            f"{view['acc_pi_6']:.3f}" if view else "–",
            f"{view['acc_pi_18']:.3f}" if view else "–",
        ])  # fmt: skip
    return list(TABLE_HEADERS), cells


def format_markdown(report: EvalReport) -> str:
    """Markdown: a heading, the table (mean ± std over images), then the definitions."""
    headers, cells = report.table()
    lines = [
        "# unsup3d eval",
        "",
        f"Data: `{report.protocol.get('data')}`; perturbation: "
        f"{report.protocol.get('perturbation', {}).get('mode') or 'none'}.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    lines += ["", "Definitions:", ""]
    for key in ("compared_depth", "mask", "side", "mad_deg", "mad_deg_paper", "aggregation"):
        lines.append(f"- **{key}**: {report.protocol[key]}")
    for name, text in report.protocol["baselines"].items():
        if any(row.name == name for row in report.rows):
            lines.append(f"- **{name}**: {text}")
    if any(row.viewpoint for row in report.rows):
        lines.append(f"- **viewpoint**: {report.protocol['viewpoint']}")
    definition = report.protocol.get("perturbation", {}).get("definition")
    if definition:
        lines.append(f"- **perturbation**: {definition}")
    return "\n".join(lines) + "\n"
