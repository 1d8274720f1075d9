"""Rendering for every command: one row model, two renderers (rich table on stdout, or JSON)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click
from pydantic import BaseModel

from gpuctl.app import App


@dataclass(frozen=True)
class Column:
    header: str
    value: str | Callable[[Any], Any]
    justify: str = "left"

    def cell(self, row: Any) -> str:
        raw = self.value(row) if callable(self.value) else getattr(row, self.value)
        return "-" if raw is None else str(raw)


def print_json(data: Any) -> None:
    """Stable, indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def dump(rows: Sequence[BaseModel]) -> list[dict[str, Any]]:
    return [row.model_dump(mode="json") for row in rows]


def print_rows(app: App, rows: Sequence[BaseModel], columns: Sequence[Column], *, empty: str) -> None:
    """Rows as JSON (``--json``) or as a table; an empty listing says so on stderr."""
    if app.json:
        print_json(dump(rows))
        return
    if not rows:
        info(app, empty)
        return
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column.header, justify=column.justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(column.cell(row) for column in columns))
    app.out.print(table)


def info(app: App, message: str) -> None:
    """Progress and notes on stderr; silent under -q."""
    if not app.quiet:
        app.err.print(message, markup=False)


def warn(app: App, message: str) -> None:
    app.err.print(("[yellow]warning:[/] " if app.color else "warning: ") + _escape(message))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


class ConsoleReporter:
    """The CLI's Reporter: spinners with elapsed time on a TTY, plain lines otherwise."""

    def __init__(self, app: App) -> None:
        self.app = app

    def info(self, message: str) -> None:
        info(self.app, message)

    def warn(self, message: str) -> None:
        warn(self.app, message)

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        start = time.monotonic()
        live = self.app.color and not self.app.quiet and sys.stderr.isatty()
        if live:
            with self.app.err.status(message):
                yield
        else:
            info(self.app, f"{message} ...")
            yield
        info(self.app, f"{message}: done ({time.monotonic() - start:.1f}s)")
