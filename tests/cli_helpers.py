"""Helpers shared by the CLI tests: a CliRunner with plain output and a one-line-error check."""

from __future__ import annotations

from typer.testing import CliRunner


def make_runner() -> CliRunner:
    """A runner with wide, colourless output and stderr kept apart from stdout."""
    env = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    try:
        return CliRunner(env=env, mix_stderr=False)  # click < 8.2 mixes stderr in by default
    except TypeError:
        return CliRunner(env=env)  # newer versions always capture stderr separately


runner = make_runner()


def assert_one_line_error(result, *fragments: str) -> None:
    """Exit code 1, a single ``Error: ...`` line on stderr naming each fragment, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # handled, not crashed
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
