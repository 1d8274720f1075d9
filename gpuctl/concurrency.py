"""Run blocking calls side by side, each in its own daemon thread, with a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    """What one call came to: a value, an error, or nothing yet when its deadline passed."""

    value: T | None = None
    error: BaseException | None = None
    finished: bool = False
    seconds: float = 0.0


def run_all(calls: Mapping[K, Callable[[], T]], *, timeout: float | None = None) -> dict[K, Outcome[T]]:
    """Start every call at once and wait up to ``timeout`` seconds for each (``None``: no limit).

    The threads are daemons on purpose: a call still running at its deadline is abandoned, and
    must not hold the process open afterwards (``concurrent.futures`` joins its workers at exit).
    """
    start = time.monotonic()
    outcomes: dict[K, Outcome[T]] = {key: Outcome() for key in calls}
    lock = threading.Lock()

    def work(key: K, call: Callable[[], T]) -> None:
        try:
            value, error = call(), None
        except BaseException as exc:  # reported to the caller, never lost in a thread
            value, error = None, exc
        with lock:
            outcomes[key] = Outcome(value, error, True, time.monotonic() - start)

    threads = [threading.Thread(target=work, args=(key, call), daemon=True, name=f"gpuctl-{key}")
               for key, call in calls.items()]
    for thread in threads:
        thread.start()
    deadline = None if timeout is None else start + timeout
    for thread in threads:
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    with lock:
        return dict(outcomes)


def values_or_raise(outcomes: Mapping[K, Outcome[T]]) -> dict[K, T]:
    """The values of calls that all finished; the first error (in call order) is raised as is."""
    for outcome in outcomes.values():
        if outcome.error is not None:
            raise outcome.error
    return {key: outcome.value for key, outcome in outcomes.items()}  # type: ignore[misc]
