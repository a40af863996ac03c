"""Shared steps of the scripts that score a trained model in-process on a split of ``synth``.

A checkpoint (a training ``.pt`` or a ``.safetensors`` bundle; default: the bundled model) is
loaded with the package's safe loaders, and a split's ``meta.jsonl`` gives each image's ground
truth from the generator.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch

from unsup3d_cli.data import load_depth, load_image
from unsup3d_cli.model import Unsup3D
from unsup3d_cli.pretrained import build_model, load_into, load_weights
from unsup3d_cli.weights import bundled_model_path

REPO = Path(__file__).resolve().parents[1]
TEST_SPLIT = REPO / "data" / "synth_mesh" / "test"


def load_eval_model(checkpoint: Path | None) -> tuple[Unsup3D, Path]:
    """The model of ``checkpoint`` (None: the bundled one) in eval mode, and its path."""
    path = checkpoint or bundled_model_path()
    loaded = load_weights(path)
    model = build_model(loaded.config)
    load_into(model, loaded, str(path))
    model.eval()
    return model, path


def split_records(data: Path, limit: int | None = None) -> list[dict]:
    """The first ``limit`` (None: all) records of a split's ``meta.jsonl``."""
    lines = (data / "meta.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[:limit]]


def split_tensors(data: Path) -> tuple[list[dict], torch.Tensor, torch.Tensor]:
    """A split's records, its images (N, 3, 64, 64) and its true depths (N, 1, 64, 64)."""
    records = split_records(data)
    images = torch.stack([load_image(data / r["image"]) for r in records])
    depths = torch.stack([load_depth(data / r["depth"]) for r in records])
    return records, images, depths


def log_relief_fit(pred: torch.Tensor, true: torch.Tensor) -> tuple[float, float]:
    """How a predicted relief compares with the true one over the same pixels (1-D depths).

    Returns ``(scale, ratio)`` of the mean-centred log depths: ``scale`` is the least-squares
    slope of the true on the predicted (below 1: too deep, or partly unlike the truth) and
    ``ratio`` the predicted spread over the true (above 1: too deep, whatever the correlation).
    """
    lp, lg = pred.log(), true.log()
    lp, lg = lp - lp.mean(), lg - lg.mean()
    scale = float((lp * lg).sum() / lp.square().sum().clamp(min=1e-12))
    return scale, float(lp.norm() / lg.norm().clamp(min=1e-12))


def report_main(description: str, report: Callable[[Path, Path], dict]) -> None:
    """Command line of a one-row report ``report(checkpoint, data)``: prints it as one JSON
    line and, with ``--out``, writes it indented."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: bundled model")
    parser.add_argument("--data", type=Path, default=TEST_SPLIT)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    row = report(args.checkpoint or bundled_model_path(), args.data)
    print(json.dumps(row))
    if args.out is not None:
        args.out.write_text(json.dumps(row, indent=1) + "\n")
