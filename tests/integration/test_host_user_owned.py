"""A machine the user owns (``up --host``): gpuctl never bootstraps it, restarts its docker or changes its
configuration; it says what is missing (one line, a hint, exit 4)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gpuctl.state import StateStore
from tests.fakehost.cloud import write_recipe
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

pytestmark = pytest.mark.integration


def test_a_missing_nvidia_runtime_is_reported_not_installed(gpuctl, make_fake_gpu_host: Callable[..., FakeGpuHost],
                                                            fakehost_env: FakeHostEnv, isolated: Path) -> None:
    host = make_fake_gpu_host()
    host.remove_nvidia_runtime()
    dockerd = [pid for pid, cmd in host.processes() if cmd.startswith("dockerd ")]
    write_recipe(isolated)
    result = gpuctl("up", "tiny", "--host", host.target, "--identity", str(fakehost_env.client_key),
                    "--accept-host-key", "--name", "mine", "-y")
    assert result.exit_code == 4, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error == (f"error: the NVIDIA container runtime is missing on root@{host.address}:22; gpuctl does not "
                     "change a machine you own (hint: install the NVIDIA Container Toolkit there, register it "
                     "('sudo nvidia-ctk runtime configure --runtime=docker') and restart docker, then run "
                     "'gpuctl up' again)")
    assert "bootstrapping" not in result.stderr
    assert not (host.bin_dir / "nvidia-ctk.calls").exists(), "gpuctl ran the toolkit's configuration on the host"
    assert [pid for pid, cmd in host.processes() if cmd.startswith("dockerd ")] == dockerd, "docker was restarted"
    assert host.containers() == []
    assert StateStore(isolated).read().deployments["mine"].status == "terminated"
