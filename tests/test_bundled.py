"""The float16 model bundle (.safetensors) and the bundled model used without --checkpoint."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, runner
from conftest import TINY_MODEL_OVERRIDES
from original_reference import random_state_dict
from safetensors import safe_open
from safetensors.torch import save_file

import unsup3d_cli.weights
from unsup3d_cli import api
from unsup3d_cli.cli import app
from unsup3d_cli.config import ExperimentConfig, apply_overrides, config_to_dict
from unsup3d_cli.engine.checkpoint import CheckpointError, save_checkpoint
from unsup3d_cli.pretrained import (
    OUR_FORMAT,
    build_model,
    convert_checkpoint,
    load_weights,
    save_bundle,
)
from unsup3d_cli.weights import bundled_model_path
from unsup3d_cli.weights.bundle import (
    BUNDLE_FORMAT,
    read_bundle,
    write_bundle,
)

STEP = 1234
RECIPE = "tiny test model, untrained"


def tiny_config() -> ExperimentConfig:
    return apply_overrides(ExperimentConfig(name="tiny_faces"), list(TINY_MODEL_OVERRIDES))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our checkpoint of a narrow untrained model, at step :data:`STEP`."""
    cfg = tiny_config()
    torch.manual_seed(0)
    model = build_model(cfg)
    path = tmp_path_factory.mktemp("run") / "checkpoints" / "last.pt"
    state = {"model": model.state_dict(), "config": config_to_dict(cfg), "step": STEP, "epoch": 1}
    save_checkpoint(path, state)
    return path


@pytest.fixture(scope="module")
def bundle(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "tiny.safetensors"
    convert_checkpoint(checkpoint, path, recipe=RECIPE)
    return path


def decompose(model, images: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        result = model.eval()(images)
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return {name: value for name, value in fields.items() if value is not None}


# --------------------------------------------------------------------------------------------
# The format


def test_round_trip_is_the_model_with_float16_weights(checkpoint: Path, bundle: Path) -> None:
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    original, cfg = api.load_model(checkpoint, device="cpu", precision="fp32")
    bundled, bundled_cfg = api.load_model(bundle, device="cpu", precision="fp32")
    assert config_to_dict(bundled_cfg) == config_to_dict(cfg)
    rounded = build_model(cfg)
    rounded.load_state_dict({k: v.half().float() for k, v in original.state_dict().items()})

    exact, ours = decompose(rounded, images), decompose(bundled, images)
    reference = decompose(original, images)
    for name, value in ours.items():
        assert value.dtype == torch.float32, name
        assert torch.equal(value, exact[name]), name
        # float16 weights move the outputs by up to 2e-3 here (albedo; depth 2e-4)
        torch.testing.assert_close(value, reference[name], rtol=0, atol=5e-3, msg=name)


def test_the_file_is_float16_with_config_and_provenance(checkpoint: Path, bundle: Path) -> None:
    with safe_open(bundle, framework="pt") as reader:
        metadata = reader.metadata()
        dtypes = {reader.get_slice(key).get_dtype() for key in reader.keys()}
    assert dtypes == {"F16"}
    assert metadata["bundle_format"] == BUNDLE_FORMAT
    assert json.loads(metadata["config"]) == config_to_dict(tiny_config())
    assert metadata["source_step"] == str(STEP) and metadata["recipe"] == RECIPE
    assert metadata["source_format"] == OUR_FORMAT and metadata["source_file"] == "last.pt"
    fp32_bytes = sum(t.numel() * 4 for t in build_model(tiny_config()).state_dict().values())
    assert bundle.stat().st_size < 0.51 * fp32_bytes

    loaded = load_weights(bundle)
    assert loaded.source_format == OUR_FORMAT and loaded.preset is None
    assert loaded.info["step"] == STEP and loaded.info["recipe"] == RECIPE
    assert all(t.dtype == torch.float32 for t in loaded.state_dict.values())


def test_non_float_tensors_are_stored_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "mixed.safetensors"
    weights = {"w": torch.linspace(-2, 2, 7), "count": torch.tensor([3, 70000], dtype=torch.int64)}
    write_bundle(path, weights, {"note": "x"})
    read, metadata = read_bundle(path)
    assert read["count"].dtype == torch.int64 and torch.equal(read["count"], weights["count"])
    assert read["w"].dtype == torch.float32 and torch.equal(read["w"], weights["w"].half().float())
    assert metadata == {"note": "x", "bundle_format": BUNDLE_FORMAT}
    assert not path.with_name(path.name + ".tmp").exists()


def test_a_weight_beyond_float16_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    with pytest.raises(CheckpointError, match="'huge' has values beyond float16's range"):
        write_bundle(path, {"huge": torch.tensor([1e6])}, {})
    assert not path.exists()


def test_loading_never_unpickles(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called on a bundle")

    monkeypatch.setattr(torch, "load", refuse)
    assert load_weights(bundle).config.name == "tiny_faces"


def test_recognised_by_content_under_another_name(bundle: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(bundle.read_bytes())
    assert load_weights(renamed).info["step"] == STEP


# --------------------------------------------------------------------------------------------
# Files that do not fit: one line naming the file and the key


def _rename(weights: dict) -> str:
    weights["depth_net.stray.weight"] = weights.pop(sorted(weights)[0])
    return "depth_net.stray.weight"


def _reshape(weights: dict) -> str:
    key = sorted(weights)[0]
    weights[key] = weights[key].flatten()[:-1]
    return key


def _drop(weights: dict) -> str:
    key = sorted(weights)[-1]
    del weights[key]
    return key


@pytest.mark.parametrize(
    ("change", "fragment"),
    [(_rename, "is not a weight of that model"), (_reshape, "has shape"), (_drop, "no weight for")],
    ids=["unexpected-key", "wrong-shape", "missing-key"],
)
def test_weights_that_do_not_fit_are_one_line(
    bundle: Path, tmp_path: Path, photos: Path, change, fragment: str
) -> None:
    weights, metadata = read_bundle(bundle)
    key = change(weights)
    bad = tmp_path / "bad.safetensors"
    write_bundle(bad, weights, metadata)
    with pytest.raises(CheckpointError, match=fragment) as caught:
        load_weights(bad)
    assert str(bad) in str(caught.value) and repr(key) in str(caught.value)
    args = ["reconstruct", str(photos), "--checkpoint", str(bad), "--out", str(tmp_path / "o")]
    assert_one_line_error(runner.invoke(app, [*args, "--device", "cpu"]), str(bad), key)


def test_a_safetensors_file_that_is_not_ours_is_one_line(tmp_path: Path, photos: Path) -> None:
    foreign = tmp_path / "foreign.safetensors"
    save_file({"encoder.weight": torch.zeros(2)}, foreign, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not an unsup3d model bundle"):
        load_weights(foreign)
    args = ["reconstruct", str(photos), "--checkpoint", str(foreign), "--out", str(tmp_path / "o")]
    assert_one_line_error(runner.invoke(app, args), str(foreign), "not an unsup3d model bundle")

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not safetensors at all")
    with pytest.raises(CheckpointError, match="cannot read .*garbage.safetensors as safetensors"):
        load_weights(garbage)


def test_a_newer_bundle_format_or_a_broken_config_is_refused(bundle: Path, tmp_path: Path):
    weights, metadata = read_bundle(bundle)
    newer = tmp_path / "newer.safetensors"
    save_file(weights, newer, metadata={**metadata, "bundle_format": "unsup3d-bundle/9"})
    with pytest.raises(CheckpointError, match="'unsup3d-bundle/9'; this program reads"):
        load_weights(newer)
    broken = tmp_path / "broken.safetensors"
    write_bundle(broken, weights, {**metadata, "config": '{"model": {"no_such_key": 1}}'})
    with pytest.raises(CheckpointError, match="without a usable config .*no_such_key"):
        load_weights(broken)


# --------------------------------------------------------------------------------------------
# unsup3d convert


def test_convert_cli_writes_a_bundle_and_keeps_pt_output(checkpoint: Path, tmp_path: Path):
    out = tmp_path / "model.safetensors"
    args = ["convert", str(checkpoint), "--out", str(out), "--recipe", "two steps"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "float16 bundle" in result.stdout
    assert load_weights(out).info["recipe"] == "two steps"
    assert_one_line_error(runner.invoke(app, args), str(out), "--force")
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0

    pt = ["convert", str(checkpoint), "--out", str(tmp_path / "again.pt")]
    assert_one_line_error(runner.invoke(app, pt), "already an unsup3d checkpoint")
    assert_one_line_error(runner.invoke(app, [*pt, "--recipe", "x"]), "--recipe")
    from_bundle = ["convert", str(out), "--out", str(tmp_path / "back.pt")]
    assert_one_line_error(runner.invoke(app, from_bundle), str(out), "model bundle")


def test_convert_an_original_checkpoint_to_a_bundle(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    nets = {name: random_state_dict(name, generator) for name in ("netD", "netA", "netL", "netV")}
    original = tmp_path / "checkpoint030.pth"
    torch.save({**nets, "epoch": 30}, original)
    out = tmp_path / "cat.safetensors"
    converted = convert_checkpoint(original, out, preset="cat")
    loaded = load_weights(out)
    assert loaded.config.name == "cat" and loaded.config.model.z_translation_range == 0.1
    assert loaded.config.model.use_confidence is False
    for key, tensor in converted.state_dict.items():
        assert torch.equal(loaded.state_dict[key], tensor.half().float()), key
    with safe_open(out, framework="pt") as reader:
        metadata = reader.metadata()
    assert metadata["source_preset"] == "cat" and metadata["source_step"] == ""


def test_save_bundle_refuses_weights_that_do_not_fit(checkpoint: Path, tmp_path: Path) -> None:
    loaded = load_weights(checkpoint)
    weights = dict(loaded.state_dict)
    _drop(weights)
    broken = type(loaded)(loaded.config, weights, loaded.source_format, None, loaded.info)
    with pytest.raises(CheckpointError, match="no weight for"):
        save_bundle(broken, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


# --------------------------------------------------------------------------------------------
# The bundled model: the default of reconstruct, eval and export


@pytest.fixture
def installed(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``bundle`` as this install's bundled model."""
    monkeypatch.setattr(unsup3d_cli.weights, "BUNDLED_MODEL", bundle)
    return bundle


@pytest.fixture
def not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An install without a bundled model."""
    missing = tmp_path / "weights" / "synth_faces.safetensors"
    monkeypatch.setattr(unsup3d_cli.weights, "BUNDLED_MODEL", missing)
    return missing


def test_reconstruct_uses_the_bundled_model_by_default(installed, photos, tmp_path) -> None:
    out = tmp_path / "recon"
    args = ["reconstruct", str(photos), "--out", str(out), "--device", "cpu"]
    result = runner.invoke(app, [*args, "--no-detect-faces"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "photo0" / "result.json").read_text())
    assert record["checkpoint"] == str(installed)


def test_export_and_eval_use_the_bundled_model_by_default(
    installed, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meshes = tmp_path / "meshes"
    args = ["export", str(photos), "--out", str(meshes), "--device", "cpu", "--no-detect-faces"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in meshes.glob("*.obj")) == ["photo0.obj", "photo1.obj"]

    split = tmp_path / "synth"
    synth = ["synth", str(split), "--num", "4", "--split", "0,0,1"]
    assert runner.invoke(app, synth).exit_code == 0
    monkeypatch.chdir(tmp_path)  # the report goes to the current folder, not the install
    args = ["eval", "--data", str(split / "test"), "--device", "cpu", "--crop", "none"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["rows"][0]["checkpoint"] == str(installed)

    (tmp_path / "eval.json").unlink()  # 'bundled' names it beside a baseline
    result = runner.invoke(app, [*args, "--checkpoint", "bundled", "--baseline", "const"])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "eval.json").read_text())["rows"]
    assert len(rows) == 2 and rows[0]["checkpoint"] == str(installed)


def test_without_a_bundled_model_each_command_says_pass_checkpoint(
    not_installed: Path, photos: Path, tmp_path: Path
) -> None:
    with pytest.raises(CheckpointError, match="no bundled model in this install"):
        bundled_model_path()
    expected = f"no bundled model in this install ({not_installed}); pass --checkpoint"
    commands = {
        "reconstruct": ["reconstruct", str(photos), "--out", str(tmp_path / "o")],
        "export": ["export", str(photos), "--out", str(tmp_path / "m")],
        "eval": ["eval", "--data", str(tmp_path)],
    }
    for name, args in commands.items():
        result = runner.invoke(app, [*args, "--device", "cpu"])
        assert_one_line_error(result, expected)
        assert not (tmp_path / "o").exists() and not (tmp_path / "m").exists(), name
    assert "nothing to evaluate" in result.stderr and "--baseline" in result.stderr


def test_bundled_model_path_when_installed(installed: Path) -> None:
    assert bundled_model_path() == installed


@pytest.mark.parametrize("command", ["reconstruct", "eval", "export"])
def test_help_names_the_bundled_default(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())  # rich wraps it in a panel
    assert "bundled with this install" in text
