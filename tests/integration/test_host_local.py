"""``--host local``: the same docker layer over this machine's docker socket, no SSH and no docker CLI.

The "local" engine is a fake host's dockerd (its socket is reachable from here through DOCKER_HOST)
and nvidia-smi is the fake host's, found first on PATH; nothing touches a real docker engine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.engines import build_engine_spec
from gpuctl.host.checks import check_host
from gpuctl.host.docker import DockerEngine
from gpuctl.host.health import wait_for_engine
from gpuctl.host.shell import LocalShell
from gpuctl.models.engine import EngineOptions
from gpuctl.recipes import resolve_model
from tests.fakehost.host import FakeGpuHost
from tests.fakehost.shells import RecordingShell, wait_until

pytestmark = pytest.mark.integration

HF_TOKEN = "hf_LOCALsecretTOKEN5151"
API_KEY = "sk-local-API-KEY-2929"


@pytest.fixture
def local(fake_gpu_host: FakeGpuHost) -> Iterator[LocalShell]:
    path = f"{fake_gpu_host.bin_dir}:{os.environ['PATH']}"
    yield LocalShell(env={**fake_gpu_host.docker_env, "PATH": path})


def _my_children() -> list[str]:
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        try:
            parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if parent == me:
            found.append(cmdline)
    return found


def test_local_host_check(local: LocalShell) -> None:
    report = check_host(RecordingShell(local), expected_gpu="L40S", expected_count=1)
    assert (report.gpu, report.gpu_count, report.nvidia_runtime) == ("L40S", 1, "nvidia-container-runtime-hook")
    assert local.where == "local"


def test_local_engine_lifecycle(fake_gpu_host: FakeGpuHost, local: LocalShell, tmp_path: Path) -> None:
    # public: published on 0.0.0.0 of the engine's network, which is the fake host's address from here
    spec = build_engine_spec(resolve_model("qwen2.5-7b"),
                             EngineOptions(api_key=True, hf_token=True, public=True))
    engine = DockerEngine(local)
    children_before = _my_children()
    engine.run_engine(spec, secrets={"HF_TOKEN": HF_TOKEN, "VLLM_API_KEY": API_KEY}, name="local-engine",
                      cache_dir=str(tmp_path / "hf-cache"), host_port=8000)
    try:
        assert _my_children() == children_before, "the daemon's socket directly: no docker CLI, no dial process"
        inspected = json.loads(fake_gpu_host.docker("inspect", "local-engine").stdout)[0]
        assert HF_TOKEN not in json.dumps(inspected) and API_KEY not in json.dumps(inspected)
        assert inspected["HostConfig"]["PortBindings"] == {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8000"}]}

        result = wait_for_engine(f"http://{fake_gpu_host.address}:8000", api_key=API_KEY, timeout=30,
                                 interval=0.1, log_tail=lambda: engine.logs("local-engine"))
        assert result.models == ["Qwen/Qwen2.5-7B-Instruct"]

        lines = engine.follow_logs("local-engine", tail=10)
        assert next(lines).startswith("INFO fake engine: serving Qwen/Qwen2.5-7B-Instruct")
        lines.close()
    finally:
        assert engine.remove("local-engine", stop_timeout=1) is True
    assert engine.inspect("local-engine") is None
    engine.close()


def test_local_docker_through_sudo_dials_a_local_process(fake_gpu_host: FakeGpuHost, local: LocalShell,
                                                        tmp_path: Path) -> None:
    # a stand-in sudo (root needs none); the dial process is this machine's docker CLI, aimed by DOCKER_HOST
    (tmp_path / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    (tmp_path / "sudo").chmod(0o755)
    local.env["PATH"] = f"{tmp_path}:{local.env['PATH']}"
    engine = DockerEngine(local, sudo=True)
    assert engine.info().server_version.startswith("20.10.")
    assert any("docker system dial-stdio" in cmd for cmd in _my_children())
    engine.close()
    assert wait_until(lambda: not any("dial-stdio" in cmd for cmd in _my_children()))
