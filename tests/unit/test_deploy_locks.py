"""One process per deployment: the lock, who holds it, and what 'down' does about an 'up' that holds it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gpuctl.deploy.context import DeployContext
from gpuctl.deploy.locks import DeploymentLock, held_for_teardown, held_for_up
from gpuctl.errors import TimeoutError_, UsageError
from gpuctl.models.deployment import Deployment
from gpuctl.plugins import ProviderRegistry
from gpuctl.state import StateStore

HOLD = ("import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n")


def context(tmp_path: Path) -> DeployContext:
    return DeployContext(store=StateStore(tmp_path), registry=ProviderRegistry(classes={}))


def holder(path: Path) -> subprocess.Popen[str]:
    """Another process holding ``path``'s lock (it ignores SIGTERM unless told otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_one_holder_at_a_time_and_the_kernel_names_it(tmp_path: Path) -> None:
    lock = DeploymentLock(tmp_path, "web")
    other = holder(lock.path)
    try:
        assert not lock.try_acquire()
        holders = lock.holders()
        assert holders is None or holders == {other.pid}  # None where there is no /proc/locks
    finally:
        other.kill()
        other.wait()
    assert lock.try_acquire(), "a dead holder's lock is free (kill -9 never leaves it locked)"
    lock.release()


def test_a_second_up_of_a_busy_name_is_refused(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    with held_for_up(ctx, "web"), pytest.raises(UsageError, match="another gpuctl process is working on it"), \
            held_for_up(ctx, "web"):
        pass


def test_a_read_only_directory_still_locks(tmp_path: Path) -> None:
    lock = DeploymentLock(tmp_path, "web")
    assert lock.try_acquire()
    lock.release()
    lock.path.parent.chmod(0o500)
    lock.path.chmod(0o400)
    try:
        assert DeploymentLock(tmp_path, "web").try_acquire()
        assert DeploymentLock(tmp_path, "never-made").try_acquire(), "no lock file, none can be made: nobody holds it"
    finally:
        lock.path.parent.chmod(0o700)


def record(ctx: DeployContext, status: str, owner: int | None) -> None:
    with ctx.store.transaction() as state:
        state.deployments["web"] = Deployment(name="web", model="m", provider="fakecloud", idempotency_token="t",
                                              status=status, owner_pid=owner, owner_host=socket.gethostname())


def test_down_stops_the_up_holding_the_lock_and_waits_for_it(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    up = holder(DeploymentLock(ctx.state_dir, "web").path)
    record(ctx, "starting", up.pid)
    with held_for_teardown(ctx, "web", timeout=30) as stopped:
        assert stopped
    assert up.wait(5) == -signal.SIGTERM


def test_a_teardown_in_progress_is_waited_for_never_interrupted(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    other = holder(DeploymentLock(ctx.state_dir, "web").path)
    record(ctx, "terminating", other.pid)
    try:
        with pytest.raises(TimeoutError_, match="still works on 'web' after 1s"), \
                held_for_teardown(ctx, "web", timeout=1):
            pass
        assert other.poll() is None, "not signalled"
    finally:
        other.kill()
        other.wait()


def test_a_recorded_owner_that_does_not_hold_the_lock_is_never_signalled(tmp_path: Path) -> None:
    """A recycled pid: the record names a process, the kernel says another one holds the lock."""
    if not Path("/proc/locks").exists():
        pytest.skip("needs /proc/locks")
    ctx = context(tmp_path)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    other = holder(DeploymentLock(ctx.state_dir, "web").path)
    record(ctx, "starting", bystander.pid)
    try:
        with pytest.raises(TimeoutError_), held_for_teardown(ctx, "web", timeout=1):
            pass
        assert bystander.poll() is None and other.poll() is None
    finally:
        for process in (bystander, other):
            process.kill()
            process.wait()
