"""One deployment is changed by one gpuctl process at a time.

``up`` (and ``weights pull --to``) hold the deployment's lock (``.gpuctl/locks/NAME.lock``, an flock)
from before its record exists until its teardown or readiness; ``down`` and ``gc`` take it before a
teardown. A ``down`` that finds the lock held by an ``up`` on this machine asks that process to stop
(SIGTERM: it tears down what it created, waiting for an in-flight create first) and waits for the lock,
so ``down`` never reports a deployment gone while its launch can still complete.

The kernel drops an flock when its process dies, so a ``kill -9`` never leaves a deployment locked.
The lock file is opened read-only (flock needs no more), so a directory that turns read-only meanwhile
still locks; where no lock file exists and none can be made, no process can hold it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gpuctl.deploy.context import DeployContext
from gpuctl.errors import GpuctlError, TimeoutError_, UsageError
from gpuctl.models.deployment import Deployment

LOCKS_DIR = "locks"
PROC_LOCKS = "/proc/locks"
#: seconds between two tries of a held lock
RETRY_S = 0.1
_UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)


class DeploymentLock:
    """The lock of deployment ``name`` in a project's state directory."""

    def __init__(self, state_dir: Path, name: str) -> None:
        self.path = state_dir / LOCKS_DIR / f"{name}.lock"
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when another process holds it."""
        if self._fd is not None:
            return True
        fd = self._open()
        if fd is None:
            return True  # no lock file and none can be made: nothing can hold it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def holders(self) -> set[int] | None:
        """Pids holding this lock, as the kernel lists them (Linux ``/proc/locks``); None where it cannot tell."""
        try:
            stat = self.path.stat()
            table = Path(PROC_LOCKS).read_text()
        except OSError:
            return None
        wanted = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
        pids = set()
        for line in table.splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted and fields[4].isdigit():
                pids.add(int(fields[4]))
        return pids

    def _open(self) -> int | None:
        # read-only is enough for flock, and holds no file open for writing (a disk can still turn read-only)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno not in _UNWRITABLE:
                raise
        try:
            return os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None


@contextmanager
def held_for_up(ctx: DeployContext, name: str) -> Iterator[None]:
    """The lock for an ``up`` of ``name``: taken at once or refused (exit 2) while another process has it."""
    lock = DeploymentLock(ctx.state_dir, name)
    if not lock.try_acquire():
        raise UsageError(f"a deployment named '{name}' already exists and another gpuctl process is working on it",
                         "pick another --name, or wait for it ('gpuctl status' shows it)")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def held_for_teardown(ctx: DeployContext, name: str, *, timeout: float) -> Iterator[bool]:
    """The lock for a teardown of ``name``; yields whether a running ``up`` had to be stopped first.

    A holder that is an ``up`` on this machine is asked to stop (SIGTERM); any other holder is waited
    for. TimeoutError_ (exit 7) when the lock is still held after ``timeout`` seconds.
    """
    lock = DeploymentLock(ctx.state_dir, name)
    stopped: int | None = None
    deadline = time.monotonic() + timeout
    announced = False
    while not lock.try_acquire():
        if stopped is None:
            stopped = _stop_owner(ctx, lock, name)
        if stopped is not None and not announced:
            ctx.reporter.info(f"'{name}' is still being deployed by gpuctl process {stopped}: it was asked to stop "
                              "and removes what it created")
            announced = True
        if time.monotonic() > deadline:
            holder = f"gpuctl process {stopped}" if stopped is not None else "another gpuctl process"
            raise TimeoutError_(f"{holder} still works on '{name}' after {timeout:.0f}s",
                                f"wait for it to end, then run 'gpuctl down {name}' again")
        time.sleep(RETRY_S)
    try:
        yield stopped is not None
    finally:
        lock.release()


def _stop_owner(ctx: DeployContext, lock: DeploymentLock, name: str) -> int | None:
    """SIGTERM to the ``up`` working on ``name`` when it runs on this machine; its pid, or None.

    Only the process that both holds the lock (where the kernel says so) and is the record's owner is
    signalled: a recycled pid never is.
    """
    try:
        record = ctx.records.get(name)
    except GpuctlError:
        return None
    if not _launching(record) or record.owner_pid is None or record.owner_host != socket.gethostname():
        return None
    holders = lock.holders()
    if holders is not None and record.owner_pid not in holders:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.owner_pid, signal.SIGTERM)
        return record.owner_pid
    return None


def _launching(record: Deployment) -> bool:
    """An ``up`` at work (a teardown in progress is waited for, never interrupted)."""
    return record.status in ("provisioning", "starting", "running", "failed")
