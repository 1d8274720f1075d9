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
from gpuctl.durations import format_duration
from gpuctl.events import LayerProgress, LayerUpdate, ProgressUpdate

#: how often a transfer prints a progress line when stderr is not a terminal
PLAIN_PROGRESS_EVERY_S = 10.0


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

    if app.quiet:  # the essential value: the first column, one per line
        for row in rows:
            click.echo(columns[0].cell(row))
        return
    cells = [[column.cell(row) for column in columns] for row in rows]
    texts = [(column.header, *(line[index] for line in cells)) for index, column in enumerate(columns)]
    widths, padding, collapse = _fit_widths(app.out.width, [max(map(len, t)) for t in texts],
                                            [max(map(_unbreakable, t)) for t in texts])
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=padding, collapse_padding=collapse)
    for column, width in zip(columns, widths, strict=True):
        table.add_column(column.header, justify=column.justify, overflow="fold", width=width)  # type: ignore[arg-type]
    for line in cells:
        table.add_row(*line)
    app.out.print(table)


def _fit_widths(total: int, natural: list[int], least: list[int]) -> tuple[list[int | None], tuple[int, int], bool]:
    """Column widths for a table ``total`` wide: the natural ones when they fit; else never below a column's
    longest word (a narrow terminal wraps between words, not inside them), with the gaps between columns
    shrunk (divider and padding: 3, collapsed 2, none 1) and the room left shared out by what each wants."""
    gaps = len(natural) - 1
    if sum(natural) + 3 * gaps <= total:
        return [None] * len(natural), (0, 1), False
    spare = total - sum(least)
    padding, collapse, gap = next(((p, c, g) for p, c, g in (((0, 1), False, 3), ((0, 1), True, 2), ((0, 0), False, 1))
                                   if spare >= g * gaps), ((0, 0), False, 1))
    widths = list(least)
    room = total - gap * gaps - sum(widths)
    while room > 0 and any(w < n for w, n in zip(widths, natural, strict=True)):
        wanting = max(range(len(widths)), key=lambda i: natural[i] - widths[i])
        widths[wanting] += 1
        room -= 1
    return list(widths), padding, collapse


#: a cell up to this long is never wrapped ("80 GB", "gpuctl 0.1", "1 x L40S")
_SHORT_CELL = 10


def _unbreakable(text: str) -> int:
    """The narrowest width ``text`` fits without breaking a word."""
    if len(text) <= _SHORT_CELL:
        return len(text)
    return max((len(word) for word in text.split()), default=0)


def info(app: App, message: str) -> None:
    """Progress and notes on stderr; silent under -q."""
    if not app.quiet:
        app.err.print(message, markup=False)


def warn(app: App, message: str) -> None:
    app.err.print(("[yellow]warning:[/] " if app.color else "warning: ") + _escape(message))


def format_bytes(count: float) -> str:
    """Decimal units, as the hub and rich show sizes: ``950 B``, ``12.3 MB``, ``140.0 GB``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


class PlainTransfer:
    """A transfer's progress as one line every ``every`` seconds (logs, CI) and a last line when done."""

    def __init__(self, write: Callable[[str], None], message: str, total: int, *,
                 every: float = PLAIN_PROGRESS_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.write, self.message, self.total, self.every, self.clock = write, message, total, every, clock
        self.start = self.last = clock()
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done
        now = self.clock()
        if now - self.last >= self.every and done < self.total:
            self.last = now
            rate = self._rate(now)
            left = f", {format_duration((self.total - done) / rate)} left" if rate > 0 else ""
            self.write(f"{self.message}: {format_bytes(done)} of {format_bytes(self.total)} "
                       f"({100 * done / self.total:.0f}%), {format_bytes(rate)}/s{left}")

    def finish(self) -> None:
        now = self.clock()
        self.write(f"{self.message}: {format_bytes(self.done)} in {now - self.start:.1f}s "
                   f"({format_bytes(self._rate(now))}/s)")

    def _rate(self, now: float) -> float:
        return self.done / (now - self.start) if now > self.start else 0.0


class PlainLayers:
    """An image pull as plain lines: one per finished layer, the whole pull every ``every`` seconds, a last line."""

    def __init__(self, write: Callable[[str], None], message: str, *, every: float = PLAIN_PROGRESS_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.write, self.message, self.every, self.clock = write, message, every, clock
        self.start = self.last = clock()
        self.layers: dict[str, LayerProgress] = {}

    def update(self, layer: LayerProgress) -> None:
        before = self.layers.get(layer.layer)
        self.layers[layer.layer] = layer
        if layer.phase == "done" and (before is None or before.phase != "done"):
            size = f" ({format_bytes(layer.total_bytes)})" if layer.total_bytes else ""
            self.write(f"{self.message}: layer {layer.layer} done{size}")
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.write(f"{self.message}: {self._summary(now)}")

    def finish(self) -> None:
        self.write(f"{self.message}: {self._summary(self.clock())}, done")

    def _summary(self, now: float) -> str:
        fetched = [layer for layer in self.layers.values() if layer.phase != "cached"]
        done = sum(layer.done_bytes for layer in fetched)
        known = [layer.total_bytes for layer in fetched if layer.total_bytes is not None]
        size = f" of {format_bytes(sum(known))}" if len(known) == len(fetched) and known else ""
        finished = sum(layer.phase in ("done", "cached") for layer in self.layers.values())
        rate = done / (now - self.start) if now > self.start else 0.0
        return (f"{finished} of {len(self.layers)} layers, {format_bytes(done)}{size} in "
                f"{now - self.start:.1f}s ({format_bytes(rate)}/s)")


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

    @contextmanager
    def transfer(self, message: str, total: int) -> Iterator[ProgressUpdate]:
        if self.app.quiet:
            yield lambda done: None
            return
        if self.app.color and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                       TimeRemainingColumn())
            with Progress(*columns, console=self.app.err) as progress:
                task = progress.add_task(message, total=total)
                yield lambda done: progress.update(task, completed=done)
            return
        plain = PlainTransfer(lambda line: info(self.app, line), message, total)
        info(self.app, f"{message}: {format_bytes(total)} ...")
        yield plain.update
        plain.finish()

    @contextmanager
    def layers(self, message: str) -> Iterator[LayerUpdate]:
        if self.app.quiet:
            yield lambda layer: None
            return
        if self.app.color and sys.stderr.isatty():
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
            with Progress(*columns, console=self.app.err) as progress:
                progress.console.print(message, markup=False)
                tasks: dict[str, Any] = {}

                def update(layer: LayerProgress) -> None:
                    if layer.layer not in tasks:
                        tasks[layer.layer] = progress.add_task("", total=None)
                    progress.update(tasks[layer.layer], description=f"{layer.layer} {layer.phase}",
                                    completed=layer.done_bytes, total=layer.total_bytes)

                yield update
            return
        plain = PlainLayers(lambda line: info(self.app, line), message)
        info(self.app, f"{message} ...")
        yield plain.update
        plain.finish()
