"""Options shared by many commands; they set flags on the App so they work before or after the verb."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _set_flag(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value:
            setattr(ctx.find_root().obj, attr, value)

    return callback


def json_option(func: F) -> F:
    """``--json``: machine-readable output on stdout (same as the global flag)."""
    return click.option("--json", "json_output", is_flag=True, expose_value=False,
                        callback=_set_flag("json"), help="Print JSON on stdout.")(func)


def quiet_option(func: F) -> F:
    return click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_flag("quiet"),
                        help="Print only the essential value.")(func)


def yes_option(func: F) -> F:
    return click.option("-y", "--yes", is_flag=True, expose_value=False, callback=_set_flag("yes"),
                        help="Answer yes to confirmations.")(func)


#: the root's flags every command also takes after its name: (option strings, App attribute, help)
GLOBAL_FLAGS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("--json",), "json", "Print JSON on stdout."),
    (("-q", "--quiet"), "quiet", "Print only the essential value."),
    (("-y", "--yes"), "yes", "Answer yes to confirmations."),
    (("--no-color",), "no_color", "Plain output without colour."),
)


def _add_verbosity(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    """``-v`` after the command adds to the root's count, and logging follows the total."""
    if value:
        from gpuctl.logs import configure_logging

        app = ctx.find_root().obj
        app.verbose += value
        configure_logging(app.verbose, lambda: app.registry.config_keys().values())


def with_global_flags(command: click.Command) -> click.Command:
    """Let ``command`` (and a group's subcommands) take the root's flags after its name: ``gpuctl down --all -y``.

    A flag the command declares itself is left as it is; the others are added hidden (the root's help
    shows them). Done once per command object.
    """
    if getattr(command, "_gpuctl_global_flags", False):
        return command
    taken = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for opts, attr, help_text in GLOBAL_FLAGS:
        if taken.isdisjoint(opts):
            command.params.append(click.Option(list(opts), is_flag=True, expose_value=False, hidden=True,
                                               callback=_set_flag(attr), help=help_text))
    if taken.isdisjoint(("-v", "--verbose")):
        command.params.append(click.Option(["-v", "--verbose"], count=True, expose_value=False, hidden=True,
                                           callback=_add_verbosity, help="Log what gpuctl does on stderr."))
    command._gpuctl_global_flags = True  # type: ignore[attr-defined]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_global_flags(sub)
    return command
