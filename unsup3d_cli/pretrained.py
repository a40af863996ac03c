"""Model weights from any checkpoint: ours, or the original Unsup3D's with a preset.

Our checkpoints carry their experiment config. The original's (``pretrained_*/checkpoint030.pth``
and its training checkpoints) hold weights only: the ranges that give those weights their
meaning (depth, rotation, x/y/z translation, border depth, light) and the crop of the data come
from the ``experiments/train_*.yml`` the model was trained with. Each preset here is that file
translated to our keys, the same as ``configs/<name>.yaml`` (a test checks that they agree).

Files are read by :func:`~unsup3d_cli.engine.checkpoint.read_checkpoint_file`, which runs no
code from them, or, for a ``.safetensors`` model bundle (float16 weights with their config, see
:mod:`unsup3d_cli.weights.bundle`), by safetensors, which unpickles nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from unsup3d_cli import __version__
from unsup3d_cli.config import ConfigError, ExperimentConfig, config_from_dict, config_to_dict
from unsup3d_cli.engine.checkpoint import (
    CheckpointError,
    is_our_checkpoint,
    read_checkpoint_file,
    save_checkpoint,
    validate_checkpoint,
)
from unsup3d_cli.model import Unsup3D
from unsup3d_cli.model.original import (
    ORIGINAL_NETWORKS,
    WeightMappingError,
    convert_original_weights,
    is_original_checkpoint,
)
from unsup3d_cli.render import Renderer
from unsup3d_cli.weights.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_SUFFIX,
    is_safetensors_file,
    read_bundle,
    write_bundle,
)

log = logging.getLogger(__name__)

DEFAULT_PRESET = "celeba"
"""The preset of a checkpoint given without one (the original demo's model)."""

_PRESETS: dict[str, dict[str, Any]] = {
    "celeba": {
        "name": "celeba",
        "data": {"root": "data/celeba_cropped", "num_workers": 4},
    },
    "cat": {
        "name": "cat",
        "data": {"root": "data/cat_combined", "crop": 170, "num_workers": 4},
        "model": {"z_translation_range": 0.1},
        "loss": {"lam_flip_start_epoch": 10},
        "train": {"num_epochs": 200, "checkpoint_every_epochs": 10},
    },
    "synface": {
        "name": "synface",
        "data": {"source": "paired", "root": "data/synface", "crop": 170, "num_workers": 4},
    },
    "syncar": {
        "name": "syncar",
        "data": {"root": "data/syncar", "crop": [8, 14, 100, 100], "num_workers": 4},
        "model": {"border_depth": 1.08, "min_diffuse": 0.5, "use_confidence": False},
        "loss": {"lam_perc": 0.01, "lam_flip": 1.0, "lam_depth_smooth": 0.1},
        "train": {"num_epochs": 100, "checkpoint_every_epochs": 10},
    },
}
"""Each preset's departures from the defaults of :class:`ExperimentConfig` (which are the
original's common settings: depth 0.9–1.1, rotation 60°, x/y translation 0.1, field of view
10°, batch 64, Adam 1e-4)."""

PRESET_NAMES = tuple(_PRESETS)
"""'celeba', 'cat', 'synface', 'syncar'."""


def preset_config(name: str) -> ExperimentConfig:
    """The experiment config of one of the original's published models.

    Raises:
        ConfigError: an unknown preset name (the message lists the valid ones).
    """
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; use one of {', '.join(PRESET_NAMES)}")
    return config_from_dict(_PRESETS[name])


ORIGINAL_FORMAT = "unsup3d-original"
"""``LoadedWeights.source_format`` of a checkpoint of the original code."""
OUR_FORMAT = "unsup3d_cli"
"""``LoadedWeights.source_format`` of a checkpoint written by this program."""


@dataclass(frozen=True)
class LoadedWeights:
    """A checkpoint's model weights, with the config that builds the model for them.

    Attributes:
        config: the experiment config (stored in our checkpoints, a preset for the original's).
        state_dict: complete state dict of :class:`~unsup3d_cli.model.Unsup3D` for ``config``.
        source_format: :data:`OUR_FORMAT` or :data:`ORIGINAL_FORMAT`.
        preset: the preset used for an original checkpoint, else None.
        info: where the weights came from, for reports (file, format, preset, epoch).
    """

    config: ExperimentConfig
    state_dict: dict[str, Tensor]
    source_format: str
    preset: str | None
    info: dict[str, Any]


def build_model(cfg: ExperimentConfig) -> Unsup3D:
    """The model, with its renderer, as configured (randomly initialised)."""
    try:
        return Unsup3D(cfg.model, Renderer(cfg.renderer))
    except ValueError as err:
        raise ConfigError(f"model: {err}") from err


def load_weights(path: Path | str, preset: str | None = None) -> LoadedWeights:
    """Read model weights from our checkpoint or bundle, or from an original Unsup3D checkpoint.

    Args:
        path: the checkpoint file, or a ``.safetensors`` model bundle (recognised by its name
            or its first bytes), whose float16 weights come back as float32.
        preset: for an original checkpoint, the settings it was trained with (one of
            :data:`PRESET_NAMES`; None: :data:`DEFAULT_PRESET`). Ignored, with a warning, for
            our checkpoints and bundles, which carry their own config.

    Returns:
        The :class:`LoadedWeights`; a checkpoint of a run that kept a moving average of its
        weights gives the averaged weights. Original weights and bundles are checked against
        the model name by name and shape by shape; our checkpoints are checked when a model
        loads them (:func:`load_into`).

    Raises:
        CheckpointError: the file is missing, unreadable, would need code to load, is neither
            format, or its weights do not fit its config (the message names the file).
        ConfigError: an unknown preset.
    """
    path = Path(path)
    if path.is_file() and is_safetensors_file(path):
        _warn_preset_ignored(preset, path)
        return _bundle_weights(path)
    state = read_checkpoint_file(path)
    if is_our_checkpoint(state):
        validate_checkpoint(state, path)
        _warn_preset_ignored(preset, path)
        return _our_weights(state, path)
    if is_original_checkpoint(state):
        return _original_weights(state, path, preset or DEFAULT_PRESET)
    raise CheckpointError(
        f"not a checkpoint of unsup3d nor of the original Unsup3D (no netD, netA, netL and "
        f"netV weights): {path}"
    )


def _warn_preset_ignored(preset: str | None, path: Path) -> None:
    if preset is not None:
        log.warning("--preset %s ignored for %s: it carries its own config", preset, path)


def _our_weights(state: dict[str, Any], path: Path) -> LoadedWeights:
    try:
        cfg = config_from_dict(state["config"])
        weights = state.get("model_ema", state["model"])
    except (KeyError, ConfigError) as err:
        detail = " ".join(str(err).split())[:200]
        raise CheckpointError(f"{path}: not a usable unsup3d checkpoint ({detail})") from err
    info: dict[str, Any] = {"file": str(path), "format": OUR_FORMAT}
    if isinstance(state.get("step"), int):
        info["step"] = state["step"]
    if isinstance(state.get("source"), dict):  # written by `unsup3d convert`
        info["converted"] = state["source"]
    return LoadedWeights(cfg, weights, OUR_FORMAT, None, info)


def _bundle_weights(path: Path) -> LoadedWeights:
    """A model bundle's weights (as float32), checked against the model its config builds."""
    weights, metadata = read_bundle(path)
    try:
        cfg = config_from_dict(json.loads(metadata["config"]))
    except (KeyError, TypeError, AttributeError, ValueError, ConfigError) as err:
        detail = " ".join(str(err).split())[:200]  # ConfigError and JSONDecodeError included
        raise CheckpointError(
            f"{path}: a model bundle without a usable config ({detail})"
        ) from None
    check_weights_fit(weights, cfg, str(path))
    info: dict[str, Any] = {"file": str(path), "format": OUR_FORMAT, "bundle": BUNDLE_FORMAT}
    if metadata.get("source_step", "").isdigit():
        info["step"] = int(metadata["source_step"])
    if metadata.get("recipe"):
        info["recipe"] = metadata["recipe"]
    return LoadedWeights(cfg, weights, OUR_FORMAT, None, info)


def check_weights_fit(weights: dict[str, Tensor], cfg: ExperimentConfig, what: str) -> None:
    """Check that a state dict has exactly the keys and shapes of the model ``cfg`` builds.

    The model is built on the meta device: nothing is allocated.

    Raises:
        CheckpointError: a missing or unexpected key, a wrong shape, or an integer tensor where
            the model has a floating-point one (``what`` starts the message, which names the key).
    """
    with torch.device("meta"):  # only names, shapes and dtypes are needed: allocate nothing
        expected = build_model(cfg).state_dict()
    problem = _misfit(weights, expected)
    if problem is not None:
        raise CheckpointError(f"{what}: weights that do not fit the model of its config: {problem}")


def _misfit(weights: dict[str, Tensor], expected: dict[str, Tensor]) -> str | None:
    """The first difference between two state dicts' keys, shapes and kinds of dtype, or None."""
    for key in weights:
        if key not in expected:
            return f"{key!r} is not a weight of that model"
    for key, tensor in expected.items():
        if key not in weights:
            return f"no weight for {key!r}"
        found = weights[key]
        if tuple(found.shape) != tuple(tensor.shape):
            return f"{key!r} has shape {tuple(found.shape)}, the model's {tuple(tensor.shape)}"
        if tensor.is_floating_point() and not found.is_floating_point():
            return f"{key!r} is {found.dtype}, the model's is floating point"
    return None


def _original_weights(state: dict[str, Any], path: Path, preset: str) -> LoadedWeights:
    cfg = preset_config(preset)
    has_confidence = isinstance(state.get("netC"), dict)
    cfg = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, use_confidence=has_confidence)
    )
    networks = {name: state[name] for name in ORIGINAL_NETWORKS if name in state}
    try:
        with torch.device("meta"):  # only names and shapes are needed: allocate nothing
            layout = build_model(cfg)
        weights = convert_original_weights(networks, layout)
    except WeightMappingError as err:
        raise CheckpointError(
            f"{path}: an original Unsup3D checkpoint whose weights do not fit the "
            f"'{preset}' architecture: {err}"
        ) from None
    info = {"file": str(path), "format": ORIGINAL_FORMAT, "preset": preset}
    if isinstance(state.get("epoch"), int):
        info["epoch"] = state["epoch"]
    if not has_confidence:
        info["note"] = "no netC in the checkpoint: no confidence maps"
    return LoadedWeights(cfg, weights, ORIGINAL_FORMAT, preset, info)


def convert_checkpoint(
    source: Path | str,
    out: Path | str,
    preset: str | None = None,
    force: bool = False,
    *,
    recipe: str = "",
) -> LoadedWeights:
    """Write a checkpoint as ours (``.pt``) or as a float16 model bundle (``.safetensors``).

    To a ``.pt`` file: an original Unsup3D checkpoint, its weights unchanged, with its preset's
    config inside. To a ``.safetensors`` file (by ``out``'s suffix): the weights of any
    checkpoint, ours, a bundle or the original's, as a bundle
    (:mod:`unsup3d_cli.weights.bundle`). Either result loads in every command with no further
    option, and ``train --init-from`` fine-tunes from it.

    Args:
        source: the checkpoint.
        out: the file to write (atomically); its suffix picks the format.
        preset: the settings an original checkpoint was trained with (None:
            :data:`DEFAULT_PRESET`).
        force: replace an existing ``out``.
        recipe: free text stored in a bundle (how the model was trained); not stored in
            ``.pt`` files.

    Returns:
        The converted weights.

    Raises:
        CheckpointError: ``out`` exists without ``force``; for a ``.pt`` ``out``, ``source``
            is not an original checkpoint; for a bundle, ``source`` cannot be loaded (see
            :func:`load_weights`).
    """
    source, out = Path(source), Path(out)
    if out.exists() and not force:
        raise CheckpointError(f"{out} exists; pass --force to replace it")
    if out.suffix.lower() == BUNDLE_SUFFIX:
        loaded = load_weights(source, preset)
        save_bundle(loaded, out, recipe)
        return loaded
    if source.is_file() and is_safetensors_file(source):
        raise CheckpointError(f"{source} is a model bundle; it loads in every command as it is")
    state = read_checkpoint_file(source)
    if is_our_checkpoint(state):
        raise CheckpointError(f"{source} is already an unsup3d checkpoint; nothing to convert")
    if not is_original_checkpoint(state):
        raise CheckpointError(
            f"not an original Unsup3D checkpoint (no netD, netA, netL and netV weights): {source}"
        )
    loaded = _original_weights(state, source, preset or DEFAULT_PRESET)
    payload = {
        "model": loaded.state_dict,
        "config": config_to_dict(loaded.config),
        "step": 0,
        "epoch": 0,
        "source": {k: v for k, v in loaded.info.items() if k != "file"}
        | {"converted_from": str(source)},
    }
    save_checkpoint(out, payload)
    return loaded


def save_bundle(loaded: LoadedWeights, out: Path | str, recipe: str = "") -> None:
    """Write weights as a float16 model bundle with their config and provenance, atomically.

    Args:
        loaded: the weights and config (from :func:`load_weights`); ``info`` gives the source
            step, format, preset and file name (see :mod:`unsup3d_cli.weights.bundle`).
        out: the ``.safetensors`` file to write (replaced if it exists).
        recipe: free text: how the model was trained (empty: the recipe of a bundle the
            weights were read from, if any).

    Raises:
        CheckpointError: the weights do not fit their config, a weight is beyond float16's
            range, or ``out`` cannot be written.
    """
    check_weights_fit(loaded.state_dict, loaded.config, str(loaded.info.get("file", out)))
    step = loaded.info.get("step")
    metadata = {
        "config": json.dumps(config_to_dict(loaded.config)),
        "source_step": str(step) if isinstance(step, int) else "",
        "source_format": loaded.source_format,
        "source_preset": loaded.preset or "",
        "source_file": Path(str(loaded.info.get("file", ""))).name,
        "recipe": recipe or str(loaded.info.get("recipe", "")),
        "program": f"unsup3d {__version__}",
    }
    write_bundle(out, loaded.state_dict, metadata)


def load_into(model: Unsup3D, loaded: LoadedWeights, what: str) -> None:
    """``model.load_state_dict(loaded.state_dict)``, every key and shape checked.

    Raises:
        CheckpointError: the weights do not fit the model (``what`` starts the message).
    """
    try:
        model.load_state_dict(loaded.state_dict)
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:240]
        raise CheckpointError(f"{what}: its weights do not fit the model ({detail})") from None
