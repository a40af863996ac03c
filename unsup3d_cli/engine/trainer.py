"""The training loop."""

from __future__ import annotations

import logging
import math
import random
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torchvision.utils import make_grid
from tqdm.auto import tqdm

from unsup3d_cli.engine.averaging import WeightAverage
from unsup3d_cli.engine.checkpoint import (
    BEST_NAME,
    LAST_NAME,
    CheckpointError,
    prune_checkpoints,
    save_checkpoint,
    step_checkpoint_name,
)
from unsup3d_cli.engine.distributed import ProcessGroup
from unsup3d_cli.engine.logging import MetricsWriter
from unsup3d_cli.losses import (
    LossConfig,
    LossTerms,
    flip_weight,
    self_view_loss,
    supervised_loss,
    total_loss,
)
from unsup3d_cli.model import PRECISIONS, Decomposition, Reconstruction, Unsup3D, diffuse_shading

TRAIN_PRECISIONS = ("auto", *PRECISIONS)
"""Values of ``TrainConfig.precision``."""


LIGHT_WARMUPS = ("unshaded", "frontal")
"""What ``TrainConfig.light_warmup`` can hold back."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule, logging and checkpointing of a training run."""

    seed: int = 0
    """Seed of every random number generator of the run."""
    batch_size: int = 64
    """Images per optimisation step."""
    num_epochs: int = 30
    """Passes over the training split."""
    max_steps: int | None = None
    """Stop after this many optimisation steps in total (None: run all epochs)."""
    max_minutes: float | None = None
    """Stop once optimisation steps have taken this many minutes in total (None: no limit)."""
    lr: float = 1e-4
    """Adam learning rate (constant)."""
    view_lr_scale: float = 1.0
    """The viewpoint network's learning rate as a multiple of ``lr`` (1: one rate for all, as in
    the paper). Adam moves each weight by about the learning rate per step whatever the size of
    its gradient, so a view that has tens of degrees to travel gets there only as fast as the
    rate allows."""
    light_warmup_steps: int = 0
    """Steps at the start with the light off (the canonical image is the albedo, unshaded),
    after which the light fades in linearly over as many steps again (0: on from the start, as
    in the paper). The light network is not updated, nor decayed, while off. Not in the paper:
    on the mesh faces the predicted light follows the camera-frame light and takes up part of
    each head's turn (experiments/light_frame.py); without a light the views turn further."""
    light_warmup: str = "unshaded"
    """What the light warm-up holds back: 'unshaded' (the whole light: the canonical image is
    the albedo) or 'frontal' (only the direction: every image is lit from the camera's side,
    with predicted intensities, so the shading still shapes the relief while the light cannot
    turn with the head). The direction then fades from frontal to the predicted one."""
    depth_hold_steps: int = 0
    """Steps at the start in which the depth network and the learned mean depth map are not
    updated, nor decayed, so the canonical depth stays as initialised (with
    ``model.flat_depth_init`` and ``model.dome_depth_init``: exactly the dome) while the other
    networks learn (0: none, as in the paper). Not in the paper: a diagnostic of how the view
    learns against a fixed head."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas."""
    weight_decay: float = 5e-4
    """L2 penalty added to the gradient inside Adam (not decoupled)."""
    lr_decay_fraction: float = 0.0
    """Fraction of the run, at its end, over which the learning rate falls linearly to 0
    (0: constant, as in the paper). The run's length is the first limit it will reach of
    ``max_minutes`` (minutes of training steps), ``max_steps`` and ``num_epochs``. Not in the
    paper: at a constant rate the last iterate is noisy (validation SIDE of a synth_faces run
    went 1.03, 0.88, 0.92 ×10⁻² at steps 8000, 8500 and 8558), and the decay settles it."""
    ema_decay: float = 0.0
    """Decay of an exponential moving average of the weights kept beside them (0: off; e.g.
    0.999 averages over about the last 1000 steps). When on, validation scores the averaged
    weights, and checkpoints store them as ``model_ema``, which ``eval``, ``reconstruct`` and
    ``export`` load in place of the last step's weights. Not in the paper, and off in our
    configs: continuing the synth_faces run from step 8000, averages with decays 0.995, 0.998
    and 0.999 scored worse validation SIDE than the trained weights at every step measured
    up to 9000 (0.913, 0.928, 0.950 against 0.899 ×10⁻² at step 9000;
    ``experiments/probe_recipe.py --ema``)."""
    log_every_steps: int = 50
    """Steps between metric records in metrics.jsonl and tensorboard scalars."""
    image_every_steps: int = 500
    """Steps between tensorboard image grids."""
    checkpoint_every_epochs: int = 1
    """Epochs between numbered checkpoints (last.pt is written at every epoch end)."""
    keep_checkpoints: int = 2
    """Numbered checkpoints to keep (-1 keeps all)."""
    keep_best: bool = True
    """Also keep ``checkpoints/best.pt``: the state at the end of the epoch with the lowest
    validation loss so far (needs ``validate``). The loss's flip weight changes at
    ``loss.lam_flip_start_epoch``, which makes totals before and after incomparable, so the
    tally starts again there. On the mesh faces the validation loss rises again over the last
    10% of a run, where the learning rate falls to 0 while the training loss keeps dropping
    (-1.49 at step 10,058, -1.30 at 11,628); the test depth of the two checkpoints was the same
    there (SIDE 1.288 and 1.284 ×10⁻²), so the loss is a loose guide to the depth."""
    validate: bool = True
    """Run a validation pass after every epoch."""
    tensorboard: bool = True
    """Write tensorboard event files under <run_dir>/tb."""
    precision: str = "fp32"
    """'fp32', or 'bf16': the networks' forward and backward, and the VGG16 features of the
    perceptual term, under bfloat16 autocast (weights, optimizer, decoding, rendering and losses
    stay float32). About 1.3× faster steps on CPUs with native bfloat16 (AVX512-BF16, AMX);
    slower on others, which emulate it. 'auto': bf16 where the training device has native
    bfloat16, else fp32."""

    def __post_init__(self) -> None:
        """Reject an unknown precision, or a decay fraction or weight-average decay out of range."""
        if self.precision not in TRAIN_PRECISIONS:
            raise ValueError(
                f"train.precision must be one of {', '.join(TRAIN_PRECISIONS)}, "
                f"got {self.precision!r}"
            )
        if not 0.0 <= self.lr_decay_fraction <= 1.0:
            raise ValueError(
                f"train.lr_decay_fraction must be in [0, 1], got {self.lr_decay_fraction}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.light_warmup not in LIGHT_WARMUPS:
            raise ValueError(
                f"train.light_warmup must be one of {', '.join(LIGHT_WARMUPS)}, "
                f"got {self.light_warmup!r}"
            )
        if self.depth_hold_steps < 0:
            raise ValueError(f"train.depth_hold_steps must be >= 0, got {self.depth_hold_steps}")
        if self.light_warmup_steps < 0:
            raise ValueError(
                f"train.light_warmup_steps must be >= 0, got {self.light_warmup_steps}"
            )


log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (for example a non-finite loss)."""


class TrainingInterrupted(TrainingError):
    """The user stopped training (Ctrl-C); a checkpoint was saved."""


@dataclass
class Progress:
    """Where a run stands: steps done, current epoch and batches of it already consumed."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed_s: float = 0.0
    """Seconds spent in optimisation steps so far, over every resumed session."""
    best_val: tuple[float, float] | None = None
    """(lowest validation loss, the flip weight it was scored with), or None before the
    first validation (``TrainConfig.keep_best``)."""


@dataclass(frozen=True)
class RunPaths:
    """Files of a run directory."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        """Folder of last.pt and the numbered checkpoints."""
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        """The checkpoint written at every epoch end, interruption and stop."""
        return self.checkpoints / LAST_NAME

    @property
    def metrics(self) -> Path:
        """JSON lines of training and validation metrics."""
        return self.root / "metrics.jsonl"

    @property
    def tensorboard(self) -> Path:
        """Tensorboard event files."""
        return self.root / "tb"


@dataclass
class TrainingSetup:
    """Everything :func:`fit` needs, built by the API layer."""

    model: Unsup3D
    features: nn.Module | None
    optimizer: torch.optim.Optimizer
    train_loader: DataLoader
    val_loader: DataLoader | None
    train_cfg: TrainConfig
    loss_cfg: LossConfig
    device: torch.device
    config_dict: dict[str, Any] = field(default_factory=dict)
    """The resolved experiment config, stored in every checkpoint."""
    average: WeightAverage | None = None
    """Moving average of the weights (``TrainConfig.ema_decay``), updated after every step."""
    group: ProcessGroup = field(default_factory=ProcessGroup)
    """The processes of the run (one, unless started by ``torchrun``)."""
    forward_model: nn.Module | None = None
    """The model's ``DistributedDataParallel`` wrapper when there are several processes; the
    training forward goes through it, so that the backward pass averages the gradients."""


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam with coupled L2 weight decay over every trainable parameter (reference §5).

    With ``cfg.view_lr_scale`` other than 1 the viewpoint network gets a parameter group of its
    own; each group keeps its multiple of ``cfg.lr`` as ``lr_scale``.
    """
    view_net = getattr(model, "view_net", None)
    view_ids = set()
    if cfg.view_lr_scale != 1.0 and view_net is not None:
        view_ids = {id(p) for p in view_net.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) not in view_ids], "lr_scale": 1.0}]
    if view_ids:
        view = [p for p in trainable if id(p) in view_ids]
        groups.append({"params": view, "lr_scale": cfg.view_lr_scale})
    optimizer = torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    set_learning_rate(optimizer, cfg.lr)
    return optimizer


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's rate to ``lr`` times the group's ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, state: dict[str, Any], cfg: TrainConfig
) -> None:
    """Load a checkpoint's optimizer state, keeping the hyperparameters of ``cfg``.

    ``Optimizer.load_state_dict`` also restores each group's betas and weight decay as they
    were saved, so a run resumed with a changed ``train.weight_decay`` or ``train.betas``
    would silently keep the old values; the moments (Adam's state) are what resuming needs.
    """
    scales = [group.get("lr_scale", 1.0) for group in optimizer.param_groups]
    saved = len(state.get("param_groups", ()))
    if saved != len(scales):
        raise CheckpointError(
            f"the checkpoint's optimizer has {saved} parameter group(s) where this config makes "
            f"{len(scales)}: was train.view_lr_scale changed between 1 and another value?"
        )
    optimizer.load_state_dict(state)
    for group, scale in zip(optimizer.param_groups, scales, strict=True):
        group.update(lr_scale=scale, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    set_learning_rate(optimizer, cfg.lr)


def run_fraction(cfg: TrainConfig, progress: Progress, batches_per_epoch: int) -> float:
    """How far through its budget a run is, in [0, 1]: the nearest of its limits.

    Args:
        cfg: the limits (``max_minutes``, ``max_steps``, ``num_epochs``).
        progress: steps, epoch, batch and training minutes done so far.
        batches_per_epoch: batches in one pass over the training split.
    """
    epochs = progress.epoch + progress.batch_in_epoch / max(batches_per_epoch, 1)
    fractions = [epochs / cfg.num_epochs]
    if cfg.max_steps is not None:
        fractions.append(progress.step / cfg.max_steps)
    if cfg.max_minutes is not None:
        fractions.append(progress.elapsed_s / (60 * cfg.max_minutes))
    return min(1.0, max(fractions))


def learning_rate(cfg: TrainConfig, fraction: float) -> float:
    """``cfg.lr``, falling linearly to 0 over the last ``lr_decay_fraction`` of the run.

    Args:
        cfg: the base rate and the decay fraction.
        fraction: how far through the run, in [0, 1] (:func:`run_fraction`).
    """
    decay = cfg.lr_decay_fraction
    if decay <= 0.0 or fraction <= 1.0 - decay:
        return cfg.lr
    return cfg.lr * max(0.0, 1.0 - fraction) / decay


def light_mix(cfg: TrainConfig, step: int) -> float:
    """The light's share of the shading at ``step`` (:attr:`Unsup3D.light_mix`).

    0 for the first ``light_warmup_steps`` steps, then rising linearly to 1 over as many again.
    """
    warmup = cfg.light_warmup_steps
    if warmup <= 0:
        return 1.0
    return min(1.0, max(0.0, step / warmup - 1.0))


def compute_loss(
    model: Unsup3D,
    features: nn.Module | None,
    image: Tensor,
    loss_cfg: LossConfig,
    epoch: int,
    gt_depth: Tensor | None = None,
    *,
    group: ProcessGroup | None = None,
    forward: nn.Module | None = None,
) -> tuple[LossTerms, Decomposition, Reconstruction]:
    """Forward pass and objective for images (B, 3, 64, 64) in [0, 1] (and their GT depth).

    With several processes, ``group`` makes the objective that of the whole batch over all of
    them (:class:`~unsup3d_cli.losses.BatchGroup`) and ``forward`` is the DDP wrapper.
    """
    decomp = (forward or model)(image)
    recon = model.reconstruct(decomp)
    shared = group if group is not None and group.world_size > 1 else None
    if loss_cfg.supervision == "depth":
        return supervised_loss(recon, gt_depth, shared), decomp, recon
    span = model.cfg.max_depth - model.cfg.min_depth
    terms = total_loss(
        image, decomp, recon, loss_cfg, features, epoch=epoch, depth_span=span,
        translation_range=model.cfg.xy_translation_range, group=shared,
    )  # fmt: skip
    if loss_cfg.lam_self_view > 0 and model.view_net is not None:
        term = self_view_term(model, decomp, loss_cfg)
        terms = replace(terms, self_view=term, total=terms.total + loss_cfg.lam_self_view * term)
    return terms, decomp, recon


def self_view_term(model: Unsup3D, decomp: Decomposition, loss_cfg: LossConfig) -> Tensor:
    """``loss.lam_self_view``'s term for one batch.

    Random views from the global random stream, the canonical reconstructions rendered there
    (:meth:`Unsup3D.render_views`), and the viewpoint network's error on them
    (:func:`~unsup3d_cli.losses.self_view_loss`).
    """
    angles = decomp.view_angles
    count = angles.shape[0]
    unit = torch.rand(count, 3, device=angles.device, dtype=angles.dtype) * 2 - 1
    views = torch.stack(  # (B, 3), with no copy from the host
        [unit[:, i] * math.radians(r) for i, r in enumerate(loss_cfg.self_view_ranges_deg)], 1
    )
    xy = torch.rand(count, 2, device=angles.device, dtype=angles.dtype) * 2 - 1
    shifts = torch.cat([xy * loss_cfg.self_view_shift, xy.new_zeros(count, 1)], dim=1)
    images = model.render_views(decomp, views, shifts)
    pred_angles, pred_translation = model.predict_view(images.detach())
    return self_view_loss(
        pred_angles, pred_translation, views, shifts, model.cfg.xy_translation_range
    )


def train_step(
    setup: TrainingSetup, image: Tensor, progress: Progress, gt_depth: Tensor | None = None
) -> LossTerms:
    """One optimisation step, with no host–device synchronisation.

    A non-finite loss is not checked here (that would wait for the device at every step):
    :func:`fit` checks the logged terms every ``log_every_steps`` steps and before every save.
    """
    model = setup.model
    model.train()
    mix = light_mix(setup.train_cfg, progress.step)
    if setup.train_cfg.light_warmup == "frontal":
        model.light_direction_mix = mix
    else:
        model.light_mix = mix
    terms, _, _ = compute_loss(
        setup.model, setup.features, image, setup.loss_cfg, progress.epoch, gt_depth,
        group=setup.group, forward=setup.forward_model,
    )  # fmt: skip
    setup.optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    held: list[nn.Parameter] = []
    if model.light_mix == 0.0 and model.light_net is not None:
        held += model.light_net.parameters()
    if progress.step < setup.train_cfg.depth_hold_steps:
        held += model.depth_net.parameters()
        if model.depth_template is not None:
            held.append(model.depth_template)
    for param in held:  # held: no update, and no weight decay either
        param.grad = None
    setup.optimizer.step()
    if setup.average is not None:
        setup.average.update()
    return terms


@torch.no_grad()
def validate(setup: TrainingSetup, epoch: int) -> dict[str, float]:
    """Loss terms over the validation split, weighted by the actual batch sizes.

    Scores the averaged weights when the run keeps an average (``TrainConfig.ema_decay``).
    """
    if setup.average is None:
        return _validate(setup, epoch)
    with setup.average.applied():
        return _validate(setup, epoch)


def _validate(setup: TrainingSetup, epoch: int) -> dict[str, float]:
    """Each process scores its shard; the sums are added over the processes."""
    setup.model.eval()
    names = LossTerms.names()
    totals = torch.zeros(len(names) + 1, dtype=torch.float64, device=setup.device)
    setup.val_loader.sampler.set_epoch(0)
    for batch in setup.val_loader:
        if batch is None:
            continue
        image, gt_depth = _inputs(batch, setup.device)
        terms, _, _ = compute_loss(
            setup.model, setup.features, image, setup.loss_cfg, epoch, gt_depth
        )
        values = terms.stacked().double()
        totals += torch.cat([values * len(image), values.new_full((1,), len(image))])
    totals = setup.group.sum(totals).tolist()
    return {name: value / max(totals[-1], 1) for name, value in zip(names, totals, strict=False)}


def checkpoint_state(setup: TrainingSetup, progress: Progress) -> dict[str, Any]:
    """Everything needed to rebuild the model and resume training exactly."""
    state = {
        "model": setup.model.state_dict(),
        "optimizer": setup.optimizer.state_dict(),
        "step": progress.step,
        "epoch": progress.epoch,
        "batch_in_epoch": progress.batch_in_epoch,
        "elapsed_s": progress.elapsed_s,
        "best_val": None if progress.best_val is None else list(progress.best_val),
        "config": setup.config_dict,
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
    }
    if setup.average is not None:
        state["model_ema"] = setup.average.state_dict(setup.model)
        state["ema_updates"] = setup.average.updates
    return state


def restore_state(setup: TrainingSetup, state: dict[str, Any]) -> Progress:
    """Load model, optimizer and RNG state from a checkpoint; return where to resume."""
    setup.model.load_state_dict(state["model"])
    load_optimizer_state(setup.optimizer, state["optimizer"], setup.train_cfg)
    if setup.average is not None:
        if "model_ema" in state:
            setup.average.restore(state["model_ema"], state["ema_updates"])
        else:  # the run kept no average so far: start it from the resumed weights
            setup.average = WeightAverage(setup.model, setup.average.decay)
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    best = state.get("best_val")
    return Progress(
        state["step"],
        state["epoch"],
        state["batch_in_epoch"],
        state.get("elapsed_s", 0.0),
        None if best is None else (float(best[0]), float(best[1])),
    )


class _StopFlag:
    """SIGINT/SIGTERM handler: stop after the current step (a second SIGINT: stop now).

    Schedulers send SIGTERM before they kill a job; ``torchrun`` passes both signals on to
    every process it started.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        name = signal.Signals(signum).name
        log.warning("%s received: stopping after this step (Ctrl-C again aborts)", name)


class _Monitor:
    """Progress bar, metrics.jsonl, tensorboard scalars and image grids.

    Only the main process writes; every process takes part in averaging the logged terms.
    """

    def __init__(self, setup: TrainingSetup, paths: RunPaths, progress: Progress) -> None:
        cfg = setup.train_cfg
        self.cfg = cfg
        self.group = setup.group
        self.main = setup.group.is_main
        self.metrics = MetricsWriter(paths.metrics) if self.main else None
        self.board = _open_board(paths.tensorboard) if cfg.tensorboard and self.main else None
        total = _total_steps(cfg, setup.train_loader.sampler.batches_per_epoch)
        self.bar = tqdm(total=total, initial=progress.step, unit="step", dynamic_ncols=True,
                        disable=None if self.main else True, desc="train")  # fmt: skip
        self.window_images, self.window_start = 0, time.perf_counter()
        self.warned_dropped = False

    def after_step(self, terms: LossTerms, images: int, progress: Progress, lr: float) -> None:
        """Count the step; every ``log_every_steps`` steps, log the averaged terms.

        The terms are averaged over the processes; this is the only point of the loop that
        waits for the device.

        Raises:
            TrainingError: the averaged loss is not finite.
        """
        self.window_images += images * self.group.world_size
        self.bar.update(1)
        if progress.step % self.cfg.log_every_steps and progress.step != 1:
            return
        values = self.group.mean(terms.stacked().float()).tolist()
        averaged = dict(zip(LossTerms.names(), values, strict=True))
        check_finite(averaged["total"], progress)
        rate = self.window_images / max(time.perf_counter() - self.window_start, 1e-9)
        record = {"kind": "train", "step": progress.step, "epoch": progress.epoch,
                  **averaged, "images_per_s": rate, "lr": lr}  # fmt: skip
        self.window_images, self.window_start = 0, time.perf_counter()
        if not self.main:
            return
        self._warn_dropped(record["raster_dropped"], progress)
        self.metrics.write(record)
        self.bar.set_postfix(loss=f"{record['total']:.4f}", img_s=f"{rate:.1f}")
        if self.bar.disable:
            log.info("step %d epoch %d loss %.4f (%.1f img/s)", progress.step, progress.epoch,
                     record["total"], rate)  # fmt: skip
        self._scalars("train", record, progress.step)

    def _warn_dropped(self, dropped: float, progress: Progress) -> None:
        """Say once when the rasterizer's fixed-size pass dropped candidates (pixels missing)."""
        if dropped <= 0 or self.warned_dropped:
            return
        self.warned_dropped = True
        log.warning("step %d: the rasterizer dropped %.0f candidates per process for lack of "
                    "slots, so some pixels are missing; raise renderer.slots_per_pixel "
                    "(logged as raster_dropped)", progress.step, dropped)  # fmt: skip

    def after_epoch(self, val: dict[str, float] | None, progress: Progress) -> None:
        if val is None or not self.main:
            return
        record = {"kind": "val", "step": progress.step, "epoch": progress.epoch, **val}
        self.metrics.write(record)
        self._scalars("val", record, progress.step)
        log.info("epoch %d validation loss %.4f", progress.epoch, val["total"])

    def images(self, setup: TrainingSetup, image: Tensor, progress: Progress) -> None:
        if self.board is None or progress.step % self.cfg.image_every_steps:
            return
        for name, grid in visual_grids(setup.model, image[:16]).items():
            self.board.add_image(name, grid, progress.step)

    def _scalars(self, prefix: str, record: dict[str, Any], step: int) -> None:
        if self.board is None:
            return
        for key, value in record.items():
            if key not in ("kind", "step", "epoch"):
                self.board.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        self.bar.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.board is not None:
            self.board.close()


def check_finite(total: float, progress: Progress) -> None:
    """Raise :class:`TrainingError` for a non-finite (logged, averaged) loss."""
    if not math.isfinite(total):
        raise TrainingError(
            f"non-finite loss ({total}) by step {progress.step}, epoch {progress.epoch}; "
            "training stopped and the last good checkpoint is kept"
        )


def _open_board(path: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 (slow import, optional)

    return SummaryWriter(str(path))


def _total_steps(cfg: TrainConfig, batches_per_epoch: int) -> int:
    total = cfg.num_epochs * batches_per_epoch
    return min(total, cfg.max_steps) if cfg.max_steps is not None else total


@torch.no_grad()
def visual_grids(model: Unsup3D, image: Tensor) -> dict[str, Tensor]:
    """Image grids (3, H', W') in [0, 1] of the model's factors for a few images."""
    model.eval()
    decomp = model(image)
    recon = model.reconstruct(decomp)
    batch = image.shape[0]
    span = model.cfg.max_depth - model.cfg.min_depth
    maps = {
        "input": image,
        "reconstruction": recon.image[:batch],
        "reconstruction_flip": recon.image[batch:],
        "canonical_albedo": decomp.albedo,
        "canonical_diffuse_shading": diffuse_shading(decomp, recon),
        "canonical_image": recon.canonical_image[:batch],
        "canonical_depth": (model.cfg.max_depth - decomp.depth) / span,
        "canonical_normal": recon.canonical_normal[:batch].permute(0, 3, 1, 2) / 2 + 0.5,
    }
    if decomp.confidence is not None:
        maps["confidence"] = 1 / (1 + decomp.confidence[:, :1])
        maps["confidence_flip"] = 1 / (1 + decomp.confidence[:, 1:])
    model.train()
    return {name: make_grid(x.clamp(0, 1).float().cpu(), nrow=4) for name, x in maps.items()}


def fit(setup: TrainingSetup, paths: RunPaths, progress: Progress) -> Progress:
    """Train from ``progress`` to the end of the schedule, checkpointing into ``paths``.

    Saves ``last.pt`` at every epoch end and when stopped (``max_steps``, ``max_minutes``,
    Ctrl-C or SIGTERM), plus a numbered checkpoint every ``checkpoint_every_epochs`` epochs,
    keeping the newest N. With several processes, only the main one writes, and every stop is
    agreed by all of them at the same step.

    Raises:
        TrainingError: on a non-finite loss (nothing more is saved; earlier checkpoints stay).
        TrainingInterrupted: after Ctrl-C or SIGTERM, once ``last.pt`` holds the state.
    """
    monitor = _Monitor(setup, paths, progress)
    try:
        with _StopFlag() as stop:
            _run(setup, paths, progress, monitor, stop)
    except KeyboardInterrupt as err:
        raise TrainingInterrupted(
            f"aborted at step {progress.step}; the last checkpoint saved is {paths.last}"
        ) from err
    finally:
        monitor.close()
    return progress


@dataclass
class _Loop:
    """What the epochs of one :func:`fit` call share."""

    setup: TrainingSetup
    progress: Progress
    monitor: _Monitor
    stop: _StopFlag
    last_terms: LossTerms | None = None


def _run(
    setup: TrainingSetup, paths: RunPaths, progress: Progress, monitor: _Monitor, stop: _StopFlag
) -> None:
    cfg = setup.train_cfg
    loop = _Loop(setup, progress, monitor, stop)
    while progress.epoch < cfg.num_epochs and not _reached_steps(cfg, progress):
        if _agreed_stop(loop)[1]:  # the time budget, as every process agrees
            return
        if not _run_epoch(loop):
            _save(loop, paths.last)
            if loop.stop.requested:
                raise TrainingInterrupted(
                    f"interrupted at step {progress.step}; resume from {paths.last}"
                )
            return
        val = validate(setup, progress.epoch) if setup.val_loader is not None else None
        monitor.after_epoch(val, progress)
        best = cfg.keep_best and val is not None and _record_best(loop, val["total"])
        progress.epoch += 1
        progress.batch_in_epoch = 0
        _save_epoch(loop, paths, best)


def _record_best(loop: _Loop, total: float) -> bool:
    """Whether ``total`` is the lowest validation loss so far under the current flip weight.

    If it is, it becomes ``progress.best_val``.
    """
    progress = loop.progress
    lam_flip = flip_weight(loop.setup.loss_cfg, progress.epoch)
    best = progress.best_val
    if best is not None and best[1] == lam_flip and not total < best[0]:
        return False
    progress.best_val = (total, lam_flip)
    return True


def _reached_steps(cfg: TrainConfig, progress: Progress) -> bool:
    return cfg.max_steps is not None and progress.step >= cfg.max_steps


def _agreed_stop(loop: _Loop, batch_missing: bool = False) -> tuple[bool, bool, bool]:
    """(a stop signal, the time budget, a missing batch), each as seen by any process.

    The time budget is read from each process's own clock, so the processes must agree on it
    as on a signal; the step and epoch limits need no agreement (every process counts alike).
    """
    cfg, progress = loop.setup.train_cfg, loop.progress
    out_of_time = cfg.max_minutes is not None and progress.elapsed_s >= 60 * cfg.max_minutes
    signal_seen, time_up, missing = loop.setup.group.any_host(
        loop.stop.requested, out_of_time, batch_missing
    )
    return signal_seen, time_up, missing


def _inputs(batch: dict[str, Any], device: torch.device) -> tuple[Tensor, Tensor | None]:
    """Images (and ground-truth depth, when the data has it) of a batch, on the device."""
    depth = batch.get("depth")
    image = batch["image"].to(device, non_blocking=True)
    return image, depth.to(device, non_blocking=True) if depth is not None else None


def _run_epoch(loop: _Loop) -> bool:
    """Train over the rest of the current epoch; False if stopped early."""
    setup, progress = loop.setup, loop.progress
    sampler = setup.train_loader.sampler
    sampler.set_epoch(progress.epoch, sampler.start_index_of_batch(progress.batch_in_epoch))
    for batch in setup.train_loader:
        signal_seen, time_up, missing = _agreed_stop(loop, batch is None)
        if signal_seen or time_up:
            loop.stop.requested = loop.stop.requested or signal_seen
            return False
        progress.batch_in_epoch += 1  # sampler positions consumed, even by an unreadable batch
        if missing:  # every process skips the batch that some process could not read
            continue
        image, gt_depth = _inputs(batch, setup.device)
        before = replace(progress, batch_in_epoch=progress.batch_in_epoch - 1)  # this batch: to do
        fraction = run_fraction(setup.train_cfg, before, sampler.batches_per_epoch)
        set_learning_rate(setup.optimizer, learning_rate(setup.train_cfg, fraction))
        started = time.perf_counter()
        loop.last_terms = train_step(setup, image, progress, gt_depth)
        progress.step += 1
        progress.elapsed_s += time.perf_counter() - started
        lr = setup.optimizer.param_groups[0]["lr"]  # the base rate: group 0 has lr_scale 1
        loop.monitor.after_step(loop.last_terms, len(image), progress, lr)
        loop.monitor.images(setup, image, progress)
        if _reached_steps(setup.train_cfg, progress):  # the time budget: at the next batch
            return False
    return True


def _save(loop: _Loop, path: Path, numbered: bool = False, best: bool = False) -> None:
    """Check the last step's loss (every process), then write ``path`` (the main process).

    With ``numbered`` the same state also goes to this step's numbered checkpoint, and the
    oldest numbered ones beyond ``keep_checkpoints`` are removed; with ``best`` it also goes
    to ``best.pt`` beside ``path``.
    """
    setup, progress = loop.setup, loop.progress
    if loop.last_terms is not None:
        check_finite(setup.group.mean(loop.last_terms.total.detach()).item(), progress)
    if not setup.group.is_main:
        return
    state = checkpoint_state(setup, progress)
    save_checkpoint(path, state)
    if numbered:
        save_checkpoint(path.parent / step_checkpoint_name(progress.step), state)
        prune_checkpoints(path.parent, setup.train_cfg.keep_checkpoints)
    if best:
        save_checkpoint(path.parent / BEST_NAME, state)


def _save_epoch(loop: _Loop, paths: RunPaths, best: bool = False) -> None:
    every = loop.setup.train_cfg.checkpoint_every_epochs
    _save(loop, paths.last, numbered=loop.progress.epoch % every == 0, best=best)
