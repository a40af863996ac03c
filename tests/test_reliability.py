"""Training survives what machines do to it: a full disk, and kill -9 at any moment."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, runner

from unsup3d_cli.cli import app
from unsup3d_cli.engine import checkpoint as checkpoint_module
from unsup3d_cli.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "smoke.yaml")
SMALL = ["data.synthetic_train_size=32", "data.synthetic_val_size=8", "train.batch_size=8",
         "train.tensorboard=false", "train.log_every_steps=1"]  # fmt: skip


def _sets(*items: str) -> list[str]:
    return [arg for item in (*SMALL, *items) for arg in ("--set", item)]


def _logged_steps(run: Path) -> int:
    """Lines in the run's metrics.jsonl (0 before it exists)."""
    metrics = run / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.is_file() else 0


def _full_disk_after(nbytes: int):
    """A ``torch.save`` that writes ``nbytes`` then fails as a full disk does."""

    def save(obj, handle, *args, **kwargs):
        handle.write(b"\0" * nbytes)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return save


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"step": 1})
    monkeypatch.setattr(checkpoint_module.torch, "save", _full_disk_after(1000))
    with pytest.raises(CheckpointError, match="No space left on device.*previous last.pt is kept"):
        save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no partial file


def test_train_ends_with_one_line_on_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    args = ["train", "--config", SMOKE, "--device", "cpu", "--run-dir", str(run)]
    first = runner.invoke(app, [*args, *_sets("train.num_epochs=1")])
    assert first.exit_code == 0, first.output
    before = load_checkpoint(run / "checkpoints" / "last.pt")
    monkeypatch.setattr(checkpoint_module.torch, "save", _full_disk_after(4096))
    result = runner.invoke(app, [*args, *_sets("train.num_epochs=2")])
    assert_one_line_error(result, str(run / "checkpoints" / "last.pt"), "No space left")
    monkeypatch.undo()
    after = load_checkpoint(run / "checkpoints" / "last.pt")
    assert after["step"] == before["step"]
    assert all(torch.equal(after["model"][k], v) for k, v in before["model"].items())


@pytest.mark.slow
def test_kill_9_at_random_moments_leaves_loadable_checkpoints_and_resumes(tmp_path) -> None:
    run = tmp_path / "run"
    command = [sys.executable, "-m", "unsup3d_cli", "train", "--config", SMOKE, "--device",
               "cpu", "--run-dir", str(run), *_sets("train.num_epochs=40")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(0)
    steps_seen = []
    for _ in range(3):
        logged = _logged_steps(run)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        # once this launch is training (a new step logged, a checkpoint on disk), at a random
        # moment of its steps and checkpoint writes
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            _logged_steps(run) > logged and (run / "checkpoints" / "last.pt").is_file()
        ):
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        saved = sorted((run / "checkpoints").glob("*.pt"))
        assert saved, "no checkpoint after the kill"
        for path in saved:  # every checkpoint on disk is whole
            load_checkpoint(path)
        steps_seen.append(load_checkpoint(run / "checkpoints" / "last.pt")["step"])
    assert steps_seen == sorted(steps_seen)  # a kill never loses a saved checkpoint
    last = steps_seen[-1]
    done = subprocess.run([*command, "--set", "train.max_steps=" + str(last + 3)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == last + 3
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    resumed = [r["step"] for r in records if r["kind"] == "train"][-3:]
    assert resumed == [last + 1, last + 2, last + 3]  # continued from the last checkpoint
