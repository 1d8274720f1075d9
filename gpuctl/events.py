"""How core code reports progress without printing: the CLI passes a Reporter and renders it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

#: called with the bytes done so far (a running total, not a delta)
ProgressUpdate = Callable[[int], None]

LayerPhase = Literal["waiting", "downloading", "extracting", "done", "cached"]


@dataclass(frozen=True)
class LayerProgress:
    """One layer of an image pull: its phase and the bytes downloaded of its (compressed) size."""

    layer: str
    phase: LayerPhase
    done_bytes: int = 0
    #: None until the registry has told the size
    total_bytes: int | None = None


#: called whenever a layer of a pull changes
LayerUpdate = Callable[[LayerProgress], None]


class Reporter(Protocol):
    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def step(self, message: str) -> AbstractContextManager[None]:
        """A long step: shown as a spinner with elapsed time on a TTY, as plain lines otherwise."""
        ...

    def transfer(self, message: str, total: int) -> AbstractContextManager[ProgressUpdate]:
        """A transfer of ``total`` bytes: bar, rate and time left on a TTY, a line now and then otherwise.

        The block reports progress through the callable it is given.
        """
        ...

    def layers(self, message: str) -> AbstractContextManager[LayerUpdate]:
        """An image pull, layer by layer: a bar per layer (bytes, rate) on a TTY, a line now and then otherwise."""
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

    @contextmanager
    def transfer(self, message: str, total: int) -> Iterator[ProgressUpdate]:
        yield lambda done: None

    @contextmanager
    def layers(self, message: str) -> Iterator[LayerUpdate]:
        yield lambda layer: None
