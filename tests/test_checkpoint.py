"""Tests of atomic checkpoints, their rotation and the JSONL metrics writer."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from unsup3d_cli.engine.checkpoint import (
    CHECKPOINT_VERSION,
    CheckpointError,
    latest_checkpoint,
    list_step_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    step_checkpoint_name,
)
from unsup3d_cli.engine.logging import MetricsWriter, setup_logging


def _touch_steps(folder: Path, steps: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for step in steps:
        save_checkpoint(folder / step_checkpoint_name(step), {"step": step})


# ---------------------------------------------------------------------------- save / load


def test_save_load_round_trip_atomic(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    state = {"model": model.state_dict(), "step": 12, "epoch": 1, "config": {"name": "x"}}
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    save_checkpoint(path, state)
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no .tmp left
    assert "version" not in state  # caller's dict untouched
    loaded = load_checkpoint(path)
    assert loaded["version"] == CHECKPOINT_VERSION
    assert loaded["program"] == "unsup3d_cli"
    assert (loaded["step"], loaded["epoch"], loaded["config"]) == (12, 1, {"name": "x"})
    for key, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded["model"][key], tensor)


def test_save_overwrites_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_failed_save_keeps_previous_file_and_no_tmp(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    with pytest.raises(Exception):  # noqa: B017 (any pickling error)
        save_checkpoint(path, {"step": 2, "bad": lambda: None})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.pt"
    with pytest.raises(CheckpointError, match="not found") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_load_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"\x00\x01 definitely not a torch file \xff" * 10)
    with pytest.raises(CheckpointError, match="cannot read checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "payload",
    [{"model": {}, "step": 3}, {"program": "someone_else", "version": 1}, [1, 2, 3]],
    ids=["no-marker", "other-program", "not-a-dict"],
)
def test_load_foreign_file(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "foreign.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="not an unsup3d_cli checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_load_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    torch.save({"program": "unsup3d_cli", "version": CHECKPOINT_VERSION + 1}, path)
    with pytest.raises(CheckpointError, match="format version"):
        load_checkpoint(path)


# ---------------------------------------------------------------------------- names / rotation


def test_step_checkpoint_name() -> None:
    assert step_checkpoint_name(1234) == "step-000001234.pt"
    assert step_checkpoint_name(0) == "step-000000000.pt"
    with pytest.raises(ValueError):
        step_checkpoint_name(-1)


def test_list_sorted_by_step_ignores_others(tmp_path: Path) -> None:
    _touch_steps(tmp_path, [30, 5, 1000000000, 200])
    (tmp_path / "last.pt").write_bytes(b"")
    (tmp_path / "step-xyz.pt").write_bytes(b"")
    (tmp_path / "step-000000007.pt.tmp").write_bytes(b"")
    names = [p.name for p in list_step_checkpoints(tmp_path)]
    assert names == [
        "step-000000005.pt",
        "step-000000030.pt",
        "step-000000200.pt",
        "step-1000000000.pt",
    ]
    assert list_step_checkpoints(tmp_path / "missing") == []


def test_prune_keeps_newest_and_never_last(tmp_path: Path) -> None:
    _touch_steps(tmp_path, [10, 20, 30, 40])
    save_checkpoint(tmp_path / "last.pt", {"step": 40})
    removed = prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in removed] == ["step-000000010.pt", "step-000000020.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last.pt",
        "step-000000030.pt",
        "step-000000040.pt",
    ]
    assert prune_checkpoints(tmp_path, keep=2) == []
    prune_checkpoints(tmp_path, keep=0)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_prune_negative_keeps_all(tmp_path: Path) -> None:
    _touch_steps(tmp_path, [1, 2, 3])
    assert prune_checkpoints(tmp_path, keep=-1) == []
    assert len(list_step_checkpoints(tmp_path)) == 3


def test_latest_checkpoint(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    _touch_steps(tmp_path, [3, 11])
    assert latest_checkpoint(tmp_path) == tmp_path / "step-000000011.pt"
    save_checkpoint(tmp_path / "last.pt", {"step": 11})
    assert latest_checkpoint(tmp_path) == tmp_path / "last.pt"


# ---------------------------------------------------------------------------- metrics


def test_metrics_writer_appends_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "run" / "metrics.jsonl"
    with MetricsWriter(path) as writer:
        writer.write(
            {"step": 1, "loss": torch.tensor(0.5), "lr": np.float32(1e-4), "split": "train"}
        )
        writer.write({"step": 2, "loss": float("nan"), "n": np.int64(3), "ok": True})
        assert len(path.read_text().splitlines()) == 2  # flushed at each write
    with MetricsWriter(path) as writer:  # resume: append, do not truncate
        writer.write({"step": 3, "nested": {"side": 0.1, "dims": (1, 2)}})
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert records[0]["loss"] == 0.5 and math.isclose(records[0]["lr"], 1e-4, rel_tol=1e-6)
    assert records[1]["loss"] is None and records[1]["n"] == 3 and records[1]["ok"] is True
    assert records[2]["nested"] == {"side": 0.1, "dims": [1, 2]}


def test_metrics_writer_rejects_bad_values_and_closed(tmp_path: Path) -> None:
    writer = MetricsWriter(tmp_path / "m.jsonl")
    with pytest.raises(TypeError, match="'loss'"):
        writer.write({"loss": torch.zeros(2)})
    with pytest.raises(TypeError, match="'obj'"):
        writer.write({"obj": object()})
    writer.close()
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write({"step": 1})
    assert (tmp_path / "m.jsonl").read_text() == ""


def test_setup_logging_is_idempotent() -> None:
    root = logging.getLogger()
    # an earlier test (a CLI run in this process) may have set it up already: start clean
    ours = [h for h in root.handlers if h.get_name() == "unsup3d_cli"]
    for handler in ours:
        root.removeHandler(handler)
    before = list(root.handlers)
    try:
        setup_logging()
        setup_logging(verbose=True)
        added = [h for h in root.handlers if h not in before]
        assert len(added) == 1
        assert logging.getLogger("unsup3d_cli").level == logging.DEBUG
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
        for handler in ours:
            root.addHandler(handler)
        logging.getLogger("unsup3d_cli").setLevel(logging.NOTSET)
