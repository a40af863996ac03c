"""The original Unsup3D checkpoints: read safely, mapped exactly, used by every command.

The reference networks come from ``original_reference.py``: built from the facts of the
original code (layer sequence, key names, shapes), with random weights, run with
``torch.nn.functional`` and decoded as the original ``model.py`` does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, runner
from original_reference import (
    OriginalSettings,
    all_layers,
    decomposition_errors,
    key_shapes,
    original_modules,
    original_training_checkpoint,
    random_state_dict,
    reference_decomposition,
)
from PIL import Image

from unsup3d_cli import api
from unsup3d_cli.cli import app
from unsup3d_cli.config import config_to_dict, load_config
from unsup3d_cli.engine.checkpoint import CheckpointError, ForeignObject, read_checkpoint_file
from unsup3d_cli.model.original import MODULE_TABLE, WeightMappingError, convert_original_weights
from unsup3d_cli.pretrained import (
    ORIGINAL_FORMAT,
    PRESET_NAMES,
    build_model,
    load_weights,
    preset_config,
)

REPO = Path(__file__).resolve().parents[1]
NETWORKS = ("netD", "netA", "netL", "netV", "netC")
TOLERANCES = {torch.float64: 1e-12, torch.float32: 1e-4}
"""Largest absolute difference allowed per factor. float64: the same arithmetic up to the
order of sums. float32: that order's rounding through the 17 convolutions of the depth and
albedo networks (channels-last against contiguous kernels; measured up to about 3e-5)."""


def make_nets(seed: int, with_confidence: bool = True) -> dict[str, dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    names = NETWORKS if with_confidence else NETWORKS[:4]
    return {name: random_state_dict(name, generator) for name in names}


@pytest.fixture(scope="module")
def nets() -> dict[str, dict[str, torch.Tensor]]:
    return make_nets(0)


@pytest.fixture(scope="module")
def original_ckpt(tmp_path_factory: pytest.TempPathFactory, nets) -> Path:
    """A training checkpoint of the original code (legacy format, optimizers, MetricsTrace)."""
    path = tmp_path_factory.mktemp("original") / "checkpoint030.pth"
    original_training_checkpoint(path, nets)
    return path


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def assert_matches_reference(model, nets, images, settings: OriginalSettings) -> None:
    """Our decoding against the reference, in float64 and in float32."""
    for dtype in (torch.float64, torch.float32):
        with torch.no_grad():
            ours = model.to(dtype)(images.to(dtype))
            ref_nets = {n: {k: v.to(dtype) for k, v in s.items()} for n, s in nets.items()}
            ref = reference_decomposition(ref_nets, images.to(dtype), settings)
        errors = decomposition_errors(ours, ref)
        assert max(errors.values()) <= TOLERANCES[dtype], (dtype, errors)
        # the reference is neither flat nor saturated, so the comparison means something
        assert ref["depth"][:, :, 2:-2].std() > 1e-3
        assert ref["view"][:, :3].abs().max() < 0.99 * np.pi / 3
    model.float()


# --------------------------------------------------------------------------------------------
# The facts and the key table


def test_fact_table_matches_the_original_parameter_counts() -> None:
    counts = {name: len(key_shapes(name)) for name in NETWORKS}
    assert counts == {"netD": 38, "netA": 38, "netL": 6, "netV": 6, "netC": 26}
    totals = {name: sum(int(np.prod(s)) for s in key_shapes(name).values()) for name in NETWORKS}
    assert totals == {
        "netD": 12_979_648, "netA": 12_982_848, "netL": 1_739_264, "netV": 1_739_776,
        "netC": 7_678_208,
    }  # fmt: skip


@pytest.mark.parametrize("name", NETWORKS)
def test_key_table_covers_every_original_layer_and_nothing_else(name: str) -> None:
    prefixes = {key.rpartition(".")[0] for key in key_shapes(name)}
    assert set(MODULE_TABLE[name]) == prefixes


def test_conversion_maps_each_key_to_the_same_shape(nets) -> None:
    model = build_model(preset_config("celeba"))
    converted = convert_original_weights(nets, model)
    ours = model.state_dict()
    assert set(converted) == set(ours)
    assert sum(len(state) for state in nets.values()) == len(converted) == 114
    for key, tensor in converted.items():
        assert tensor.shape == ours[key].shape, key


def test_conversion_names_a_wrong_shape_and_a_stray_key(nets) -> None:
    model = build_model(preset_config("celeba"))
    bad = {name: dict(state) for name, state in nets.items()}
    bad["netL"]["network.10.weight"] = torch.zeros(5, 256, 1, 1)
    with pytest.raises(WeightMappingError, match=r"netL\.network\.10\.weight: shape \(5, 256"):
        convert_original_weights(bad, model)
    stray = {name: dict(state) for name, state in nets.items()}
    stray["netD"]["network.44.weight"] = torch.zeros(1)
    with pytest.raises(WeightMappingError, match=r"netD\.network\.44\.weight"):
        convert_original_weights(stray, model)
    missing = {name: dict(state) for name, state in nets.items()}
    del missing["netA"]["network.42.weight"]
    with pytest.raises(WeightMappingError, match="albedo_net.decoder.29.weight"):
        convert_original_weights(missing, model)


# --------------------------------------------------------------------------------------------
# Exactness: our decoding of the original weights equals the original forward


def test_original_training_checkpoint_decodes_exactly(original_ckpt, nets, images) -> None:
    model, cfg = api.load_model(original_ckpt, device="cpu")  # no preset: celeba
    assert cfg.name == "celeba" and cfg.model.use_confidence
    assert_matches_reference(model, nets, images, OriginalSettings())


def test_cat_preset_decodes_with_z_translation(tmp_path: Path, nets, images) -> None:
    path = tmp_path / "cat.pth"
    torch.save(dict(nets), path)  # a published checkpoint: weights only, zip format
    model, cfg = api.load_model(path, device="cpu", preset="cat")
    assert cfg.data.crop == 170
    assert_matches_reference(model, nets, images, OriginalSettings(z_translation_range=0.1))


def test_syncar_preset_without_confidence(tmp_path: Path, images) -> None:
    nets = make_nets(3, with_confidence=False)
    path = tmp_path / "syncar.pth"
    torch.save(dict(nets), path)
    model, cfg = api.load_model(path, device="cpu", preset="syncar")
    assert not cfg.model.use_confidence and model.confidence_net is None
    settings = OriginalSettings(border_depth=1.08, min_diff_light=0.5)
    assert_matches_reference(model, nets, images, settings)


def test_without_netc_the_celeba_preset_drops_confidence(tmp_path: Path, images) -> None:
    nets = make_nets(4, with_confidence=False)
    path = tmp_path / "demo.pth"
    torch.save(dict(nets), path)
    loaded = load_weights(path)
    assert not loaded.config.model.use_confidence
    assert "no confidence maps" in loaded.info["note"]


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_presets_equal_the_shipped_configs(name: str) -> None:
    shipped = load_config(REPO / "configs" / f"{name}.yaml")
    assert config_to_dict(preset_config(name)) == config_to_dict(shipped)


def test_unknown_preset_is_refused_in_one_line(original_ckpt, photos, tmp_path) -> None:
    args = ["reconstruct", str(photos), "--checkpoint", str(original_ckpt), "--preset", "dog"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert_one_line_error(result, "--preset 'dog'", "celeba")


# --------------------------------------------------------------------------------------------
# Safe reading of the original layout


def test_the_metrics_trace_is_read_inert_without_importing_it(original_ckpt) -> None:
    state = read_checkpoint_file(original_ckpt)
    assert isinstance(state["metrics_trace"], ForeignObject)
    assert not hasattr(state["metrics_trace"], "data")  # its state was dropped
    assert state["epoch"] == 30 and set(state["optimizerD"]) == {"state", "param_groups"}
    import sys

    assert "unsup3d" not in sys.modules and "unsup3d.meters" not in sys.modules


# --------------------------------------------------------------------------------------------
# Every command on an original checkpoint


def test_reconstruct_an_original_checkpoint_without_any_flag(original_ckpt, photos, tmp_path):
    out = tmp_path / "recon"
    args = ["reconstruct", str(photos), "--checkpoint", str(original_ckpt), "--out", str(out)]
    result = runner.invoke(app, [*args, "--device", "cpu", "--no-detect-faces"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "photo0" / "result.json").read_text())
    assert record["confidence_maps"] is True and (out / "photo0" / "confidence.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert any("'celeba' preset" in note for note in summary["warnings"])


def test_reconstruct_says_there_are_no_confidence_maps(tmp_path: Path, photos) -> None:
    path = tmp_path / "syncar.pth"
    torch.save(make_nets(5, with_confidence=False), path)
    out = tmp_path / "recon"
    args = ["reconstruct", str(photos), "--checkpoint", str(path), "--preset", "syncar"]
    result = runner.invoke(app, [*args, "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "photo0" / "result.json").read_text())
    assert record["confidence_maps"] is False and record["border_depth"] == 1.08
    assert not (out / "photo0" / "confidence.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert any("no confidence maps" in note for note in summary["warnings"])


def test_export_and_eval_take_an_original_checkpoint(original_ckpt, photos, tmp_path) -> None:
    meshes = tmp_path / "meshes"
    args = ["export", str(photos), "--checkpoint", str(original_ckpt), "--out", str(meshes)]
    result = runner.invoke(app, [*args, "--device", "cpu", "--no-detect-faces"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in meshes.glob("*.obj")) == ["photo0.obj", "photo1.obj"]

    split = tmp_path / "synth"
    assert (
        runner.invoke(app, ["synth", str(split), "--num", "4", "--split", "0,0,1"]).exit_code == 0
    )
    out = tmp_path / "eval.json"
    args = ["eval", "--data", str(split / "test"), "--checkpoint", str(original_ckpt)]
    result = runner.invoke(app, [*args, "--out", str(out), "--device", "cpu", "--crop", "none"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    row = report["rows"][0]
    assert row["preset"] == "celeba" and row["checkpoint_format"] == ORIGINAL_FORMAT


# --------------------------------------------------------------------------------------------
# convert and train --init-from


def test_convert_writes_our_checkpoint_with_the_preset(original_ckpt, nets, images, tmp_path):
    out = tmp_path / "cat.pt"
    args = ["convert", str(original_ckpt), "--preset", "cat", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    model, cfg = api.load_model(out, device="cpu")  # no flag needed any more
    assert cfg.name == "cat" and cfg.model.z_translation_range == 0.1
    direct, _ = api.load_model(original_ckpt, device="cpu", preset="cat")
    for key, tensor in direct.state_dict().items():
        assert torch.equal(model.state_dict()[key], tensor), key
    assert_matches_reference(model, nets, images, OriginalSettings(z_translation_range=0.1))
    source = read_checkpoint_file(out)["source"]
    assert source["format"] == ORIGINAL_FORMAT and source["epoch"] == 30
    assert_one_line_error(runner.invoke(app, args), str(out), "--force")  # exists
    again = ["convert", str(out), "--out", str(tmp_path / "again.pt")]
    assert_one_line_error(runner.invoke(app, again), "already an unsup3d checkpoint")


@pytest.mark.parametrize("source", ["original", "converted"])
def test_train_init_from_starts_with_exactly_those_weights(
    source: str, original_ckpt, tmp_path: Path
) -> None:
    init = original_ckpt
    if source == "converted":
        init = tmp_path / "converted.pt"
        api.convert_checkpoint(original_ckpt, init)
    run = tmp_path / "run"
    sets = ["data.source=synthetic", "data.synthetic_train_size=2", "data.num_workers=0",
            "train.batch_size=2", "train.max_steps=1", "train.validate=false",
            "train.tensorboard=false", "loss.perceptual_weights=none", "train.lr=0.0",
            "train.weight_decay=0.0"]  # fmt: skip
    args = ["train", "--config", str(REPO / "configs" / "celeba.yaml"), "--run-dir", str(run)]
    args += [item for pair in (("--set", s) for s in sets) for item in pair]
    result = runner.invoke(app, [*args, "--device", "cpu", "--init-from", str(init)])
    assert result.exit_code == 0, result.output
    trained = read_checkpoint_file(run / "checkpoints" / "last.pt")
    assert trained["step"] == 1
    expected = load_weights(original_ckpt).state_dict
    for key, tensor in expected.items():  # lr 0: the step changed nothing
        assert torch.equal(trained["model"][key], tensor), key


def test_init_from_weights_of_another_architecture_is_one_line(original_ckpt, tmp_path) -> None:
    smoke = str(REPO / "configs" / "smoke.yaml")
    args = ["train", "--config", smoke, "--run-dir", str(tmp_path / "run"), "--device", "cpu",
            "--init-from", str(original_ckpt)]  # fmt: skip
    assert_one_line_error(runner.invoke(app, args), "--init-from", str(original_ckpt))


# --------------------------------------------------------------------------------------------
# Hostile and foreign files: nothing runs, one line, non-zero exit


class _Payload:
    """Unpickling this object would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def hostile_checkpoint(path: Path, marker: Path, layout: str) -> Path:
    """A checkpoint that looks like ours or like the original's and carries the payload."""
    if layout == "ours":
        state = {"program": "unsup3d_cli", "version": 1, "config": {}, "model": {},
                 "payload": _Payload(marker)}  # fmt: skip
    else:
        state = {"netD": {}, "netA": {}, "netL": {}, "netV": {}, "epoch": 30,
                 "metrics_trace": _Payload(marker)}  # fmt: skip
    torch.save(state, path)
    return path


COMMANDS = ["reconstruct", "eval", "export", "convert", "train-resume", "train-init-from"]


def command_args(command: str, ckpt: Path, tmp_path: Path) -> list[str]:
    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(photos / "a.png")
    smoke = str(REPO / "configs" / "smoke.yaml")
    cpu = ["--device", "cpu"]
    if command == "reconstruct":
        return ["reconstruct", str(photos), "--checkpoint", str(ckpt), "--out", "o", *cpu]
    if command == "eval":
        return ["eval", "--data", str(tmp_path), "--checkpoint", str(ckpt), *cpu]
    if command == "export":
        return ["export", str(photos), "--checkpoint", str(ckpt), "--out", "m", *cpu]
    if command == "convert":
        return ["convert", str(ckpt), "--out", str(tmp_path / "c.pt")]
    if command == "train-init-from":
        return ["train", "--config", smoke, "--run-dir", "r", "--init-from", str(ckpt), *cpu]
    return ["train", "--config", smoke, "--run-dir", str(ckpt.parent.parent), *cpu]  # resume


@pytest.mark.parametrize("layout", ["ours", "original"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_hostile_checkpoint_runs_nothing(
    command: str, layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative outputs land in the test's folder
    marker = tmp_path / "marker"
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    ckpt = hostile_checkpoint(folder / "last.pt", marker, layout)
    result = runner.invoke(app, command_args(command, ckpt, tmp_path))
    assert_one_line_error(result, str(ckpt), "refused to load", "open'")
    assert not marker.exists()
    assert not (tmp_path / "r").exists()  # --init-from: refused before the run folder


def test_a_payload_hidden_in_the_metrics_trace_state_runs_nothing(tmp_path: Path) -> None:
    """The MetricsTrace name is let through as a placeholder, but not what its state holds."""
    marker = tmp_path / "marker"

    from original_reference import MetricsTrace

    trace = MetricsTrace()
    trace.data = {"hidden": _Payload(marker)}
    path = tmp_path / "checkpoint030.pth"
    with original_modules():
        torch.save({**make_nets(6), "epoch": 30, "metrics_trace": trace}, path)
    with pytest.raises(CheckpointError, match="refused to load .* it imports 'io.open'"):
        read_checkpoint_file(path)
    assert not marker.exists()


def test_a_foreign_file_is_named_in_one_line(tmp_path: Path, photos) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, path)
    args = ["reconstruct", str(photos), "--checkpoint", str(path), "--out", str(tmp_path / "o")]
    assert_one_line_error(runner.invoke(app, args), str(path), "nor of the original Unsup3D")


def test_reference_layers_are_the_original_depth_of_each_network() -> None:
    assert len(all_layers("netD")) == 43 and len(all_layers("netA")) == 44
    assert len(all_layers("netL")) == 12
