"""The training loop: learning, exact resume, interruption, bad losses and checkpoint pruning."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
from pathlib import Path

import pytest
import torch

from unsup3d_cli import api
from unsup3d_cli.config import ConfigError, ExperimentConfig, apply_overrides
from unsup3d_cli.engine import trainer
from unsup3d_cli.engine.checkpoint import CheckpointError, load_checkpoint
from unsup3d_cli.engine.trainer import (
    TrainingError,
    TrainingInterrupted,
    build_optimizer,
    compute_loss,
)
from unsup3d_cli.losses import LossConfig, flip_weight, self_view_loss
from unsup3d_cli.synthetic import synthetic_sample

TINY = [
    "data.source=synthetic", "data.synthetic_train_size=6", "data.synthetic_val_size=2",
    "model.width=16", "model.encoder_width=16", "model.depth_zdim=32", "model.confidence_zdim=16",
    "loss.perceptual_weights=none", "train.batch_size=3", "train.num_epochs=3",
    "train.log_every_steps=1", "train.image_every_steps=2", "train.keep_checkpoints=2",
]  # fmt: skip


def _cfg(*extra: str) -> ExperimentConfig:
    return apply_overrides(ExperimentConfig(name="t"), [*TINY, *extra])


def _setup(cfg: ExperimentConfig) -> trainer.TrainingSetup:
    train_loader, val_loader = api._loaders(cfg)
    model = api.build_model(cfg)
    return trainer.TrainingSetup(model, None, build_optimizer(model, cfg.train), train_loader,
                                 val_loader, cfg.train, cfg.loss, torch.device("cpu"))  # fmt: skip


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_overfitting_a_few_images_lowers_the_photometric_loss(precision):
    torch.manual_seed(0)
    cfg = _cfg(f"train.precision={precision}")
    model = api.build_model(cfg)
    model.set_precision(cfg.train.precision)
    optimizer = build_optimizer(model, cfg.train)
    images = torch.stack([synthetic_sample(i, 0)[0] for i in range(4)])
    losses = []
    for _ in range(40):
        terms, _, _ = compute_loss(model, None, images, LossConfig(), epoch=0)
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        losses.append(terms.photometric.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_run_fraction_is_the_nearest_limit():
    cfg = _cfg("train.num_epochs=4", "train.max_steps=100", "train.max_minutes=10").train
    progress = trainer.Progress(step=20, epoch=1, batch_in_epoch=5, elapsed_s=180.0)
    # epochs: (1 + 5/10) / 4 = 0.375; steps: 20/100 = 0.2; minutes: 3/10 = 0.3
    assert trainer.run_fraction(cfg, progress, 10) == pytest.approx(0.375)
    progress.elapsed_s = 480.0  # 8 of 10 minutes is now the nearest
    assert trainer.run_fraction(cfg, progress, 10) == pytest.approx(0.8)
    progress.step = 150  # past a limit: clipped
    assert trainer.run_fraction(cfg, progress, 10) == 1.0


def test_learning_rate_is_constant_then_falls_linearly_to_zero():
    cfg = _cfg("train.lr=1e-3", "train.lr_decay_fraction=0.25").train
    lrs = [trainer.learning_rate(cfg, f) for f in (0.0, 0.5, 0.75, 0.8, 0.875, 1.0)]
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 0.8e-3, 0.5e-3, 0.0])
    constant = _cfg("train.lr=1e-3").train
    assert trainer.learning_rate(constant, 0.99) == 1e-3


def test_light_warmup_holds_the_light_off_then_fades_it_in():
    cfg = _cfg("train.light_warmup_steps=4").train
    mixes = [trainer.light_mix(cfg, step) for step in (0, 3, 4, 5, 6, 8, 20)]
    assert mixes == pytest.approx([0.0, 0.0, 0.0, 0.25, 0.5, 1.0, 1.0])
    assert trainer.light_mix(_cfg().train, 0) == 1.0  # off by default: the paper's
    with pytest.raises(ConfigError, match="light_warmup_steps"):
        _cfg("train.light_warmup_steps=-1")


def test_light_warmup_leaves_the_light_network_untouched_while_off():
    torch.manual_seed(0)
    setup = _setup(_cfg("train.light_warmup_steps=2"))
    model = setup.model

    def unchanged(net: torch.nn.Module, before: list[torch.Tensor]) -> bool:
        return all(torch.equal(p, q) for p, q in zip(net.parameters(), before, strict=True))

    light = [p.detach().clone() for p in model.light_net.parameters()]
    depth = [p.detach().clone() for p in model.depth_net.parameters()]
    image = torch.rand(3, 3, 64, 64)
    for step in range(3):  # mix 0 at steps 0-2: no update, and no weight decay either
        trainer.train_step(setup, image, trainer.Progress(step=step))
        assert model.light_mix == 0.0
    assert unchanged(model.light_net, light) and not unchanged(model.depth_net, depth)
    trainer.train_step(setup, image, trainer.Progress(step=3))  # mix 0.5: it learns
    assert model.light_mix == 0.5
    assert not unchanged(model.light_net, light)


def test_frontal_light_warmup_holds_only_the_direction():
    torch.manual_seed(0)
    setup = _setup(_cfg("train.light_warmup_steps=2", "train.light_warmup=frontal"))
    light = [p.detach().clone() for p in setup.model.light_net.parameters()]
    trainer.train_step(setup, torch.rand(3, 3, 64, 64), trainer.Progress(step=0))
    assert (setup.model.light_mix, setup.model.light_direction_mix) == (1.0, 0.0)
    after = setup.model.light_net.parameters()
    assert not all(torch.equal(p, q) for p, q in zip(after, light, strict=True))  # it learns
    with pytest.raises(ConfigError, match="light_warmup"):
        _cfg("train.light_warmup=dark")


def test_depth_hold_keeps_the_canonical_depth_as_initialised():
    torch.manual_seed(0)
    setup = _setup(_cfg("train.depth_hold_steps=2", "model.dome_depth_init=0.05"))
    model, image = setup.model, torch.rand(3, 3, 64, 64)
    depth = [p.detach().clone() for p in [*model.depth_net.parameters(), model.depth_template]]
    albedo = [p.detach().clone() for p in model.albedo_net.parameters()]

    def unchanged(params: list[torch.nn.Parameter], before: list[torch.Tensor]) -> bool:
        return all(torch.equal(p, q) for p, q in zip(params, before, strict=True))

    for step in range(2):
        trainer.train_step(setup, image, trainer.Progress(step=step))
    depth_params = [*model.depth_net.parameters(), model.depth_template]
    assert unchanged(depth_params, depth)
    assert not unchanged(list(model.albedo_net.parameters()), albedo)
    trainer.train_step(setup, image, trainer.Progress(step=2))  # released
    assert not unchanged(depth_params, depth)
    with pytest.raises(ConfigError, match="depth_hold_steps"):
        _cfg("train.depth_hold_steps=-1")


def test_training_logs_the_decayed_learning_rate(tmp_path):
    cfg = _cfg("data.synthetic_train_size=12", "train.num_epochs=1", "train.max_steps=100",
               "train.lr=1e-3", "train.lr_decay_fraction=0.5", "train.validate=false")  # fmt: skip
    run = api.train(cfg, run_dir=tmp_path / "run", device="cpu", resume=False)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lrs = [json.loads(line)["lr"] for line in lines if '"train"' in line]
    # 4 steps of batch 3 in the one epoch, the nearest limit: step k runs k/4 through the run
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 0.5e-3])


@pytest.mark.parametrize("slots", [4.0, 0.0])
def test_training_logs_the_rasterizers_drop_count(tmp_path, caplog, slots):
    # The fixed-size pass on the CPU. The border columns sit 0.2 behind the mid-range surface,
    # so some triangles span several pixels; with no slots for them, they are dropped.
    cfg = _cfg("renderer.fixed_size=true", f"renderer.slots_per_pixel={slots}",
               "train.num_epochs=1", "train.validate=false", "model.min_depth=0.5",
               "model.max_depth=1.5")  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="unsup3d_cli"):
        run = api.train(cfg, run_dir=tmp_path / "run", device="cpu", resume=False)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    dropped = [r["raster_dropped"] for r in records if r["kind"] == "train"]
    warnings = [r.getMessage() for r in caplog.records if "slots_per_pixel" in r.getMessage()]
    if slots:
        assert dropped == [0.0, 0.0] and not warnings
    else:
        assert len(dropped) == 2 and min(dropped) > 0
        assert len(warnings) == 1 and "step 1:" in warnings[0]


def test_bad_decay_fraction_is_a_config_error():
    with pytest.raises(ConfigError, match="lr_decay_fraction"):
        _cfg("train.lr_decay_fraction=1.5")


def test_bf16_training_runs_the_networks_in_bfloat16(tmp_path):
    seen = []
    original = api.build_model

    def spy(cfg):
        model = original(cfg)
        model.depth_net.output_layer.register_forward_hook(
            lambda module, inputs, output: seen.append(output.dtype)
        )
        return model

    original_features = api.load_perceptual

    def spy_features(spec):
        features = original_features(spec)
        features.layers[0].register_forward_hook(
            lambda module, inputs, output: seen.append(output.dtype)
        )
        return features

    cfg = _cfg("train.precision=bf16", "train.num_epochs=1", "loss.perceptual_weights=random")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(api, "build_model", spy)
        patch.setattr(api, "load_perceptual", spy_features)
        run = api.train(cfg, run_dir=tmp_path / "run", device="cpu", resume=False)
    assert len(seen) > 2 and set(seen) == {torch.bfloat16}  # depth network and VGG16
    assert all(w.dtype == torch.float32 for w in _weights(run).values() if w.is_floating_point())


@pytest.mark.parametrize("native", [True, False])
def test_auto_training_precision_follows_the_device(tmp_path, monkeypatch, native):
    monkeypatch.setattr(api, "has_native_bfloat16", lambda device: native)
    chosen = []
    real = api.build_model

    def spy(cfg):
        model = real(cfg)
        original = model.set_precision
        model.set_precision = lambda p: (chosen.append(p), original(p))[1]
        return model

    monkeypatch.setattr(api, "build_model", spy)
    api.train(_cfg("train.precision=auto", "train.max_steps=1"), run_dir=tmp_path, device="cpu")
    assert chosen == ["bf16" if native else "fp32"]


def test_unknown_training_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="train.precision"):
        _cfg("train.precision=fp16")


def test_run_folder_contents_and_pruning(tmp_path):
    run = api.train(_cfg(), run_dir=tmp_path / "run", device="cpu", resume=False)
    assert (run / "config.yaml").is_file()
    steps = sorted(p.name for p in (run / "checkpoints").glob("step-*.pt"))
    assert steps == ["step-000000004.pt", "step-000000006.pt"]  # 3 epochs × 2 steps, keep 2
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in records if r["kind"] == "val"] == [0, 1, 2]
    assert any((run / "tb").iterdir())
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 6 and state["epoch"] == 3
    assert state["config"]["model"]["width"] == 16


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    straight = api.train(_cfg("train.max_steps=5"), run_dir=tmp_path / "a", device="cpu")
    api.train(_cfg("train.max_steps=3"), run_dir=tmp_path / "b", device="cpu")  # stops mid-epoch
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["batch_in_epoch"] == 1
    resumed = api.train(_cfg("train.max_steps=5"), run_dir=tmp_path / "b", device="cpu")
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_takes_the_optimizer_settings_of_the_new_config(tmp_path):
    api.train(_cfg("train.max_steps=2"), run_dir=tmp_path, device="cpu")
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["optimizer"]
    assert saved["param_groups"][0]["weight_decay"] == 5e-4
    changed = ("train.max_steps=3", "train.weight_decay=0", "train.betas=[0.5,0.9]")
    api.train(_cfg(*changed), run_dir=tmp_path, device="cpu")
    resumed = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["optimizer"]
    for group in resumed["param_groups"]:
        assert group["weight_decay"] == 0 and tuple(group["betas"]) == (0.5, 0.9)


def test_load_optimizer_state_keeps_the_moments_and_the_configs_settings():
    cfg = _cfg()
    model = api.build_model(cfg)
    optimizer = build_optimizer(model, cfg.train)
    terms, _, _ = compute_loss(model, None, torch.rand(2, 3, 64, 64), LossConfig(), epoch=0)
    terms.total.backward()
    optimizer.step()
    new_cfg = _cfg("train.weight_decay=0.01", "train.lr=0.003").train
    fresh = build_optimizer(model, cfg.train)
    trainer.load_optimizer_state(fresh, optimizer.state_dict(), new_cfg)
    group = fresh.param_groups[0]
    assert (group["weight_decay"], group["lr"]) == (0.01, 0.003)
    first = next(p for p in model.parameters() if p.requires_grad)
    assert torch.equal(fresh.state[first]["exp_avg"], optimizer.state[first]["exp_avg"])


def test_view_lr_scale_gives_the_view_network_its_own_rate():
    cfg = _cfg("train.lr=1e-3", "train.view_lr_scale=5")
    model = api.build_model(cfg)
    optimizer = build_optimizer(model, cfg.train)
    rest, view = optimizer.param_groups
    assert {id(p) for p in view["params"]} == {id(p) for p in model.view_net.parameters()}
    assert len(rest["params"]) + len(view["params"]) == len(list(model.parameters()))
    assert (rest["lr"], view["lr"]) == (1e-3, pytest.approx(5e-3))
    trainer.set_learning_rate(optimizer, 2e-4)  # the schedule keeps the ratio
    assert (rest["lr"], view["lr"]) == (2e-4, pytest.approx(1e-3))
    # one Adam step moves a weight by about its rate (the first step is sign(grad) · lr)
    firsts = (rest["params"][0], view["params"][0])
    before = [p.detach().clone() for p in firsts]
    terms, _, _ = compute_loss(model, None, torch.rand(2, 3, 64, 64), LossConfig(), epoch=0)
    terms.total.backward()
    optimizer.step()
    moved = [(p.detach() - b).abs().max().item() for p, b in zip(firsts, before, strict=True)]
    assert moved[0] == pytest.approx(2e-4, rel=0.05) and moved[1] == pytest.approx(1e-3, rel=0.05)
    # resuming keeps the groups' ratio under the config's rate; a group mismatch is one error
    fresh = build_optimizer(model, _cfg("train.lr=3e-4", "train.view_lr_scale=5").train)
    trainer.load_optimizer_state(fresh, optimizer.state_dict(), _cfg("train.lr=3e-4").train)
    assert [g["lr"] for g in fresh.param_groups] == [3e-4, pytest.approx(1.5e-3)]
    single = build_optimizer(model, _cfg().train)
    assert len(single.param_groups) == 1 and single.param_groups[0]["lr"] == 1e-4
    with pytest.raises(CheckpointError, match="view_lr_scale"):
        trainer.load_optimizer_state(single, optimizer.state_dict(), _cfg().train)


def test_weight_average_is_checkpointed_loaded_and_resumed(tmp_path):
    straight = api.train(_cfg("train.max_steps=5", "train.ema_decay=0.5"), run_dir=tmp_path / "a",
                         device="cpu")  # fmt: skip
    state = load_checkpoint(straight / "checkpoints" / "last.pt")
    assert state["ema_updates"] == 5 and state["model_ema"].keys() == state["model"].keys()
    assert not all(torch.equal(v, state["model_ema"][k]) for k, v in state["model"].items())
    model, _ = api.load_model(straight / "checkpoints" / "last.pt", device="cpu")
    assert all(torch.equal(state["model_ema"][k], v) for k, v in model.state_dict().items())
    api.train(_cfg("train.max_steps=3", "train.ema_decay=0.5"), run_dir=tmp_path / "b",
              device="cpu")  # fmt: skip
    resumed = api.train(_cfg("train.max_steps=5", "train.ema_decay=0.5"), run_dir=tmp_path / "b",
                        device="cpu")  # fmt: skip
    again = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert again["ema_updates"] == 5
    assert all(torch.equal(state["model_ema"][k], again["model_ema"][k]) for k in again["model"])


def test_validation_scores_the_averaged_weights(tmp_path):
    cfg = _cfg("train.max_steps=4", "train.ema_decay=0.5")
    run = api.train(cfg, run_dir=tmp_path, device="cpu")
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    setup = _setup(cfg)
    setup.model.load_state_dict(state["model"])
    setup.average = trainer.WeightAverage(setup.model, 0.5)
    setup.average.restore(state["model_ema"], state["ema_updates"])
    averaged = trainer.validate(setup, epoch=0)
    assert all(torch.equal(v, state["model"][k]) for k, v in setup.model.state_dict().items())
    setup.average = None
    trained = trainer.validate(setup, epoch=0)
    setup.model.load_state_dict(state["model_ema"])
    assert trainer.validate(setup, epoch=0) == pytest.approx(averaged)
    assert trained["total"] != pytest.approx(averaged["total"])


def test_bad_weight_average_decay_is_a_config_error():
    with pytest.raises(ConfigError, match="ema_decay"):
        _cfg("train.ema_decay=1.0")


def test_resume_refuses_a_different_model(tmp_path):
    api.train(_cfg("train.max_steps=1"), run_dir=tmp_path, device="cpu")
    with pytest.raises(ConfigError, match="model"):
        api.train(_cfg("model.width=20"), run_dir=tmp_path, device="cpu")


def test_resume_takes_a_checkpoint_from_before_a_new_key_and_new_raster_settings(tmp_path):
    api.train(_cfg("train.max_steps=1"), run_dir=tmp_path, device="cpu")
    last = tmp_path / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    for key in ("fixed_size", "slots_per_pixel"):  # written before these keys existed
        del state["config"]["renderer"][key]
    torch.save(state, last)
    api.train(_cfg("train.max_steps=2", "renderer.slots_per_pixel=2", "renderer.max_candidates=9"),
              run_dir=tmp_path, device="cpu")  # fmt: skip
    assert load_checkpoint(last)["step"] == 2
    with pytest.raises(ConfigError, match="'renderer' section"):
        api.train(_cfg("train.max_steps=3", "renderer.fov_deg=12"), run_dir=tmp_path, device="cpu")
    state["config"]["renderer"]["future_key"] = 1
    torch.save(state, last)
    with pytest.raises(ConfigError, match=r"cannot resume from it: .*future_key"):
        api.train(_cfg("train.max_steps=3"), run_dir=tmp_path, device="cpu")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    api.train(_cfg("train.num_epochs=1"), run_dir=tmp_path, device="cpu")
    before = _weights(tmp_path)
    real = trainer.total_loss

    def poisoned(*args, **kwargs):
        terms = real(*args, **kwargs)
        return terms.__class__(**{**terms.__dict__, "total": terms.total * float("nan")})

    monkeypatch.setattr(trainer, "total_loss", poisoned)
    with pytest.raises(TrainingError, match="non-finite loss"):
        api.train(_cfg(), run_dir=tmp_path, device="cpu")
    after = _weights(tmp_path)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_ctrl_c_saves_a_checkpoint_after_the_current_step(tmp_path, monkeypatch):
    real = trainer.train_step

    def step_then_interrupt(setup, image, progress, gt_depth=None):
        terms = real(setup, image, progress, gt_depth)
        if progress.step == 1:  # the second step: Ctrl-C arrives while it runs
            os.kill(os.getpid(), signal.SIGINT)
        return terms

    monkeypatch.setattr(trainer, "train_step", step_then_interrupt)
    # the handler in place before training: Python's default, or SIG_IGN where the suite runs
    # in the background of a non-interactive shell (`nohup make test &`)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match="resume"):
        api.train(_cfg(), run_dir=tmp_path, device="cpu")
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 2
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_no_resume_starts_over(tmp_path):
    api.train(_cfg("train.max_steps=2"), run_dir=tmp_path, device="cpu")
    api.train(_cfg("train.max_steps=1"), run_dir=tmp_path, device="cpu", resume=False)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 1
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def test_device_resolution_errors():
    assert api.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError):
        api.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            api.resolve_device("cuda")


def test_perceptual_weights_settings(tmp_path):
    assert api.load_perceptual("none") is None
    random_vgg = api.load_perceptual("random")
    path = tmp_path / "vgg.pt"
    torch.save(random_vgg.layers.state_dict(), path)
    loaded = api.load_perceptual(str(path))
    torch.testing.assert_close(loaded.layers[0].weight, random_vgg.layers[0].weight)
    with pytest.raises(ConfigError, match="perceptual_weights"):
        api.load_perceptual(str(tmp_path / "missing.pt"))
    (tmp_path / "bad.pt").write_text("not weights")
    with pytest.raises(ConfigError, match="cannot load"):
        api.load_perceptual(str(tmp_path / "bad.pt"))


def test_load_model_rebuilds_the_trained_model(tmp_path):
    run = api.train(_cfg("train.max_steps=1"), run_dir=tmp_path, device="cpu")
    model, cfg = api.load_model(run / "checkpoints" / "last.pt", device="cpu")
    assert cfg.model.width == 16 and not model.training
    saved = _weights(run)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    with pytest.raises(CheckpointError):
        api.load_model(tmp_path / "nope.pt")
    torch.save({"program": "unsup3d_cli", "version": 1, "model": {}}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="not a usable"):
        api.load_model(tmp_path / "odd.pt")


def test_supervised_depth_baseline_learns_from_ground_truth(tmp_path):
    cfg = _cfg("loss.supervision=depth", "model.predict_view=false", "train.max_steps=2")
    run = api.train(cfg, run_dir=tmp_path, device="cpu")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert all(r["depth_supervised"] > 0 and r["photometric"] == 0 for r in train)
    model, _ = api.load_model(run / "checkpoints" / "last.pt", device="cpu")
    assert model.view_net is None
    with pytest.raises(ConfigError, match="ground-truth depth"):
        api.train(_cfg("loss.supervision=depth", "data.source=folder"), run_dir=tmp_path / "x")


def test_time_budget_stops_training(tmp_path):
    run = api.train(_cfg("train.max_minutes=0.0001"), run_dir=tmp_path, device="cpu")
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 1 and state["elapsed_s"] > 0


def test_best_checkpoint_is_the_epoch_with_the_lowest_validation_loss(tmp_path):
    cfg = _cfg("train.num_epochs=4")
    run = api.train(cfg, run_dir=tmp_path, device="cpu")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["kind"] == "val"]
    lowest = min(val, key=lambda r: r["total"])
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["step"] == lowest["step"] and best["epoch"] == lowest["epoch"] + 1
    assert best["best_val"] == [pytest.approx(lowest["total"]), flip_weight(cfg.loss, 0)]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["best_val"] == best["best_val"]


def test_record_best_keeps_the_lowest_and_restarts_with_a_new_flip_weight():
    setup = _setup(_cfg("loss.lam_flip=0.5", "loss.lam_flip_start_epoch=2"))
    loop = trainer._Loop(setup, trainer.Progress(), None, None)
    seen = []
    for epoch, total in enumerate([3.0, 2.0, 5.0, 4.0, 4.5]):
        loop.progress.epoch = epoch
        seen.append((trainer._record_best(loop, total), loop.progress.best_val))
    assert seen == [
        (True, (3.0, 1.0)),
        (True, (2.0, 1.0)),
        (True, (5.0, 0.5)),  # the flip weight changed: totals are not comparable
        (True, (4.0, 0.5)),
        (False, (4.0, 0.5)),
    ]


def test_best_checkpoint_tally_survives_a_resume_and_can_be_off(tmp_path):
    api.train(_cfg("train.num_epochs=2"), run_dir=tmp_path / "a", device="cpu")
    first = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["best_val"]
    run = api.train(_cfg("train.num_epochs=4"), run_dir=tmp_path / "a", device="cpu")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    totals = [r["total"] for r in records if r["kind"] == "val"]
    assert len(totals) == 4 and first[0] == pytest.approx(min(totals[:2]))
    best = load_checkpoint(run / "checkpoints" / "best.pt")["best_val"]
    assert best[0] == pytest.approx(min(totals))
    off = api.train(_cfg("train.keep_best=false"), run_dir=tmp_path / "b", device="cpu")
    assert not (off / "checkpoints" / "best.pt").exists()


def test_self_view_term_trains_only_the_view_network_on_the_models_own_renders():
    torch.manual_seed(0)
    cfg = _cfg("loss.lam_self_view=0.5", "loss.self_view_ranges_deg=[10,30,5]")
    model, image = api.build_model(cfg), torch.rand(3, 3, 64, 64)
    torch.manual_seed(1)
    terms, decomp, _ = compute_loss(model, None, image, cfg.loss, epoch=0)
    plain_cfg = dataclasses.replace(cfg.loss, lam_self_view=0.0)
    plain, _, _ = compute_loss(model, None, image, plain_cfg, epoch=0)
    # the same random views drawn again give the same term, made of the documented parts
    torch.manual_seed(1)
    unit = torch.rand(3, 3) * 2 - 1
    views = unit * torch.tensor([10.0, 30.0, 5.0]).deg2rad()
    xy = (torch.rand(3, 2) * 2 - 1) * cfg.loss.self_view_shift
    shifts = torch.cat([xy, torch.zeros(3, 1)], 1)
    rendered = model.render_views(decomp, views, shifts)
    expected = self_view_loss(*model.predict_view(rendered), views, shifts, 0.1)
    torch.testing.assert_close(terms.self_view, expected)
    torch.testing.assert_close(terms.total, plain.total + 0.5 * expected)
    assert plain.self_view == 0 and float(expected.detach()) > 0
    # only the viewpoint network gets a gradient from the term
    model.zero_grad()
    torch.manual_seed(1)
    trainer.self_view_term(model, decomp, cfg.loss).backward(inputs=list(model.parameters()))
    for name, parameter in model.named_parameters():
        has_grad = parameter.grad is not None and bool(parameter.grad.abs().sum() > 0)
        assert has_grad == name.startswith("view_net."), name
    with pytest.raises(ConfigError, match="lam_self_view"):
        _cfg("loss.lam_self_view=-1")
    with pytest.raises(ConfigError, match="self_view_ranges_deg"):
        _cfg("loss.self_view_ranges_deg=[10,200,5]")
