"""A machine the user already has (``gpuctl up --host``, the ``ssh`` provider): its offer and a shell on it.

The offer comes from the host: its GPUs as nvidia-smi reports them, at the price the user gives
(0 by default).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from gpuctl.errors import NoCapacityError
from gpuctl.host.errors import HostCheckError, UnknownHostKeyError
from gpuctl.host.shell import LocalShell, Shell
from gpuctl.host.target import LOCAL, HostTarget
from gpuctl.models.offer import Offer
from gpuctl.providers.ssh import HostProvider

#: asked on first contact with a host whose key no known_hosts file lists; True pins the key
HostKeyDecision = Callable[[UnknownHostKeyError], bool]
SSH_CONNECT_TIMEOUT_S = 15.0
#: GPU memory in use above which a GPU counts as taken: the engine claims 90% of it (vLLM's default share)
BUSY_FRACTION = 0.1


def host_offer(shell: Shell, target: HostTarget, price_per_hour: float = 0.0) -> Offer:
    """The offer a host makes: all of its GPUs (one model), at ``price_per_hour``."""
    from gpuctl.catalog import gpu_spec
    from gpuctl.host.checks import query_gpus
    from gpuctl.host.nvidia import canonical_gpu

    gpus = query_gpus(shell)
    names = {canonical_gpu(g.name, g.memory_total_mib) for g in gpus}
    if None in names:
        unknown = next(g.name for g in gpus if canonical_gpu(g.name, g.memory_total_mib) is None)
        raise HostCheckError(f"{shell.where} has a GPU gpuctl's catalog does not know: {unknown}",
                             "add it to providers/gpus.yaml, or deploy elsewhere")
    if len(names) > 1:
        raise HostCheckError(f"{shell.where} mixes GPU models ({', '.join(sorted(map(str, names)))})",
                             "gpuctl serves one model per GPU kind; limit it with CUDA_VISIBLE_DEVICES on the host")
    busy = [(g.index, used, total) for g in gpus
            if (used := g.memory_used_mib) is not None and (total := g.memory_total_mib)
            and used > BUSY_FRACTION * total]
    if busy:
        index, used, total = busy[0]
        raise NoCapacityError(
            f"GPU {index} of {shell.where} has {used / 1024:.1f} of {total / 1024:.1f} GiB in use: another model "
            "or process holds it",
            "free it (nvidia-smi shows what uses it; 'gpuctl status' lists gpuctl's deployments), or deploy elsewhere")
    gpu = str(names.pop())
    return Offer(provider=HostProvider.name, gpu=gpu, gpu_count=len(gpus), vram_gb=gpu_spec(gpu).vram_gb,
                 region=LOCAL if target.kind == "local" else str(target.host), price_per_hour=price_per_hour,
                 price_per_gpu_hour=round(price_per_hour / len(gpus), 4), availability="high",
                 instance_type=str(target), source="live", as_of=datetime.now(timezone.utc))


def connect(target: HostTarget, state_dir: Path, *, identity: Path | None = None, accept_host_key: bool = False,
            decide: HostKeyDecision | None = None, timeout: float = SSH_CONNECT_TIMEOUT_S) -> Shell:
    """A shell on ``target``: this machine, or a host-key-verified SSH session.

    An unknown host key is pinned when ``accept_host_key`` is set or ``decide`` says yes; otherwise
    UnknownHostKeyError (exit 2) shows its fingerprint.
    """
    if target.kind == "local":
        return LocalShell()
    from gpuctl.host.ssh import open_session

    try:
        return open_session(target, state_dir, identity=identity, accept_host_key=accept_host_key, timeout=timeout)
    except UnknownHostKeyError as exc:
        if decide is None or not decide(exc):
            raise
    return open_session(target, state_dir, identity=identity, accept_host_key=True, timeout=timeout)


def wait_for_shell(target: HostTarget, state_dir: Path, *, timeout: float, identity: Path | None = None,
                   accept_host_key: bool = False, decide: HostKeyDecision | None = None) -> Shell:
    """``connect`` retried until SSH answers (a booting machine), bounded by ``timeout`` seconds (exit 7)."""
    if target.kind == "local":
        return LocalShell()
    from gpuctl.host.ssh import wait_for_ssh

    deadline = time.monotonic() + timeout

    def once() -> Shell:
        remaining = max(1.0, min(SSH_CONNECT_TIMEOUT_S, deadline - time.monotonic()))
        return connect(target, state_dir, identity=identity, accept_host_key=accept_host_key, decide=decide,
                       timeout=remaining)

    return wait_for_ssh(once, timeout)  # type: ignore[arg-type]


@contextmanager
def opened(shell: Shell) -> Iterator[Shell]:
    """Close an SSH session when done (a local shell has nothing to close)."""
    try:
        yield shell
    finally:
        close = getattr(shell, "close", None)
        if close is not None:
            close()
