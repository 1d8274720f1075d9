"""Download progress on the CLI: rich's bar on a terminal, a plain line now and then otherwise."""

from __future__ import annotations

import io

import pytest

from gpuctl.app import App
from gpuctl.cli.output import ConsoleReporter, PlainTransfer, format_bytes
from gpuctl.events import NullReporter


@pytest.mark.parametrize(("count", "text"), [(0, "0 B"), (999, "999 B"), (1_500, "1.5 kB"), (12_345_678, "12.3 MB"),
                                             (140e9, "140.0 GB"), (3.2e12, "3.2 TB")])
def test_sizes_in_decimal_units(count: float, text: str) -> None:
    assert format_bytes(count) == text


def test_plain_lines_every_interval_with_rate_and_time_left() -> None:
    now = [100.0]
    lines: list[str] = []
    transfer = PlainTransfer(lines.append, "downloading org/m", 10_000_000, every=10, clock=lambda: now[0])
    now[0] = 105
    transfer.update(1_000_000)  # under the interval: nothing yet
    now[0] = 110
    transfer.update(2_000_000)
    now[0] = 115
    transfer.update(3_000_000)
    now[0] = 120
    transfer.update(10_000_000)  # complete: the last line says so instead
    transfer.finish()
    assert lines == ["downloading org/m: 2.0 MB of 10.0 MB (20%), 200.0 kB/s, 40s left",
                     "downloading org/m: 10.0 MB in 20.0s (500.0 kB/s)"]


def test_the_console_reporter_prints_plain_transfer_lines_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with ConsoleReporter(App()).transfer("downloading org/m", 2_000) as update:
        update(2_000)
    captured = capsys.readouterr()
    assert captured.out == ""
    first, last = captured.err.splitlines()
    assert first == "downloading org/m: 2.0 kB ..."
    assert last.startswith("downloading org/m: 2.0 kB in ") and "\x1b[" not in captured.err


def test_quiet_and_null_reporters_show_no_transfer(capsys: pytest.CaptureFixture[str]) -> None:
    for reporter in (ConsoleReporter(App(quiet=True)), NullReporter()):
        with reporter.transfer("downloading", 10) as update:
            update(10)
    assert capsys.readouterr().err == ""


def test_a_terminal_gets_rich_progress_with_rate_and_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stderr", tty)
    app = App()
    from rich.console import Console

    app.__dict__["err"] = Console(file=tty, force_terminal=True, width=100)
    with ConsoleReporter(app).transfer("downloading org/m", 5_000_000) as update:
        update(5_000_000)
    shown = tty.getvalue()
    assert "downloading org/m" in shown and "5.0/5.0 MB" in shown
