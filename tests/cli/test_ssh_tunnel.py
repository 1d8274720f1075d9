"""``gpuctl ssh NAME --tunnel`` (issue 15: with 127.0.0.1:8000 taken it forwarded only [::1], never exited, and
OPENAI_BASE_URL pointed at the other server; the tunnel outlived ``down``)."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.deploy.tunnels import TunnelRecord, live_tunnel, record_tunnel
from gpuctl.errors import ExitCode
from tests.fakehost.cloud import add_deployment


@pytest.fixture
def taken() -> Iterator[int]:
    """A local port another server listens on."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def _remote(project: Path, host_port: int) -> None:
    add_deployment(project, "box", provider="ssh", host="ubuntu@gpu-box:2222", container="gpuctl-box",
                   host_port=host_port, tunnel=True, endpoint=f"http://127.0.0.1:{host_port}")


def test_a_local_port_in_use_is_refused_at_once(gpuctl, isolated: Path, taken: int) -> None:
    _remote(isolated, taken)
    for args in ((), ("--port", str(taken))):
        result = gpuctl("ssh", "box", "--tunnel", *args)
        assert result.exit_code == ExitCode.USAGE, result.stderr
        assert result.stderr.count("\n") == 1 and f"127.0.0.1:{taken}" in result.stderr and "in use" in result.stderr
        assert "--port 0" in result.stderr
    assert not (isolated / ".gpuctl" / "tunnels").exists()


def test_port_zero_picks_a_free_port_and_binds_loopback_only(gpuctl, isolated: Path, taken: int) -> None:
    _remote(isolated, taken)
    argv = shlex.split(gpuctl("ssh", "box", "--tunnel", "--port", "0", "--print").stdout)
    [spec] = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-L"]
    bind, port, remote_host, remote_port = spec.split(":")
    assert (bind, remote_host, remote_port) == ("127.0.0.1", "127.0.0.1", str(taken))
    assert int(port) not in (0, taken)


def test_ipv6_only_when_asked(gpuctl, isolated: Path) -> None:
    _remote(isolated, 8000)
    argv = shlex.split(gpuctl("ssh", "box", "--tunnel", "--port", "0", "--ipv6", "--print").stdout)
    specs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-L"]
    assert [s.split(":")[0] for s in specs[:1]] == ["127.0.0.1"] and specs[1].startswith("[::1]:")
    assert specs[0].split(":")[1] == specs[1].split("]:")[1].split(":")[0]  # the same port on both


def _stand_in_tunnel(state_dir: Path, spec: str) -> subprocess.Popen[bytes]:
    """A process whose command line holds the forward spec, as the exec'd ssh's does."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-L", spec])


def test_env_prints_the_tunnels_port_and_down_stops_it(gpuctl, isolated: Path) -> None:
    # a record whose teardown asks no provider anything (its create was refused): only the tunnel is tested
    add_deployment(isolated, "box", provider="runpod", host_port=8001, tunnel=True, status="running",
                   endpoint="http://127.0.0.1:8001",
                   attempts=[{"provider": "runpod", "offer_id": "x", "idempotency_token": "t", "refused": True}])
    spec = "127.0.0.1:18123:127.0.0.1:8001"
    process = _stand_in_tunnel(isolated / ".gpuctl", spec)
    try:
        record_tunnel(isolated / ".gpuctl", TunnelRecord(name="box", pid=process.pid, port=18123, forwards=[spec]))
        env = gpuctl("env", "box")
        assert "OPENAI_BASE_URL=http://127.0.0.1:18123/v1" in env.stdout, env.stderr
        down = gpuctl("down", "box")
        assert down.exit_code == 0, down.stderr
        assert "stopped its tunnel" in down.stderr
        assert process.wait(timeout=10) != 0  # SIGTERM
        assert live_tunnel(isolated / ".gpuctl", "box") is None
    finally:
        process.kill()


def test_a_recycled_pid_is_never_signalled(isolated: Path) -> None:
    state_dir = isolated / ".gpuctl"
    record_tunnel(state_dir, TunnelRecord(name="box", pid=os.getpid(), port=1, forwards=["127.0.0.1:1:127.0.0.1:2"]))
    assert live_tunnel(state_dir, "box") is None  # this process's command line holds no such forward
    time.sleep(0)  # still alive to assert it
