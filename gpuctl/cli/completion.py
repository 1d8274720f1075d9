"""``gpuctl completion SHELL``: print the shell completion script (also shipped in completions/)."""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_GPUCTL_COMPLETE"


def completion_script(shell: str) -> str:
    """The completion script click generates for ``shell``."""
    from click.shell_completion import get_completion_class

    from gpuctl.cli import cli

    completion_class = get_completion_class(shell)
    if completion_class is None:
        raise ValueError(f"unsupported shell {shell}")
    return completion_class(cli, {}, "gpuctl", COMPLETE_VAR).source()


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(gpuctl completion bash)"    (in ~/.bashrc)
    zsh:   eval "$(gpuctl completion zsh)"     (in ~/.zshrc)
    fish:  gpuctl completion fish > ~/.config/fish/completions/gpuctl.fish
    """
    click.echo(completion_script(shell), nl=False)
