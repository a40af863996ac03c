"""The ``unsup3d`` command line, driven in-process with typer's CliRunner."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from cli_helpers import assert_one_line_error, runner

from unsup3d_cli import __version__, api
from unsup3d_cli.cli import app

REPO_ROOT = Path(__file__).resolve().parents[1]
SMOKE_CONFIG = REPO_ROOT / "configs" / "smoke.yaml"
TRAIN_OPTIONS = ("--config", "-c", "--set", "--run-dir", "--device", "--resume", "--no-resume")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def invoke(*args: str):
    return runner.invoke(app, list(args))


def plain_stdout(result) -> str:
    return ANSI_ESCAPE.sub("", result.stdout)


def test_help_lists_train() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert re.search(r"^\W*train\b", plain_stdout(result), re.MULTILINE), plain_stdout(result)


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_train_help_documents_every_option() -> None:
    result = invoke("train", "--help")
    assert result.exit_code == 0
    for option in TRAIN_OPTIONS:
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", plain_stdout(result)), option
    train = typer.main.get_command(app).commands["train"]
    undocumented = [p.name for p in train.params if p.param_type_name == "option" and not p.help]
    assert not undocumented, f"options without help text: {undocumented}"


def test_train_missing_config_is_a_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-config.yaml"
    result = invoke("train", "--config", str(missing), "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(result, "no-such-config.yaml")
    assert not (tmp_path / "run").exists()


def test_train_unknown_override_key_is_a_one_line_error(tmp_path: Path) -> None:
    result = invoke(
        "train", "-c", str(SMOKE_CONFIG), "--set", "train.no_such_key=1",
        "--run-dir", str(tmp_path / "run"), "--device", "cpu",
    )  # fmt: skip
    assert_one_line_error(result, "no_such_key")
    assert not (tmp_path / "run").exists()


def test_train_unavailable_device_is_a_one_line_error(tmp_path: Path) -> None:
    result = invoke("train", "-c", str(SMOKE_CONFIG), "--device", "tpu", "--run-dir", str(tmp_path))
    assert_one_line_error(result, "tpu")


@pytest.mark.slow
def test_train_smoke_run_on_cpu(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = invoke(
        "train", "--config", str(SMOKE_CONFIG),
        "--set", "train.max_steps=2", "--set", "train.batch_size=4",
        "--set", "data.synthetic_train_size=8", "--set", "data.synthetic_val_size=4",
        "--run-dir", str(run_dir), "--device", "cpu", "--no-resume",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert str(run_dir) in result.stdout
    for name in ("config.yaml", "checkpoints/last.pt", "metrics.jsonl"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "metrics.jsonl").read_text().strip(), "metrics.jsonl is empty"


@pytest.mark.parametrize(
    ("error_name", "exit_code"), [("TrainingInterrupted", 130), ("TrainingError", 1)]
)
def test_training_errors_map_to_exit_codes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, error_name: str, exit_code: int
) -> None:
    error = getattr(api, error_name)

    def fake_train(*args, **kwargs):
        raise error("stopped at step 7; checkpoint saved")

    monkeypatch.setattr(api, "train", fake_train)
    result = invoke("train", "-c", str(SMOKE_CONFIG), "--device", "cpu", "--run-dir", str(tmp_path))
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "stopped at step 7" in result.stderr
    assert "Traceback" not in result.output


def test_unexpected_errors_are_not_swallowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken_train(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(api, "train", broken_train)
    result = invoke("train", "-c", str(SMOKE_CONFIG), "--device", "cpu", "--run-dir", str(tmp_path))
    assert isinstance(result.exception, ZeroDivisionError)
