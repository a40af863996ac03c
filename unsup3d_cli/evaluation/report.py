"""The report: per-image scores aggregated per candidate, the protocol text, table and markdown.

Each candidate's per-image scores become an :class:`EvalRow` (mean ± unbiased std over images,
like the original's ``eval_scores.txt``); the rows and the protocol they were measured under
make the :class:`EvalReport`, written as JSON or as a markdown table with its definitions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unsup3d_cli.evaluation.baselines import CONST_DEPTH
from unsup3d_cli.evaluation.options import EvalConfig
from unsup3d_cli.evaluation.perturb import OCCLUSION_LEVELS

DEPTH_METRICS = ("side", "mad_deg", "mad_deg_paper", "mae", "mse")
"""Per-image depth metrics, in report order (see :class:`~unsup3d_cli.metrics.DepthScores`)."""


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
