"""How core code reports progress without printing: the CLI passes a Reporter and renders it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Reporter(Protocol):
    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def step(self, message: str) -> contextmanager[None]:  # type: ignore[valid-type]
        """A long step: shown as a spinner with elapsed time on a TTY, as plain lines otherwise."""
        ...


class NullReporter:
    """Swallows every report (library use, tests)."""

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        yield
