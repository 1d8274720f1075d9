"""The hub unreachable from here and from the host (docs/weights.md "Before anything is rented"): the
warning names the fallback, and the deploy stops with exit 4 in one line saying the host could not reach
the hub either, having removed what it started (issue 15: code and docs disagreed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuctl.errors import ExitCode
from tests.fakehost.cloud import write_recipe
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

pytestmark = pytest.mark.integration


def test_up_host_with_the_hub_unreachable_everywhere(gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
                                                     isolated: Path) -> None:
    write_recipe(isolated)
    result = gpuctl("up", "tiny", "--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key),
                    "--accept-host-key", "--name", "nohub", "-y", env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    assert result.exit_code == ExitCode.PROVIDER, result.stderr
    assert "the host will read the file list" in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "hub" in line.lower() and "(hint: " in line, line
    assert fake_gpu_host.containers() == []
    state = json.loads((isolated / ".gpuctl" / "state.json").read_text())["deployments"]["nohub"]
    assert state["status"] == "terminated"
