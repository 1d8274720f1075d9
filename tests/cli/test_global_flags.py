"""The root's flags work before or after every command (issue 15: ``gpuctl down --all -y`` was refused)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import click
import pytest

from gpuctl.cli import cli
from gpuctl.cli.commands import COMMANDS
from gpuctl.logs import SecretFilter

_FLAGS = ("--json", "-q", "--quiet", "-y", "--yes", "--no-color", "-v", "-vv", "--verbose")


def _leaves() -> list[list[str]]:
    """Every command path: ['up'], ['weights', 'ls'], ..."""
    paths: list[list[str]] = []
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            paths += [[name, sub] for sub in command.commands]
        else:
            paths.append([name])
    return paths


@pytest.mark.parametrize("path", _leaves(), ids=lambda p: " ".join(p))
def test_every_command_takes_every_global_flag_after_its_name(gpuctl, path: list[str]) -> None:
    for flag in _FLAGS:
        result = gpuctl(*path, flag, "--help")
        assert result.exit_code == 0, f"{' '.join(path)} {flag}: {result.stderr}"


def test_down_all_takes_yes_after_the_command(gpuctl) -> None:
    result = gpuctl("down", "--all", "-y")
    assert result.exit_code == 0, result.stderr
    assert "nothing to do" in result.stderr


def test_a_flag_after_the_command_means_what_it_means_before(gpuctl) -> None:
    before, after = gpuctl("--json", "status"), gpuctl("status", "--json")
    assert before.exit_code == after.exit_code == 0
    assert before.stdout == after.stdout == "[]\n"



@pytest.fixture
def logging_restored() -> Iterator[logging.Logger]:
    """The root logger, with its handlers and the levels -v sets put back afterwards."""
    root, ours = logging.getLogger(), logging.getLogger("gpuctl")
    handlers, levels = list(root.handlers), (root.level, ours.level)
    yield root
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    ours.setLevel(levels[1])


def _log_handlers(root: logging.Logger) -> list[logging.Handler]:
    """gpuctl's own: the ones that scrub secrets."""
    return [h for h in root.handlers if any(isinstance(f, SecretFilter) for f in h.filters)]


@pytest.mark.parametrize(("args", "level"), [(("-v", "status"), logging.INFO), (("status", "-v"), logging.INFO),
                                             (("status", "-vv"), logging.DEBUG),
                                             (("-v", "status", "-v"), logging.DEBUG)])
def test_verbose_after_the_command_counts_as_before_it(gpuctl, logging_restored: logging.Logger,
                                                       args: tuple[str, ...], level: int) -> None:
    assert gpuctl(*args).exit_code == 0
    assert logging.getLogger("gpuctl").level == level
    assert len(_log_handlers(logging_restored)) == 1, "one handler, however the -v were split"
