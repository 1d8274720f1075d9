"""``gpuctl status`` after a TTL fired (issue 15: it still said running and printed a raw paramiko line)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.fakehost.cloud import add_deployment


@pytest.fixture
def garbage_ssh() -> Iterator[int]:
    """A port that answers SSH with junk and hangs up, as a machine shutting down might."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                continue
            client.sendall(b"not ssh at all\r\n" * 3)
            client.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    server.close()


def _private(project: Path, name: str, port: int, expires: datetime) -> None:
    add_deployment(project, name, provider="ssh", host=f"root@127.0.0.1:{port}", container="gpuctl-x",
                   host_port=8000, tunnel=True, endpoint="http://127.0.0.1:8000", expires_at=expires,
                   launched_at=expires - timedelta(hours=1), health_path="/health")


def test_an_expired_deployment_reads_expired_and_is_not_probed(gpuctl, isolated: Path, garbage_ssh: int) -> None:
    _private(isolated, "gone", garbage_ssh, datetime.now(timezone.utc) - timedelta(minutes=5))
    result = gpuctl("status")
    assert result.exit_code == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("gone")]
    assert line.split()[1] == "expired" and "running" not in line
    assert result.stderr == ""
    [row] = json.loads(gpuctl("status", "--json").stdout)
    assert row["health"].startswith("expired")


def test_a_probe_that_fails_prints_no_library_line(isolated: Path, garbage_ssh: int,
                                                   subprocess_env: dict[str, str]) -> None:
    """A real process: pytest's own log capture would hide what Python's last-resort handler prints."""
    _private(isolated, "odd", garbage_ssh, datetime.now(timezone.utc) + timedelta(hours=1))
    result = subprocess.run([sys.executable, "-m", "gpuctl", "status"], capture_output=True, text=True,
                            env=subprocess_env, cwd=isolated, timeout=60)
    assert result.returncode == 0
    assert "unreachable" in result.stdout
    assert result.stderr == "", result.stderr
