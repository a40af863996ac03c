"""Settings of an evaluation: how a split is read and perturbed, and what the user asked for.

:class:`EvalConfig` is what :func:`~unsup3d_cli.evaluation.evaluate_split` runs with;
:class:`EvalOptions` is what ``unsup3d eval`` (and ``unsup3d_cli.api.evaluate``) takes, before
the checkpoints decide the image size and, with ``crop='auto'``, the crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from unsup3d_cli.data import Crop
from unsup3d_cli.evaluation.baselines import BASELINES
from unsup3d_cli.evaluation.perturb import PERTURBATIONS

AUTO_CROP = "auto"
""":attr:`EvalOptions.crop` that takes the checkpoints' ``data.crop``."""


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


@dataclass(frozen=True)
class EvalOptions:
    """What to score besides the checkpoints, how, and where the report goes."""

    baselines: tuple[str, ...] = ()
    """Any of 'const' and 'avg-gt'; one row each, after the checkpoints."""
    train_data: Path | str | None = None
    """Training split for 'avg-gt' (None: ``<data>/../train``)."""
    out: Path | str | None = None
    """JSON report to write (None: not written)."""
    markdown: Path | str | None = None
    """Markdown report to write (None: not written)."""
    perturbation: str | None = None
    """None, 'L1', 'L2', 'L3' (occlusion levels) or 'asym'."""
    refine_steps: int = 0
    """Test-time refinement steps (``unsup3d_cli.refine``); 0 = none."""
    batch_size: int = 64
    """Images per batch."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda' or 'cuda:N'."""
    crop: Crop | Literal["auto"] = AUTO_CROP
    """'auto' (the checkpoints' ``data.crop``; none without checkpoints), None, a centre-crop
    side or a (top, left, height, width) box."""
    num_workers: int = 0
    """Data loader worker processes."""
    seed: int = 0
    """Seed of the perturbations."""
    precision: str = "fp32"
    """The networks' arithmetic: 'fp32', 'bf16' or 'auto' (bf16 where native)."""
    preset: str | None = None
    """Settings of original Unsup3D checkpoints (None: the loader's default)."""

    def __post_init__(self) -> None:
        """Reject an unknown baseline or a value :class:`EvalConfig` rejects (ValueError)."""
        unknown = [name for name in self.baselines if name not in BASELINES]
        if unknown:
            raise ValueError(f"unknown baseline {unknown[0]!r} (use {', '.join(BASELINES)})")
        self.eval_config(image_size=64, crop=None)  # the shared fields' checks

    def eval_config(self, image_size: int, crop: Crop) -> EvalConfig:
        """The :class:`EvalConfig` of these options for the given image size and resolved crop."""
        return EvalConfig(
            batch_size=self.batch_size, image_size=image_size, crop=crop,
            perturbation=self.perturbation, perturbation_seed=self.seed,
            refine_steps=self.refine_steps, num_workers=self.num_workers,
        )  # fmt: skip
