"""An image pull's per-layer progress as plain lines (what a log or CI shows; a terminal gets bars)."""

from __future__ import annotations

from gpuctl.cli.output import PlainLayers
from gpuctl.events import LayerProgress


def test_plain_lines_name_each_finished_layer_and_the_whole_pull_now_and_then() -> None:
    now = [0.0]
    lines: list[str] = []
    plain = PlainLayers(lines.append, "pulling img on host", every=10.0, clock=lambda: now[0])
    plain.update(LayerProgress("aaa", "waiting"))
    plain.update(LayerProgress("bbb", "cached"))
    now[0] = 4.0
    plain.update(LayerProgress("aaa", "downloading", 40_000_000, 100_000_000))
    assert lines == []
    now[0] = 10.0
    plain.update(LayerProgress("aaa", "downloading", 80_000_000, 100_000_000))
    now[0] = 12.5
    plain.update(LayerProgress("aaa", "done", 100_000_000, 100_000_000))
    plain.update(LayerProgress("aaa", "done", 100_000_000, 100_000_000))
    plain.finish()
    assert lines == [
        "pulling img on host: 1 of 2 layers, 80.0 MB of 100.0 MB in 10.0s (8.0 MB/s)",
        "pulling img on host: layer aaa done (100.0 MB)",
        "pulling img on host: 2 of 2 layers, 100.0 MB of 100.0 MB in 12.5s (8.0 MB/s), done",
    ]


def test_a_terminal_gets_a_bar_per_layer(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import io

    from gpuctl.app import App
    from gpuctl.cli.output import ConsoleReporter

    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal = io.StringIO()
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stderr", terminal)
    app = App()
    assert app.color
    with ConsoleReporter(app).layers("pulling img on host") as update:
        update(LayerProgress("aaa", "downloading", 5_000_000, 10_000_000))
        update(LayerProgress("bbb", "cached"))
        update(LayerProgress("aaa", "done", 10_000_000, 10_000_000))
    shown = terminal.getvalue()
    assert "pulling img on host" in shown and "aaa done" in shown and "bbb cached" in shown
