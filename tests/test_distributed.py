"""Training over several processes: sharded sampling, exact DDP, one writer, resume, SIGTERM.

The multi-process tests run gloo process groups on the CPU (spawned here, or started by
``torchrun``), so they run in CI on any machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from host_sync import no_host_sync

from unsup3d_cli import api
from unsup3d_cli.config import ExperimentConfig, apply_overrides, load_config
from unsup3d_cli.data import FlipSampler
from unsup3d_cli.engine.averaging import WeightAverage
from unsup3d_cli.engine.checkpoint import load_checkpoint
from unsup3d_cli.engine.distributed import Launch, ProcessGroup, launch_from_env
from unsup3d_cli.engine.trainer import Progress, TrainingSetup, build_optimizer, train_step
from unsup3d_cli.losses import VGGFeatures

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "data.source=synthetic", "data.synthetic_train_size=12", "data.synthetic_val_size=4",
    "model.width=16", "model.encoder_width=16", "model.depth_zdim=32", "model.confidence_zdim=16",
    "loss.perceptual_weights=none", "train.batch_size=4", "train.num_epochs=2",
    "train.log_every_steps=1", "train.image_every_steps=1000", "train.tensorboard=false",
]  # fmt: skip


def _cfg(*extra: str) -> ExperimentConfig:
    return apply_overrides(ExperimentConfig(name="ddp"), [*TINY, *extra])


# --------------------------------------------------------------------------------------------
# The sampler


def _shards(num: int, batch: int, world: int, epoch: int = 0, start: int = 0) -> list[list]:
    samplers = [
        FlipSampler(num, True, True, 3, batch, rank=rank, world_size=world) for rank in range(world)
    ]
    for sampler in samplers:
        sampler.set_epoch(epoch, start)
    return [list(sampler) for sampler in samplers]


@pytest.mark.parametrize("world", [2, 4])
def test_shards_are_disjoint_and_cover_each_global_batch_with_its_flips(world: int) -> None:
    single = _shards(24, 8, 1)[0]
    shards = _shards(24, 8, world)
    per = 8 // world
    for batch in range(3):  # global batch b = the ranks' b-th slices, in rank order
        joined = [item for shard in shards for item in shard[batch * per : (batch + 1) * per]]
        assert joined == single[batch * 8 : (batch + 1) * 8]
    assert sorted(i for shard in shards for i, _ in shard) == list(range(24))


def test_a_last_batch_smaller_than_the_world_is_left_out() -> None:
    shards = _shards(10, 4, 4)  # 10 = 4 + 4 + 2: the 2 left cannot go to 4 processes
    assert [len(s) for s in shards] == [2, 2, 2, 2]
    assert FlipSampler(10, batch_size=4, world_size=4).batches_per_epoch == 2
    shards = _shards(10, 4, 2)  # with 2 processes the last batch splits 1 + 1
    assert [len(s) for s in shards] == [5, 5]
    assert FlipSampler(10, batch_size=4, world_size=2).batches_per_epoch == 3
    assert FlipSampler(10, batch_size=4).batches_per_epoch == 3


def test_resuming_with_another_world_size_continues_at_the_same_global_batch() -> None:
    whole = _shards(24, 8, 1)[0]
    start = FlipSampler(24, batch_size=8).start_index_of_batch(1)
    two = _shards(24, 8, 2, start=start)
    assert sorted(two[0] + two[1]) == sorted(whole[8:])
    assert len(FlipSampler(24, batch_size=8, rank=1, world_size=2)) == 12


def test_sampler_and_launch_errors() -> None:
    with pytest.raises(ValueError, match="dividing batch_size"):
        FlipSampler(10, batch_size=3, rank=0, world_size=2)
    assert launch_from_env({}) == Launch()
    launch = launch_from_env({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"})
    assert launch.is_distributed and not launch.is_main


# --------------------------------------------------------------------------------------------
# The learning-rate schedule after a mid-epoch resume


def _lrs(run: Path) -> dict[int, float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["lr"] for r in map(json.loads, lines) if r["kind"] == "train"}


def test_lr_schedule_after_a_mid_epoch_resume_matches_a_straight_run(tmp_path: Path) -> None:
    # 12 images, batch 4: 3 batches an epoch. Stopping at step 1 leaves 2 batches of epoch 0;
    # the run's fraction must still count the whole epoch's 3.
    sets = ("train.lr_decay_fraction=1.0", "train.validate=false")
    api.train(_cfg(*sets), run_dir=tmp_path / "straight", device="cpu")
    api.train(_cfg(*sets, "train.max_steps=1"), run_dir=tmp_path / "resumed", device="cpu")
    api.train(_cfg(*sets), run_dir=tmp_path / "resumed", device="cpu")
    straight, resumed = _lrs(tmp_path / "straight"), _lrs(tmp_path / "resumed")
    assert sorted(resumed) == sorted(straight) == list(range(1, 7))
    for step in range(2, 7):
        assert resumed[step] == pytest.approx(straight[step], rel=1e-12), step


# --------------------------------------------------------------------------------------------
# Exactness: two gloo processes with batch B/2 each = one process with batch B


def _steps(rank: int, world: int, init_file: str, out: str, steps: int) -> None:
    """Train ``steps`` steps in float64 on this process's shard; rank 0 saves the weights."""
    torch.set_num_threads(1)
    group = ProcessGroup()
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                                world_size=world)  # fmt: skip
        group = ProcessGroup(Launch(rank, rank, world), torch.device("cpu"), "gloo")
    cfg = _cfg("loss.lam_depth_smooth=0.5", "loss.lam_view_centre=1.0",
               "loss.lam_translation_centre=1.0", "data.hflip=true")  # fmt: skip
    torch.manual_seed(0)
    model = api.build_model(cfg).double()
    features = VGGFeatures().double()
    loader, _ = api._loaders(cfg, group)
    optimizer = build_optimizer(model, cfg.train)
    setup = TrainingSetup(model, features, optimizer, loader, None, cfg.train, cfg.loss,
                          torch.device("cpu"), group=group)  # fmt: skip
    if world > 1:
        setup.forward_model = api._ddp(model, setup)
    loader.sampler.set_epoch(0)
    progress = Progress()
    for _, batch in zip(range(steps), loader, strict=False):
        train_step(setup, batch["image"].double(), progress)
        progress.step += 1
    if rank == 0:
        torch.save(model.state_dict(), out)
    if world > 1:
        dist.destroy_process_group()


def test_two_processes_train_exactly_like_one(tmp_path: Path) -> None:
    steps = 3
    _steps(0, 1, "", str(tmp_path / "one.pt"), steps)
    init = tmp_path / "init"
    mp.spawn(_steps, args=(2, str(init), str(tmp_path / "two.pt"), steps), nprocs=2)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    start = api.build_model(_cfg())  # a step must have moved the weights, or this is vacuous
    moved = max((one[k].float() - start.state_dict()[k]).abs().max().item() for k in one)
    assert moved > 1e-5
    worst = max((one[k] - two[k]).abs().max().item() for k in one)
    print(f"largest weight difference after {steps} steps: {worst:.2e} (moved {moved:.2e})")
    assert worst < 1e-10, worst


# --------------------------------------------------------------------------------------------
# Under torchrun: one writer, resume, SIGTERM


def _torchrun(run: Path, *sets: str, nproc: int = 2) -> subprocess.Popen:
    smoke = str(REPO / "configs" / "smoke.yaml")
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", "unsup3d_cli", "train", "--config", smoke,
            "--device", "cpu", "--run-dir", str(run)]  # fmt: skip
    for item in ("train.log_every_steps=1", "train.tensorboard=false", *sets):
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=run.parent)  # fmt: skip


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def _train_steps(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r["step"] for r in map(json.loads, lines) if r["kind"] == "train"]


@pytest.mark.slow
def test_torchrun_one_writer_then_resume_on_another_world_size(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _torchrun(run, "train.max_steps=3", "data.synthetic_train_size=64")
    out = _finish(proc)
    assert proc.returncode == 0, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # one run folder
    assert _train_steps(run) == [1, 2, 3]  # each step logged once
    assert out.count("Run directory:") == 1
    launch = (run / "config.yaml").read_text()
    assert "world_size: 2" in launch and "batch_per_process: 8" in launch
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 3
    proc = _torchrun(run, "train.max_steps=5", "data.synthetic_train_size=64")
    out = _finish(proc)
    assert proc.returncode == 0 and "resuming" in out, out
    assert _train_steps(run) == [1, 2, 3, 4, 5]
    # and on one plain process, from the checkpoint the two wrote
    sets = ["train.max_steps=6", "data.synthetic_train_size=64", "train.log_every_steps=1",
            "train.tensorboard=false"]  # fmt: skip
    cfg = load_config(REPO / "configs" / "smoke.yaml", sets)
    api.train(cfg, run_dir=run, device="cpu")
    assert _train_steps(run) == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_sigterm_stops_every_process_with_a_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _torchrun(run, "train.num_epochs=1000", "train.validate=false")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (
        (run / "metrics.jsonl").is_file() and len(_train_steps(run)) >= 2
    ):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out = _finish(proc, timeout=120)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] >= 2, out
    assert state["step"] == _train_steps(run)[-1]  # saved after the last logged step
    assert "interrupted at step" in out
    # torchrun's own agent reports the signal with a traceback of its code; our processes
    # stop cleanly, with none
    assert "unsup3d_cli/" not in out.partition("Traceback")[2], out


# --------------------------------------------------------------------------------------------
# CUDA: a training step that never waits for the device


class _TwoProcesses(ProcessGroup):
    """A stand-in for two processes: the losses take their cross-process path, and every
    sum over the processes is the local value (no collective to wait on)."""

    @property
    def world_size(self) -> int:
        return 2

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        return value.detach().clone()


@pytest.mark.parametrize("processes", ["one", "two"])
@pytest.mark.parametrize(
    "extra",
    [[], ["train.ema_decay=0.99", "train.view_lr_scale=2", "loss.lam_depth_smooth=0.5",
          "loss.lam_view_centre=0.1", "loss.lam_translation_centre=0.1",
          "loss.lam_self_view=0.1"]],
    ids=["plain", "ema+view-lr+priors"],
)  # fmt: skip
def test_a_training_step_never_waits_for_the_device(processes: str, extra: list[str]) -> None:
    # The CPU stand-in for the CUDA sync check below: the whole step (forward, rasterizer,
    # losses, backward, Adam, weight average) on the meta device under no_host_sync, where
    # any data-dependent size, value read or host-to-device copy raises.
    cfg = _cfg("train.precision=fp32", *extra)
    meta = torch.device("meta")
    model = api.build_model(cfg).to(meta)
    group = ProcessGroup(device=meta) if processes == "one" else _TwoProcesses(device=meta)
    average = WeightAverage(model, cfg.train.ema_decay) if cfg.train.ema_decay else None
    setup = TrainingSetup(model, None, build_optimizer(model, cfg.train), None, None, cfg.train,
                          cfg.loss, meta, average=average, group=group)  # fmt: skip
    image, progress = torch.empty(4, 3, 64, 64, device=meta), Progress()
    with no_host_sync():
        for _ in range(2):  # the first step creates Adam's state
            terms = train_step(setup, image, progress)
    assert terms.total.device == meta
    # every weight got its gradient but the perceptual confidence head's (unused without VGG)
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert all(name.startswith("confidence_net.perceptual_head.") for name in missing), missing


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_cuda_training_step_has_no_host_sync() -> None:
    cfg = _cfg()
    device = torch.device("cuda")
    model = api.build_model(cfg).to(device)
    loader, _ = api._loaders(cfg, ProcessGroup(device=device))
    setup = TrainingSetup(model, None, build_optimizer(model, cfg.train), loader, None,
                          cfg.train, cfg.loss, device)  # fmt: skip
    loader.sampler.set_epoch(0)
    image = next(iter(loader))["image"].to(device)
    progress = Progress()
    train_step(setup, image, progress)  # warm-up: allocations, cuDNN plans
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_step(setup, image, progress)
    finally:
        torch.cuda.set_sync_debug_mode("default")
