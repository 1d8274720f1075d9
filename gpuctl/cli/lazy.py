"""A click group that imports a subcommand only when it runs (or when its own help is asked for)."""

from __future__ import annotations

import importlib

import click

from gpuctl.cli.commands import ALIASES, COMMANDS
from gpuctl.errors import UsageError


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(ALIASES.get(cmd_name, cmd_name))
        if entry is None:
            return None
        command = getattr(importlib.import_module(entry.module), entry.attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry.module}.{entry.attr} is not a click command")
        from gpuctl.cli.options import with_global_flags

        return with_global_flags(command)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        command = self.get_command(ctx, name)
        if command is None:
            if name.startswith("-"):
                # an unknown option before the verb: let click report it
                return super().resolve_command(ctx, args)
            import difflib  # only for a mistyped command

            close = difflib.get_close_matches(name, [*COMMANDS, *ALIASES], n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "see 'gpuctl --help' for the commands"
            raise UsageError(f"no such command '{name}'", hint)
        return name, command, args[1:]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, entry.short_help) for name, entry in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
