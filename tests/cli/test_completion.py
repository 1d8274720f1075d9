"""Shell completion scripts: printed by ``gpuctl completion`` and kept current in completions/."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuctl.cli.completion import completion_script

COMPLETIONS = Path(__file__).resolve().parents[2] / "completions"
FILES = {"bash": "gpuctl.bash", "zsh": "_gpuctl", "fish": "gpuctl.fish"}


@pytest.mark.parametrize("shell", sorted(FILES))
def test_shipped_completions_are_current(shell):
    shipped = (COMPLETIONS / FILES[shell]).read_text()
    assert shipped == completion_script(shell), (
        f"completions/{FILES[shell]} is stale: run python -m gpuctl completion {shell} > completions/{FILES[shell]}"
    )


@pytest.mark.parametrize("shell", sorted(FILES))
def test_command_prints_script(gpuctl, shell):
    result = gpuctl("completion", shell)
    assert result.exit_code == 0
    assert "_GPUCTL_COMPLETE" in result.stdout
    assert result.stdout == completion_script(shell)


def test_completion_resolves_subcommands(monkeypatch):
    from click.shell_completion import ShellComplete

    from gpuctl.cli import cli

    completer = ShellComplete(cli, {}, "gpuctl", "_GPUCTL_COMPLETE")
    names = [item.value for item in completer.get_completions([], "pr")]
    assert names == ["prices", "providers"]
