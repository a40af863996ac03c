"""Shared fixtures: devices, dtypes, tolerances, seeding and tiny generated datasets."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

TOLERANCES: dict[torch.dtype, dict[str, float]] = {
    torch.float32: {"rtol": 1e-4, "atol": 1e-5},
    torch.float64: {"rtol": 1e-7, "atol": 1e-9},
}
"""``torch.testing.assert_close`` keyword arguments per dtype."""


@pytest.fixture(
    params=[
        "cpu",
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
            ],
        ),
    ]
)
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


@pytest.fixture
def tolerances(dtype: torch.dtype) -> dict[str, float]:
    """``rtol``/``atol`` for the current ``dtype``: ``assert_close(a, b, **tolerances)``."""
    return TOLERANCES[dtype]


@pytest.fixture(autouse=True)
def _seed_and_exact_math() -> None:
    """Seed every generator and keep CUDA matmuls/convolutions in full float32 precision."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def _write_random_pngs(folder: Path, count: int, rng: np.random.Generator, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{index:03d}.png")


@pytest.fixture
def tiny_image_folder(tmp_path: Path) -> Path:
    """A generated image-folder dataset: 8 train, 4 val and 4 test random 64x64 RGB PNGs.

    Returns:
        The dataset root, with ``train/``, ``val/`` and ``test/`` inside (``DataConfig.root``).
    """
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4), ("test", 4)):
        _write_random_pngs(root / split, count, rng, size=64)
    return root


TINY_MODEL_OVERRIDES = (
    "model.width=16",
    "model.encoder_width=16",
    "model.depth_zdim=32",
    "model.confidence_zdim=16",
    "loss.perceptual_weights=none",
)
"""A narrow model that runs fast on CPU; the encoders still need 64×64 inputs."""


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint of an untrained narrow model, written like ``unsup3d train`` writes them.

    Returns:
        Path to ``last.pt``; ``unsup3d_cli.api.load_model`` rebuilds the model from it.
    """
    from unsup3d_cli import api
    from unsup3d_cli.config import ExperimentConfig, apply_overrides, config_to_dict
    from unsup3d_cli.engine.checkpoint import save_checkpoint

    cfg = apply_overrides(ExperimentConfig(name="tiny"), list(TINY_MODEL_OVERRIDES))
    torch.manual_seed(0)
    model = api.build_model(cfg)
    path = tmp_path / "tiny_run" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    state = {"model": model.state_dict(), "config": config_to_dict(cfg), "step": 0, "epoch": 0}
    save_checkpoint(path, state)
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of two random 64×64 RGB photos, photo0.png and photo1.png."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{index}.png")
    return folder
