"""Evaluation on a paired depth split: checkpoints and the paper's baselines → one table.

The protocol is the paper's (reference §7.1), implemented in :mod:`unsup3d_cli.metrics`. The
package streams a split in the synface layout (``image/`` + ``depth/``) once, optionally
perturbs the images, runs every candidate (a model or a baseline) on each batch, and aggregates
the per-image scores into an :class:`EvalReport` (mean ± unbiased std over images, like the
original's ``eval_scores.txt``).

Modules:

* :mod:`~unsup3d_cli.evaluation.predictors`: :class:`Prediction` and the model's predictors
  (the compared depth is ``Reconstruction.view_depth[:B]`` with ``view_mask[:B]``).
* :mod:`~unsup3d_cli.evaluation.baselines`: ``const`` and ``avg-gt`` (the paper's Table 2).
* :mod:`~unsup3d_cli.evaluation.perturb`: occlusion levels ``L1``–``L3`` and ``asym``.
* :mod:`~unsup3d_cli.evaluation.poses`: ground-truth poses from the split's ``meta.jsonl``.
* :mod:`~unsup3d_cli.evaluation.options`: :class:`EvalConfig` and :class:`EvalOptions`.
* :mod:`~unsup3d_cli.evaluation.report`: rows, the report, the protocol text, table, markdown.
* :mod:`~unsup3d_cli.evaluation.runner`: :class:`Candidate` and :func:`evaluate_split`.
* :mod:`~unsup3d_cli.evaluation.candidates`: loaded models and baselines → candidates.
"""

from unsup3d_cli.evaluation.baselines import (
    BASELINES,
    CONST_DEPTH,
    average_gt_depth,
    constant_predictor,
    mean_depth_predictor,
)
from unsup3d_cli.evaluation.candidates import (
    LoadedModel,
    baseline_candidates,
    build_candidates,
    config_digest,
    model_candidates,
    resolve_crop,
    split_config,
)
from unsup3d_cli.evaluation.options import AUTO_CROP, EvalConfig, EvalOptions
from unsup3d_cli.evaluation.perturb import (
    OCCLUSION_LEVELS,
    PERTURBATIONS,
    asymmetric_patch,
    occlude,
    perturb_batch,
)
from unsup3d_cli.evaluation.poses import META_FILE, read_rotations, split_rotations
from unsup3d_cli.evaluation.predictors import (
    Prediction,
    Predictor,
    model_predictor,
    predict_view_depth,
    refined_prediction,
)
from unsup3d_cli.evaluation.report import (
    DEPTH_METRICS,
    PROTOCOL_TEXT,
    EvalReport,
    EvalRow,
    Summary,
    format_markdown,
    protocol_definitions,
    table_cells,
)
from unsup3d_cli.evaluation.runner import Candidate, evaluate_split

__all__ = [
    "AUTO_CROP",
    "BASELINES",
    "CONST_DEPTH",
    "DEPTH_METRICS",
    "META_FILE",
    "OCCLUSION_LEVELS",
    "PERTURBATIONS",
    "PROTOCOL_TEXT",
    "Candidate",
    "EvalConfig",
    "EvalOptions",
    "EvalReport",
    "EvalRow",
    "LoadedModel",
    "Prediction",
    "Predictor",
    "Summary",
    "asymmetric_patch",
    "average_gt_depth",
    "baseline_candidates",
    "build_candidates",
    "config_digest",
    "constant_predictor",
    "evaluate_split",
    "format_markdown",
    "mean_depth_predictor",
    "model_candidates",
    "model_predictor",
    "occlude",
    "perturb_batch",
    "predict_view_depth",
    "protocol_definitions",
    "read_rotations",
    "refined_prediction",
    "resolve_crop",
    "split_config",
    "split_rotations",
    "table_cells",
]
