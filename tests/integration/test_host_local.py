"""``--host local``: the same docker layer through this machine's docker CLI, no SSH.

The "local" engine is a fake host's dockerd (its socket is reachable from here through DOCKER_HOST)
and nvidia-smi is the fake host's, found first on PATH; nothing touches a real docker engine.
"""

from __future__ import annotations

import json
import os
import stat
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
def local(fake_gpu_host: FakeGpuHost) -> Iterator[RecordingShell]:
    path = f"{fake_gpu_host.bin_dir}:{os.environ['PATH']}"
    yield RecordingShell(LocalShell(env={**fake_gpu_host.docker_env, "PATH": path}))


def _my_children_running(fragment: str) -> bool:
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        try:
            parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if parent == me and fragment in cmdline:
            return True
    return False


def test_local_host_check(local: RecordingShell) -> None:
    report = check_host(local, expected_gpu="L40S", expected_count=1)
    assert (report.gpu, report.gpu_count, report.nvidia_runtime) == ("L40S", 1, "nvidia-container-runtime-hook")
    assert local.where == "local"


def test_local_engine_lifecycle(fake_gpu_host: FakeGpuHost, local: RecordingShell, tmp_path: Path) -> None:
    # public: published on 0.0.0.0 of the engine's network, which is the fake host's address from here
    spec = build_engine_spec(resolve_model("qwen2.5-7b"),
                             EngineOptions(api_key=True, hf_token=True, public=True))
    engine = DockerEngine(local)
    modes: list[int] = []
    write = local.write_secret_file

    def write_and_look(data: bytes, name: str) -> str:
        path = write(data, name)
        modes.append(stat.S_IMODE(os.stat(path).st_mode))
        return path

    local.write_secret_file = write_and_look  # type: ignore[method-assign]
    engine.run_engine(spec, secrets={"HF_TOKEN": HF_TOKEN, "VLLM_API_KEY": API_KEY}, name="local-engine",
                      cache_dir=str(tmp_path / "hf-cache"), host_port=8000)
    try:
        assert modes == [0o600]
        assert not Path(local.secret_files[0]).exists()
        for argv in local.argvs:
            assert not any(API_KEY in word or HF_TOKEN in word for word in argv), argv
        inspected = json.loads(fake_gpu_host.docker("inspect", "local-engine").stdout)[0]
        assert f"HF_TOKEN={HF_TOKEN}" in inspected["Config"]["Env"]
        assert inspected["HostConfig"]["PortBindings"] == {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8000"}]}

        result = wait_for_engine(f"http://{fake_gpu_host.address}:8000", api_key=API_KEY, timeout=30,
                                 interval=0.1, log_tail=lambda: engine.logs("local-engine"))
        assert result.models == ["Qwen/Qwen2.5-7B-Instruct"]

        lines = engine.follow_logs("local-engine", tail=10)
        assert next(lines).startswith("INFO fake engine: serving Qwen/Qwen2.5-7B-Instruct")
        assert _my_children_running("logs --follow")
        lines.close()
        assert wait_until(lambda: not _my_children_running("logs --follow"))
    finally:
        assert engine.remove("local-engine", stop_timeout=1) is True
    assert engine.inspect("local-engine") is None
