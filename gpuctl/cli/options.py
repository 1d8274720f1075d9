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
