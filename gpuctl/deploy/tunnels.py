"""The tunnels ``gpuctl ssh NAME --tunnel`` holds open: which local port each one forwards, so that ``env``
prints the URL really bound and ``down`` stops the tunnel with its deployment.

A tunnel is the ``ssh -N -L`` process gpuctl becomes (``exec``: same pid). Its record, one small file
per deployment under ``.gpuctl/tunnels/``, names the pid and the forward spec; a process counts as the
tunnel only while its command line still holds that spec, so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
from pathlib import Path

from pydantic import BaseModel, ValidationError

from gpuctl.errors import UsageError
from gpuctl.fsutil import atomic_write

TUNNELS_DIR = "tunnels"
#: the local address a tunnel binds unless IPv6 is asked for as well
LOOPBACK_V4 = "127.0.0.1"
LOOPBACK_V6 = "::1"


class TunnelRecord(BaseModel):
    name: str
    pid: int
    port: int
    #: the -L specs, as they appear in the ssh process's command line
    forwards: list[str]

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK_V4}:{self.port}"


def forward_spec(address: str, port: int, remote_port: int) -> str:
    """``127.0.0.1:8000:127.0.0.1:8000``; an IPv6 bind address in brackets."""
    bind = f"[{address}]" if ":" in address else address
    return f"{bind}:{port}:127.0.0.1:{remote_port}"


def claim_port(port: int, addresses: list[str]) -> int:
    """Check that ``port`` is free on every address (0: pick one free on all); the port to forward.

    A port in use is bad input (exit 2): a tunnel must never leave a client talking to another server.
    """
    for _ in range(20):  # with 0, the port found on the first address may be taken on the next
        chosen = port
        try:
            with contextlib.ExitStack() as held:
                for address in addresses:
                    family = socket.AF_INET6 if ":" in address else socket.AF_INET
                    listener = held.enter_context(socket.create_server((address, chosen), family=family))
                    chosen = listener.getsockname()[1]
            return chosen
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or port != 0:
                where = f"[{address}]" if ":" in address else address
                cause = "in use (another server listens there)" if exc.errno == errno.EADDRINUSE else exc.strerror
                raise UsageError(f"cannot forward {where}:{port}: {cause}",
                                 "pick another local port with --port PORT, or --port 0 for a free one") from None
    raise UsageError("found no local port free on every address", "pass --port PORT")


def _path(state_dir: Path, name: str) -> Path:
    return state_dir / TUNNELS_DIR / f"{name}.json"


def record_tunnel(state_dir: Path, record: TunnelRecord) -> None:
    atomic_write(_path(state_dir, record.name), record.model_dump_json() + "\n", durable=False)


def live_tunnel(state_dir: Path, name: str) -> TunnelRecord | None:
    """The running tunnel of deployment ``name``, if there is one."""
    path = _path(state_dir, name)
    try:
        record = TunnelRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, ValidationError):
        return None
    return record if _is_tunnel(record) else None


def stop_tunnel(state_dir: Path, name: str) -> TunnelRecord | None:
    """Stop the tunnel of deployment ``name`` (SIGTERM to its ssh process) and forget it; the one stopped."""
    record = live_tunnel(state_dir, name)
    if record is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(record.pid, signal.SIGTERM)
    with contextlib.suppress(OSError):
        _path(state_dir, name).unlink()
    return record


def _is_tunnel(record: TunnelRecord) -> bool:
    command = _command_line(record.pid)
    return command is not None and all(spec in command for spec in record.forwards)


def _command_line(pid: int) -> str | None:
    if Path("/proc/self").exists():
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
    try:  # no /proc (macOS): ask ps
        done = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
