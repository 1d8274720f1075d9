"""The root's flags work before or after every command (issue 15: ``gpuctl down --all -y`` was refused)."""

from __future__ import annotations

import click
import pytest

from gpuctl.cli import cli
from gpuctl.cli.commands import COMMANDS

_FLAGS = ("--json", "-q", "--quiet", "-y", "--yes", "--no-color")


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
