"""Output rules: data on stdout, progress on stderr, no spinners or colour off a TTY or under --json."""

from __future__ import annotations

import io

import pytest

from gpuctl.app import App
from gpuctl.cli.output import ConsoleReporter, warn


def test_plain_progress_lines_when_not_a_tty(capsys):
    reporter = ConsoleReporter(App())
    with reporter.step("launching"):
        pass
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0] == "launching ..."
    assert lines[1].startswith("launching: done (") and lines[1].endswith("s)")
    assert "\x1b[" not in captured.err


def test_quiet_silences_progress_but_not_warnings(capsys):
    app = App(quiet=True)
    reporter = ConsoleReporter(app)
    with reporter.step("launching"):
        reporter.info("detail")
    warn(app, "price changed [since] yesterday")
    captured = capsys.readouterr()
    assert captured.err == "warning: price changed [since] yesterday\n"


@pytest.mark.parametrize(("kwargs", "env"), [({"json": True}, {}), ({"no_color": True}, {}), ({}, {"NO_COLOR": "1"})])
def test_colour_off(monkeypatch, kwargs, env):
    monkeypatch.delenv("NO_COLOR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    fake_tty = io.StringIO()
    fake_tty.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stderr", fake_tty)
    assert App(**kwargs).color is False
    assert App().color is bool(not env)


def test_can_prompt_never_without_tty_or_under_json(monkeypatch):
    assert App(interactive=True).can_prompt is False  # pytest's stdin is not a TTY
    assert App(json=True, interactive=True).can_prompt is False
