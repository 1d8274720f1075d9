"""Ctrl-C and SIGTERM during a deploy: both interrupt it, and neither interrupts its cleanup."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from gpuctl.events import Reporter

_HANDLED = (signal.SIGINT, signal.SIGTERM)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def terminate_interrupts() -> Iterator[None]:
    """Within the block SIGTERM raises KeyboardInterrupt, exactly like Ctrl-C."""
    if not _main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def shielded(reporter: Reporter) -> Iterator[None]:
    """Within the block SIGINT and SIGTERM only print a note: a half-done cleanup would leave things billing."""
    if not _main_thread():
        yield
        return

    def note(_signum: int, _frame: FrameType | None) -> None:
        reporter.warn("cleaning up first; if killed, 'gpuctl down NAME' finishes the cleanup from the state file")

    previous = {sig: signal.signal(sig, note) for sig in _HANDLED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
