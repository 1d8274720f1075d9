"""A real ``gpuctl ssh NAME --tunnel`` to a fake GPU host: the URL it prints reaches the host's loopback
server, ``env`` prints that URL, and ``down`` stops the tunnel (issue 15)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.deploy.tunnels import live_tunnel
from gpuctl.host.hostkeys import pinned_known_hosts
from tests.fakehost.cloud import add_deployment
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

pytestmark = pytest.mark.integration

_HOST_PORT = 18441


@pytest.fixture
def loopback_server(fake_gpu_host: FakeGpuHost) -> Iterator[None]:
    """An HTTP server on the host's 127.0.0.1 only, listing the host's /etc."""
    argv = [*fake_gpu_host._nsenter(), "python3", "-m", "http.server", str(_HOST_PORT), "--bind", "127.0.0.1",
            "--directory", "/etc"]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            probe = fake_gpu_host.run_inside(["python3", "-c", "import socket; socket.create_connection("
                                                              f"('127.0.0.1', {_HOST_PORT}), 1)"])
            if probe.returncode == 0:
                break
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            subprocess.run(["sleep", "0.1"], check=True)
        else:
            pytest.fail(f"the host's loopback server did not start: {probe.stderr}")
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_tunnel_env_and_down(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, loopback_server: None,
                             isolated: Path, subprocess_env: dict[str, str]) -> None:
    state_dir = isolated / ".gpuctl"
    state_dir.mkdir(exist_ok=True)
    pinned_known_hosts(state_dir).write_text(fake_gpu_host.known_hosts_line + "\n")
    add_deployment(isolated, "box", provider="runpod", host=fake_gpu_host.target, identity=str(fakehost_env.client_key),
                   host_port=_HOST_PORT, tunnel=True, status="running", endpoint=f"http://127.0.0.1:{_HOST_PORT}",
                   attempts=[{"provider": "runpod", "offer_id": "x", "idempotency_token": "t", "refused": True}])
    gpuctl = [sys.executable, "-m", "gpuctl"]
    tunnel = subprocess.Popen([*gpuctl, "ssh", "box", "--tunnel", "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=subprocess_env, cwd=isolated)
    try:
        assert tunnel.stdout is not None
        base = tunnel.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:") and base.endswith("/v1"), tunnel.stderr
        root = base.removesuffix("/v1")
        body = ""
        for _ in range(100):  # ssh binds a moment after the exec
            try:
                body = urllib.request.urlopen(root + "/", timeout=5).read().decode()
                break
            except OSError:
                tunnel.poll()
                assert tunnel.returncode is None, tunnel.stderr.read() if tunnel.stderr else ""
                subprocess.run(["sleep", "0.1"], check=True)
        assert "hostname" in body or "passwd" in body  # the host's /etc, served on its loopback only
        env = subprocess.run([*gpuctl, "env", "box"], capture_output=True, text=True, env=subprocess_env,
                             cwd=isolated)
        assert f"OPENAI_BASE_URL={base}" in env.stdout, env.stderr
        assert live_tunnel(state_dir, "box") is not None
        down = subprocess.run([*gpuctl, "down", "box"], capture_output=True, text=True, env=subprocess_env,
                              cwd=isolated)
        assert down.returncode == 0, down.stderr
        assert tunnel.wait(timeout=20) is not None
    finally:
        tunnel.kill()
        tunnel.wait(timeout=10)
