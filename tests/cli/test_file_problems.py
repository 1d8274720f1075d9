"""Ordinary file problems are bad input (exit 2) naming the path and the cause, never 'unexpected' (issue 15)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from gpuctl.cli import run_translated
from gpuctl.errors import ExitCode

_GARBAGE = bytes(range(128, 256)) * 3


def _one_error_line(result, code: int) -> str:
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(hint: " in lines[0], result.stderr
    assert "unexpected" not in lines[0] and "Traceback" not in result.stderr
    return lines[0]


def test_state_json_a_directory(gpuctl, isolated: Path) -> None:
    (isolated / ".gpuctl" / "state.json").mkdir(parents=True)
    for args in (("status",), ("down", "--all"), ("gc",)):
        line = _one_error_line(gpuctl(*args), ExitCode.USAGE)
        assert str(isolated / ".gpuctl" / "state.json") in line and "Is a directory" in line


def test_dot_gpuctl_a_file(gpuctl, isolated: Path) -> None:
    (isolated / ".gpuctl").write_text("not a directory\n")
    for args in (("status",), ("down", "--all"), ("env",)):
        line = _one_error_line(gpuctl(*args), ExitCode.USAGE)
        assert str(isolated / ".gpuctl") in line and "is a file" in line
    env = {"RUNPOD_API_KEY": "k", "GPUCTL_RUNPOD_API_URL": "http://127.0.0.1:9"}
    result = gpuctl("up", "qwen2.5-7b", "--provider", "runpod", "-y", env=env)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert str(isolated / ".gpuctl") in line and "(hint: " in line
    assert (isolated / ".gpuctl").read_text() == "not a directory\n"


def test_binary_garbage_in_the_project_file(gpuctl, isolated: Path) -> None:
    (isolated / "gpuctl.yaml").write_bytes(_GARBAGE)
    for args in (("up", "--dry-run"), ("fit", "qwen2.5-7b")):
        line = _one_error_line(gpuctl(*args), ExitCode.USAGE)
        assert "gpuctl.yaml" in line and "not UTF-8" in line
    assert (isolated / "gpuctl.yaml").read_bytes() == _GARBAGE


def test_binary_garbage_in_the_config_file(gpuctl, isolated: Path) -> None:
    config = Path(os.environ["GPUCTL_CONFIG_DIR"]) / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_bytes(_GARBAGE)
    for args in (("config", "list"), ("prices", "-q"), ("up", "qwen2.5-7b", "--dry-run")):
        line = _one_error_line(gpuctl(*args), ExitCode.USAGE)
        assert "config.yaml" in line and "not UTF-8" in line
    assert config.read_bytes() == _GARBAGE


@pytest.mark.parametrize(("code", "cause"), [(errno.EACCES, "Permission denied"), (errno.EROFS, "Read-only"),
                                             (errno.ENOSPC, "No space left")])
def test_any_os_error_on_a_path_is_bad_input(capsys: pytest.CaptureFixture[str], code: int, cause: str) -> None:
    """Root ignores permission bits, so the errors themselves are raised: the translation is what is tested."""
    def fails() -> None:
        raise OSError(code, os.strerror(code), "/home/someone/.config/gpuctl")

    assert run_translated(fails) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/home/someone/.config/gpuctl" in err and cause in err and "(hint: " in err


def test_an_os_error_without_a_path_is_still_a_bug(capsys: pytest.CaptureFixture[str]) -> None:
    def fails() -> None:
        raise OSError("something odd")

    assert run_translated(fails) == ExitCode.UNEXPECTED


@pytest.mark.parametrize("ttl", ["99999999999d", "31d", "745h"])
def test_ttl_above_the_maximum(gpuctl, ttl: str) -> None:
    line = _one_error_line(gpuctl("up", "qwen2.5-7b", "--ttl", ttl, "--dry-run"), ExitCode.USAGE)
    assert "maximum" in line or "longer than a year" in line


def test_ttl_at_the_maximum_is_taken(gpuctl) -> None:
    assert gpuctl("up", "qwen2.5-7b", "--ttl", "30d", "--dry-run").exit_code == 0


def test_a_project_ttl_above_the_maximum(gpuctl, isolated: Path) -> None:
    (isolated / "gpuctl.yaml").write_text("ttl: 400d\n")
    line = _one_error_line(gpuctl("up", "qwen2.5-7b", "--dry-run"), ExitCode.USAGE)
    assert "gpuctl.yaml" in line and "ttl" in line
