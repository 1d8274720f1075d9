"""``gpuctl doctor --host`` serves users with no cloud account, only a machine (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuctl.errors import ExitCode
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

pytestmark = pytest.mark.integration


def test_a_ready_host_is_enough(gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, isolated: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    result = gpuctl("doctor", "--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key),
                    "--accept-host-key", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ready"] == ["ssh"]
    host = {c["name"]: c for c in report["checks"] if c["provider"] == "ssh"}
    assert [host[name]["status"] for name in ("login", "gpus", "docker")] == ["ok", "ok", "ok"]
    assert "L40S" in host["gpus"]["detail"]


def test_a_login_that_fails_is_credentials(gpuctl, fake_gpu_host: FakeGpuHost, isolated: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    result = gpuctl("doctor", "--host", fake_gpu_host.target, "--accept-host-key")
    assert result.exit_code == ExitCode.CREDENTIALS, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "--identity" in line
    assert "login" in result.stdout and "problem" in result.stdout
