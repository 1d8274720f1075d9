"""Pauses between the polls of a wait (an instance starting, an engine loading, an instance going away)."""

from __future__ import annotations

from collections.abc import Iterator

#: the first pause: most waits on a machine that is already up end within it
FIRST_PAUSE_S = 0.25


def pauses(cap: float) -> Iterator[float]:
    """Short at first, doubling up to ``cap`` seconds, then ``cap`` for good.

    A wait that ends early is not stretched to a whole poll interval, and a long one still asks the
    provider no more often than every ``cap`` seconds after the first few polls.
    """
    pause = min(FIRST_PAUSE_S, cap)
    while True:
        yield pause
        pause = min(pause * 2, cap)
