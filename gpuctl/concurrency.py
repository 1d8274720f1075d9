"""Run blocking calls side by side, each in its own daemon thread, with a deadline, or in a forked child."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

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


def can_fork() -> bool:
    """Whether ``ChildCall`` may start now: on Linux, and while this process runs no other thread.

    A forked child holds a copy of every lock, so one taken by another thread at that moment would
    never be released there; other systems' libraries (macOS frameworks) are not safe after a fork.
    """
    return sys.platform.startswith("linux") and threading.active_count() == 1


class ChildCall(Generic[T]):
    """``call`` run at once in a forked copy of this process, so that CPU-heavy work (imports,
    parsing) uses another core instead of competing for this interpreter's lock.

    Its value or exception comes back pickled through a pipe when ``result`` is asked for; ``stop``
    kills a child nobody waits for any more. Start it only when ``can_fork()`` says so.
    """

    def __init__(self, call: Callable[[], T]) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _answer_and_exit(call, write_fd)
        os.close(write_fd)
        self.pid = pid
        self._answer = os.fdopen(read_fd, "rb")
        self._lock = threading.Lock()
        self._status: int | None = None

    def fileno(self) -> int:
        """The pipe its answer comes through: readable once the child is done (for ``select``)."""
        return self._answer.fileno()

    def result(self) -> T:
        """The child's value; its exception is raised here (as a RuntimeError if it cannot be pickled)."""
        import pickle

        with self._answer:
            data = self._answer.read()
        status = self._reap()
        if not data:
            raise RuntimeError(f"child process {self.pid} ended without an answer (wait status {status})")
        ok, payload = pickle.loads(data)
        if not ok:
            raise payload
        return payload

    def stop(self) -> None:
        """Kill the child unless it has already ended, and reap it."""
        with self._lock:
            if self._status is None:  # not reaped yet, so the pid is still this child's (a zombie at worst)
                os.kill(self.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> int:
        with self._lock:
            if self._status is None:
                self._status = os.waitpid(self.pid, 0)[1]
            return self._status


def _answer_and_exit(call: Callable[[], Any], write_fd: int) -> None:
    """In the child: run ``call``, write the pickled outcome, and leave without running the parent's exit code."""
    import pickle

    try:
        try:
            outcome: tuple[bool, Any] = (True, call())
        except BaseException as exc:  # goes to the parent, which raises it
            outcome = (False, exc)
        try:
            data = pickle.dumps(outcome)
            if not outcome[0]:
                pickle.loads(data)  # an exception class with extra __init__ arguments pickles but cannot load
        except Exception:
            error = outcome[1] if not outcome[0] else TypeError(f"unpicklable {type(outcome[1]).__name__}")
            data = pickle.dumps((False, RuntimeError(f"{type(error).__name__}: {error}")))
        with os.fdopen(write_fd, "wb") as out:
            out.write(data)
    finally:
        os._exit(0)
