"""Library API behind the CLI: build the pieces from a config and run them.

Each function takes a resolved :class:`ExperimentConfig` (or a checkpoint) and plain values,
raises :class:`ConfigError`, :class:`DataError`, :class:`CheckpointError` or
:class:`TrainingError` for user mistakes, and returns where its outputs went.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import shutil
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unsup3d_cli.config import (
    ConfigError,
    ExperimentConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
)
from unsup3d_cli.data import DataError, build_dataset, make_loader
from unsup3d_cli.engine.averaging import WeightAverage
from unsup3d_cli.engine.checkpoint import CheckpointError, load_checkpoint
from unsup3d_cli.engine.distributed import (
    DistributedError,
    ProcessGroup,
    init_distributed,
    launch_from_env,
    wrap_ddp,
)
from unsup3d_cli.engine.trainer import (
    Progress,
    RunPaths,
    TrainingError,
    TrainingInterrupted,
    TrainingSetup,
    build_optimizer,
    fit,
    restore_state,
)
from unsup3d_cli.evaluation import (
    EvalOptions,
    EvalReport,
    LoadedModel,
    build_candidates,
    config_digest,
    evaluate_split,
    split_config,
)
from unsup3d_cli.export import ExportedMesh, ExportError, MeshOptions, export_folders, find_records
from unsup3d_cli.losses import VGGFeatures
from unsup3d_cli.model import PRECISIONS, Unsup3D, has_native_bfloat16
from unsup3d_cli.pretrained import (
    ORIGINAL_FORMAT,
    LoadedWeights,
    build_model,
    convert_checkpoint,
    load_into,
    load_weights,
)
from unsup3d_cli.reconstruct import ReconstructOptions, is_face_model, reconstruct_images

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "TrainingError",
    "TrainingInterrupted",
    "build_model",
    "convert_checkpoint",
    "load_model",
    "load_perceptual",
    "resolve_device",
    "seed_everything",
    "train",
]

log = logging.getLogger(__name__)

AUTO_PRECISION = "auto"
"""``load_model``'s precision that picks 'bf16' where the device has native bfloat16."""
VGG16_FILE = "vgg16-397923af.pth"
"""File name of torchvision's ImageNet VGG16 weights in its hub cache."""


def resolve_device(spec: str = "auto") -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N' → a usable device."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as err:
        raise ValueError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {spec!r}; use auto, cpu, cuda or cuda:N")
    return device


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (every device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_perceptual(spec: str) -> nn.Module | None:
    """The frozen VGG16 relu3_3 extractor for ``loss.perceptual_weights``.

    Args:
        spec: 'none' (no perceptual term), 'random' (random init, for tests), 'imagenet'
            (torchvision's cached ImageNet weights, downloaded by torchvision when missing and
            online), or a path to a VGG16 (or VGG16 ``features``) state-dict file.
    """
    if spec == "none":
        return None
    if spec == "random":
        return VGGFeatures()
    if spec == "imagenet":
        return VGGFeatures(_imagenet_vgg16_state())
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"loss.perceptual_weights: {spec!r} is neither imagenet, random, none nor a file"
        )
    try:
        return VGGFeatures(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # noqa: BLE001 - any unreadable/mismatched file is a user error
        raise ConfigError(
            f"loss.perceptual_weights: cannot load VGG16 weights from {path}: {err}"
        ) from err


def _imagenet_vgg16_state() -> dict:
    from torchvision.models import VGG16_Weights

    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
    try:
        return VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
    except Exception as err:  # noqa: BLE001 - offline, blocked or corrupt download
        raise ConfigError(
            f"loss.perceptual_weights: ImageNet VGG16 weights are not cached at {cached} and could "
            f"not be downloaded ({type(err).__name__}); put the file there (from "
            f"{VGG16_Weights.IMAGENET1K_V1.url}), or set loss.perceptual_weights to a weights "
            "file path, 'random' or 'none'"
        ) from err


def default_run_dir(cfg: ExperimentConfig, root: Path = Path("runs")) -> Path:
    """``runs/<name>/<YYYYmmdd-HHMMSS>/``."""
    return root / cfg.name / datetime.now().strftime("%Y%m%d-%H%M%S")


def _resume_state(cfg: ExperimentConfig, paths: RunPaths, resume: bool) -> dict | None:
    """The checkpoint to resume from (every process reads it), or None to start afresh."""
    if not (resume and paths.last.is_file()):
        return None
    state = load_checkpoint(paths.last)
    _check_resumable(cfg, state, paths.last)
    return state


def _prepare_run_dir(paths: RunPaths, resume: bool) -> None:
    """Create the run folder (the main process only).

    Without ``resume``, outputs of an earlier run in the same folder are removed first.
    """
    if not resume and paths.root.exists():
        stale = [p for p in (paths.checkpoints, paths.metrics, paths.tensorboard) if p.exists()]
        if stale:
            log.warning("--no-resume: removing the earlier run's outputs in %s", paths.root)
        for item in stale:
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    paths.checkpoints.mkdir(parents=True, exist_ok=True)


def _check_resumable(cfg: ExperimentConfig, state: dict, path: Path) -> None:
    """The model and the camera must match the checkpoint's to resume from it.

    The checkpoint's sections are read with today's defaults for the keys added since it was
    written. The rasterizer's execution settings (chunk size, fixed-size pass, slots) change
    how a rendering is computed, not what it is, so they may differ.
    """
    stored = state.get("config", {})
    try:
        before = config_from_dict({k: stored.get(k, {}) for k in ("model", "renderer")})
    except ConfigError as exc:
        raise ConfigError(f"{path}: cannot resume from it: {exc}") from None
    differs = {
        "model": config_to_dict(before.model) != config_to_dict(cfg.model),
        "renderer": before.renderer.rendering() != cfg.renderer.rendering(),
    }
    for section, different in differs.items():
        if different:
            raise ConfigError(
                f"{path} was trained with a different '{section}' section; resume with the same "
                "config, or start over with --no-resume or another --run-dir"
            )


def _check_supervision(cfg: ExperimentConfig) -> None:
    if cfg.loss.supervision == "depth" and cfg.data.source == "folder":
        raise ConfigError(
            "loss.supervision=depth needs ground-truth depth: use data.source paired or synthetic"
        )


def _loaders(cfg: ExperimentConfig, group: ProcessGroup | None = None) -> tuple:
    """Training and validation loaders; each process loads its shard of every batch."""
    group = group or ProcessGroup()
    common = dict(seed=cfg.train.seed, num_workers=cfg.data.num_workers, rank=group.launch.rank,
                  world_size=group.world_size, pin_memory=group.device.type == "cuda")  # fmt: skip
    train_set = build_dataset(cfg.data, "train")
    train_loader = make_loader(
        train_set, cfg.train.batch_size, shuffle=True, hflip=cfg.data.hflip, **common
    )
    if not cfg.train.validate:
        return train_loader, None
    try:
        val_set = build_dataset(cfg.data, "val")
    except DataError as err:
        raise DataError(f"{err} (or set train.validate=false)") from err
    val_loader = make_loader(val_set, cfg.train.batch_size, shuffle=False, hflip=False, **common)
    return train_loader, val_loader


def start_processes(device: str) -> ProcessGroup:
    """This process's device and process group: one plain process, or one of ``torchrun``'s.

    Under ``torchrun`` each process uses ``cuda:LOCAL_RANK`` when the device is CUDA ('auto'
    with a GPU, 'cuda' or 'cuda:N'), else the CPU, and joins the group (nccl or gloo).

    Raises:
        ConfigError: an unusable device, or a broken ``torchrun`` environment.
    """
    try:
        launch = launch_from_env()
        target = resolve_device(device)
    except (DistributedError, ValueError) as err:
        raise ConfigError(str(err)) from None
    if launch.is_distributed and target.type == "cuda":
        if launch.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"local rank {launch.local_rank} has no GPU: this machine has "
                f"{torch.cuda.device_count()}; start fewer processes per node"
            )
        target = torch.device("cuda", launch.local_rank)
    if target.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed 64×64 shapes: pick the fastest kernels
    return init_distributed(launch, target)


def _check_batch(cfg: ExperimentConfig, group: ProcessGroup) -> None:
    if cfg.train.batch_size % group.world_size:
        raise ConfigError(
            f"train.batch_size {cfg.train.batch_size} is the batch of all {group.world_size} "
            f"processes together and must divide by {group.world_size}"
        )


def _ddp(model: Unsup3D, setup: TrainingSetup) -> nn.Module:
    """The model's training forward under DDP (see :func:`wrap_ddp`)."""
    unused = model.confidence_net is not None and (
        setup.features is None or setup.loss_cfg.lam_perc == 0
    )  # the perceptual confidence head learns only through the perceptual term
    return wrap_ddp(model, setup.device, drop_perceptual_confidence=unused)


def train(
    cfg: ExperimentConfig,
    run_dir: Path | None = None,
    device: str = "auto",
    resume: bool = True,
    init_from: Path | str | None = None,
) -> Path:
    """Train a model as configured; resumes from ``<run_dir>/checkpoints/last.pt`` if present.

    Under ``torchrun`` every process runs this: each loads its shard of every batch of
    ``train.batch_size`` (the batch of all processes together), the gradients are averaged
    by DDP, and only the main process writes the run folder.

    Args:
        cfg: the resolved experiment config (saved as ``config.yaml`` and in checkpoints).
        run_dir: output folder; default ``runs/<name>/<timestamp>/``.
        device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
        resume: continue from the folder's last checkpoint; if False, start over in it.
        init_from: start from the weights of this checkpoint (ours or the original's) instead
            of a random init; the optimizer starts afresh. Ignored when resuming.

    Returns:
        The run folder.
    """
    group = start_processes(device)
    try:
        return _train(cfg, group, run_dir, resume, init_from)
    finally:
        group.close()


def _train(
    cfg: ExperimentConfig,
    group: ProcessGroup,
    run_dir: Path | None,
    resume: bool,
    init_from: Path | str | None,
) -> Path:
    target = group.device
    _check_batch(cfg, group)
    if not group.is_main:
        logging.getLogger("unsup3d_cli").setLevel(logging.WARNING)  # one voice in the log
    paths = RunPaths(
        group.broadcast(Path(run_dir) if run_dir is not None else default_run_dir(cfg))
    )
    seed_everything(cfg.train.seed)
    _check_supervision(cfg)
    train_loader, val_loader = _loaders(cfg, group)
    model = build_model(cfg)
    state = _resume_state(cfg, paths, resume)  # every process reads the same file
    if init_from is not None and state is not None:
        log.warning("--init-from %s ignored: resuming the run in %s", init_from, paths.root)
    elif init_from is not None:  # before the run folder is touched: a bad file leaves none
        initialise_from(model, init_from)
    group.barrier()  # every process has read last.pt before the main one may start over
    if group.is_main:
        _prepare_run_dir(paths, resume)
    group.barrier()
    model = model.to(target)
    precision = resolve_precision(cfg.train.precision, target)
    model.set_precision(precision)
    features = load_perceptual(cfg.loss.perceptual_weights)
    if features is not None:
        features.set_precision(precision)
    setup = TrainingSetup(
        model=model,
        features=features.to(target) if features is not None else None,
        optimizer=build_optimizer(model, cfg.train),
        train_loader=train_loader,
        val_loader=val_loader,
        train_cfg=cfg.train,
        loss_cfg=cfg.loss,
        device=target,
        config_dict=config_to_dict(cfg),
        average=WeightAverage(model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None,
        group=group,
    )
    progress = restore_state(setup, state) if state is not None else Progress()
    if group.launch.is_distributed:
        setup.forward_model = _ddp(model, setup)
    if state is not None:
        log.info("resuming %s at step %d (epoch %d)", paths.root, progress.step, progress.epoch)
    if group.is_main:
        dump_config(cfg, paths.root / "config.yaml", extra={"launch": _launch_record(cfg, group)})
    log.info("training on %s (%d process(es), %s); run folder %s", target, group.world_size,
             precision, paths.root)  # fmt: skip
    fit(setup, paths, progress)
    return paths.root


def _launch_record(cfg: ExperimentConfig, group: ProcessGroup) -> dict:
    """How the run was started, written beside the config in ``config.yaml``."""
    return {
        "world_size": group.world_size,
        "batch_per_process": cfg.train.batch_size // group.world_size,
        "backend": group.backend,
        "device": group.device.type,
    }


def resolve_precision(precision: str, device: torch.device) -> str:
    """'fp32' or 'bf16' as given, or for 'auto' 'bf16' where ``device`` has native bfloat16.

    Raises:
        ConfigError: another value.
    """
    if precision == AUTO_PRECISION:
        return "bf16" if has_native_bfloat16(device) else "fp32"
    if precision not in PRECISIONS:
        choices = " or ".join((AUTO_PRECISION, *PRECISIONS))
        raise ConfigError(f"--precision {precision!r}: use {choices}")
    return precision


def initialise_from(model: Unsup3D, checkpoint: Path | str) -> LoadedWeights:
    """Load a checkpoint's weights (ours or the original's) into a model built for training.

    The training config decides the architecture and ranges; the checkpoint must have a
    weight of the same shape for every parameter. Where the checkpoint's own model settings
    differ from the training config's (say, the depth range), a warning names them.

    Raises:
        CheckpointError: an unusable checkpoint, or weights that do not fit the model.
    """
    loaded = load_weights(checkpoint)
    load_into(model, loaded, f"--init-from {checkpoint}")
    differ = [
        f.name
        for f in dataclasses.fields(model.cfg)
        if getattr(model.cfg, f.name) != getattr(loaded.config.model, f.name)
    ]
    if differ:
        log.warning(
            "--init-from %s: the training config's model.%s differ from the checkpoint's",
            checkpoint, ", model.".join(differ),
        )  # fmt: skip
    log.info("initialised from %s (%s)", checkpoint, loaded.source_format)
    return loaded


def load_model(
    checkpoint: Path | str,
    device: str = "auto",
    precision: str = "fp32",
    preset: str | None = None,
) -> tuple[Unsup3D, ExperimentConfig]:
    """Rebuild a trained model from a checkpoint: ours, or the original Unsup3D's.

    Ours carry their config; an original checkpoint (``netD``, ``netA``, ``netL``, ``netV``,
    optional ``netC``) takes the ranges of a preset (:mod:`unsup3d_cli.pretrained`). A
    checkpoint of a run that kept a moving average of its weights gives the averaged weights.

    Args:
        checkpoint: a ``.pt`` file written by ``unsup3d train`` or ``unsup3d convert``, or an
            original ``checkpointNNN.pth``.
        device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
        precision: the networks' arithmetic, 'fp32' or 'bf16' (:meth:`Unsup3D.set_precision`),
            or 'auto': 'bf16' where the device has native bfloat16, else 'fp32'.
        preset: the original checkpoint's settings ('celeba' when None, the original demo's);
            ignored for our checkpoints.

    Returns:
        The model in eval mode on the device, and the experiment config it was trained with.

    Raises:
        CheckpointError: the file is missing, unreadable, would need code to load, or is
            neither format.
        ConfigError: an unknown precision or preset.
    """
    model, loaded = _load_model(checkpoint, device, precision, preset)
    return model, loaded.config


def _load_model(
    checkpoint: Path | str, device: str, precision: str, preset: str | None
) -> tuple[Unsup3D, LoadedWeights]:
    target = resolve_device(device)
    precision = resolve_precision(precision, target)
    loaded = load_weights(checkpoint, preset)
    model = build_model(loaded.config)
    load_into(model, loaded, str(checkpoint))
    model.set_precision(precision)
    return model.to(target).eval(), loaded


def describe_weights(loaded: LoadedWeights) -> list[str]:
    """One-line notes on where a model's weights came from, for reports (none for ours)."""
    if loaded.source_format != ORIGINAL_FORMAT:
        return []
    notes = [f"{loaded.info['file']}: original Unsup3D checkpoint, read with the "
             f"'{loaded.preset}' preset (change it with --preset)"]  # fmt: skip
    if "note" in loaded.info:
        notes.append(f"{loaded.info['file']}: {loaded.info['note']}")
    return notes


# --------------------------------------------------------------------------------------------
# Export


def export_meshes(
    sources: list[Path | str],
    out_dir: Path | str,
    *,
    formats: list[str] | tuple[str, ...] = ("obj",),
    options: MeshOptions | None = None,
    checkpoint: Path | str | None = None,
    device: str = "auto",
    detect_faces: bool | None = None,
    force: bool = False,
    preset: str | None = None,
) -> list[ExportedMesh]:
    """Write textured meshes (OBJ + MTL + PNG, PLY, GLB) of reconstructions.

    Args:
        sources: ``unsup3d reconstruct`` output folders (each one image's folder with
            ``result.json``, or a folder of them); with ``checkpoint``, image files and folders.
        out_dir: output folder; files are ``<name>.obj`` etc. (see :mod:`unsup3d_cli.export`).
        formats: some of 'obj', 'ply', 'glb'.
        options: an :class:`unsup3d_cli.export.MeshOptions` (view, texture, discontinuity cut,
            centring); default options when None.
        checkpoint: reconstruct ``sources`` with this model first (into a temporary folder).
        device: 'auto', 'cpu', 'cuda' or 'cuda:N' (only with ``checkpoint``).
        detect_faces: face cropping for the reconstruction (None: the reconstruct default).
        force: overwrite existing output files.
        preset: settings of an original Unsup3D ``checkpoint`` (see :func:`load_model`).

    Returns:
        One :class:`unsup3d_cli.export.ExportedMesh` per reconstruction.

    Raises:
        ExportError: (a ``DataError``) a source or output file problem, named in the message.
        CheckpointError: the checkpoint is unusable.
    """
    import tempfile

    if checkpoint is None:
        return export_folders(find_records(sources), out_dir, formats, options, force)
    with tempfile.TemporaryDirectory(prefix="unsup3d-export-") as tmp:
        folders = _reconstruct_for_export(
            checkpoint, sources, Path(tmp), device, detect_faces, preset
        )
        return export_folders(folders, out_dir, formats, options, force)


def _reconstruct_for_export(
    checkpoint: Path | str,
    inputs: list[Path | str],
    work_dir: Path,
    device: str,
    detect_faces: bool | None,
    preset: str | None,
) -> list[Path]:
    """Run :func:`reconstruct` into ``work_dir``; the folders of its reconstructions."""
    options = ReconstructOptions(detect_faces=detect_faces, force=True)
    reconstruct(checkpoint, [Path(p) for p in inputs], work_dir, options, device=device,
                preset=preset)  # fmt: skip
    try:
        return find_records([work_dir])
    except ExportError:
        names = ", ".join(str(p) for p in inputs)
        raise ExportError(f"no image could be reconstructed from {names}") from None


# --------------------------------------------------------------------------------------------
# Evaluation


def evaluate(
    data: Path | str,
    checkpoints: Sequence[Path | str] = (),
    options: EvalOptions | None = None,
) -> EvalReport:
    """Score checkpoints and baselines on a paired test split with the paper's protocol.

    Args:
        data: the test split in the synface layout (``image/``, ``depth/``, optional
            ``meta.jsonl`` with ground-truth poses).
        checkpoints: checkpoints written by ``unsup3d train`` or ``unsup3d convert``, or
            original Unsup3D ones; one row each.
        options: baselines, perturbation, refinement, batching, device, crop, precision,
            preset and output files (:class:`~unsup3d_cli.evaluation.EvalOptions`; None: its
            defaults).

    Returns:
        The :class:`~unsup3d_cli.evaluation.EvalReport`.

    Raises:
        ConfigError: bad settings, or checkpoints that disagree on the crop.
        DataError: a missing or empty split (a ``meta.jsonl`` that cannot be read as poses
            only leaves out the viewpoint columns, with a warning).
        CheckpointError: an unusable checkpoint.
    """
    options = options or EvalOptions()
    target = resolve_device(options.device)
    precision = resolve_precision(options.precision, target)
    data = Path(data)
    if not data.is_dir():
        raise DataError(f"test split folder not found: {data}")
    if not (checkpoints or options.baselines):
        raise ConfigError("nothing to evaluate: give at least one checkpoint or baseline")
    models = [_evaluated_model(Path(c), str(target), precision, options.preset)
              for c in checkpoints]  # fmt: skip
    try:
        cfg = split_config(options, models)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    candidates = build_candidates(data, models, options, cfg, target)
    extra = {"device": str(target), "checkpoints": [str(c) for c in checkpoints],
             "precision": precision}  # fmt: skip
    report = evaluate_split(data, candidates, cfg, target, extra)
    if options.out is not None:
        report.write_json(options.out)
    if options.markdown is not None:
        report.write_markdown(options.markdown)
    return report


def _evaluated_model(path: Path, device: str, precision: str, preset: str | None) -> LoadedModel:
    """Load a checkpoint for evaluation (notes on its weights logged) as plain values."""
    model, loaded = _load_model(path, device, precision, preset)
    for note in describe_weights(loaded):
        log.warning("%s", note)
    cfg = loaded.config
    info = {}
    if loaded.source_format == ORIGINAL_FORMAT:
        info = {"checkpoint_format": ORIGINAL_FORMAT, "preset": loaded.preset}
    digest = config_digest(config_to_dict(cfg))
    return LoadedModel(model, str(path), cfg.name, digest, cfg.data.crop,
                       cfg.data.image_size, info)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Reconstruction


def reconstruct(
    checkpoint: Path | str,
    inputs: list[Path | str] | tuple,
    out_dir: Path | str,
    options: ReconstructOptions | None = None,
    *,
    device: str = "auto",
    precision: str = AUTO_PRECISION,
    preset: str | None = None,
):
    """Reconstruct photos into per-image folders of maps, a gallery and a summary.

    Args:
        checkpoint: a checkpoint written by ``unsup3d train``; the model is rebuilt from the
            config stored in it.
        inputs: image files and folders (searched recursively).
        out_dir: output folder: ``<name>/`` per image, ``index.html``, ``summary.json``.
        options: how to run (batch size, refinement, animation, force, strict, workers,
            threads; default: :class:`~unsup3d_cli.reconstruct.ReconstructOptions`'s defaults).
            Its ``detect_faces`` None turns face crops on for face models (run name or data
            root mentions 'face' or 'celeba') and off otherwise.
        device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
        precision: the networks' arithmetic, 'fp32', 'bf16' or 'auto' (see :func:`load_model`).
        preset: settings of an original Unsup3D checkpoint (see :func:`load_model`).

    Returns:
        The :class:`~unsup3d_cli.reconstruct.ReconstructSummary`.

    Raises:
        CheckpointError: the checkpoint is missing, unreadable or not ours.
        DataError: no usable input image, a skipped input with ``strict``, or unwritable
            outputs (the message names the file).
    """
    options = options if options is not None else ReconstructOptions()
    model, loaded = _load_model(checkpoint, device, precision, preset)
    cfg = loaded.config
    if options.detect_faces is None:
        options = dataclasses.replace(options, detect_faces=is_face_model(cfg))
    return reconstruct_images(model, inputs, out_dir, options, checkpoint=str(checkpoint),
                              renderer_cfg=cfg.renderer,
                              notes=describe_weights(loaded))  # fmt: skip


def synthesize(
    out_dir: Path | str,
    num: int,
    seed: int = 0,
    *,
    image_size: int = 64,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    workers: int = 1,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    style: str | None = None,
    face_fraction: tuple[float, float] | None = None,
):
    """Generate synthetic faces with ground-truth depth, pose and light in the synface layout.

    Args:
        out_dir: output folder (absent, empty, or with ``force`` an earlier synth output).
        num: number of images over all splits.
        seed: dataset seed; the same seed gives byte-identical files.
        image_size: image side in pixels.
        split: train, val and test fractions.
        workers: processes; the files do not depend on it.
        force: replace an earlier synth output in ``out_dir``.
        progress: called with the number of images finished after each batch.
        style: the face generator, ``"heightfield"`` (depth-map faces drawn by the model's own
            renderer) or ``"mesh"`` (triangle-mesh heads drawn by an independent rasterizer);
            None: :data:`~unsup3d_cli.synth_dataset.DEFAULT_STYLE`.
        face_fraction: for the mesh style, the (low, high) range of the image fraction the
            head covers (None: 0.3-0.7).

    Returns:
        The :class:`~unsup3d_cli.synth_dataset.SynthSummary` (folder, counts, seconds, workers,
        style).

    Raises:
        DataError: (``SynthError``) bad arguments or an output folder that may not be replaced.
    """
    from unsup3d_cli.synth_dataset import DEFAULT_STYLE, generator_config, write_dataset

    style = DEFAULT_STYLE if style is None else style
    return write_dataset(
        out_dir,
        num,
        seed,
        generator=generator_config(style, image_size, face_fraction),
        split=split,
        workers=workers,
        force=force,
        progress=progress,
        style=style,
    )
