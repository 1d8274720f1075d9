"""Engine death on a fake GPU host's real dockerd, noticed within seconds through the API over SSH."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gpuctl.errors import ExitCode
from gpuctl.host.docker import DockerEngine
from gpuctl.host.health import EngineHealthError, EngineWatch, wait_for_engine
from gpuctl.host.hostkeys import pinned_known_hosts
from gpuctl.host.ssh import SshSession, open_session
from gpuctl.host.target import parse_target
from tests.fakehost.host import FakeGpuHost, FakeHostEnv
from tests.fakehost.image import ENGINE_IMAGE

pytestmark = pytest.mark.integration

#: what the health wait may take to notice a dead engine (the health timeout itself is half an hour)
NOTICED_WITHIN_S = 15


@pytest.fixture(scope="module")
def docker(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    state_dir = tmp_path_factory.mktemp("death-project") / ".gpuctl"
    pinned_known_hosts(state_dir).write_text(fake_gpu_host.known_hosts_line + "\n")
    session: SshSession
    with open_session(parse_target(fake_gpu_host.target), state_dir, identity=fakehost_env.client_key) as session:
        engine = DockerEngine(session)
        engine.pull(ENGINE_IMAGE)
        yield engine
        engine.close()


def _wait_for_death(docker: DockerEngine, container: str) -> EngineHealthError:
    watch = EngineWatch(docker, container)
    started = time.monotonic()
    with pytest.raises(EngineHealthError) as caught:
        wait_for_engine("http://127.0.0.1:9", timeout=1800, interval=0.2, exited=watch.problem,
                        log_tail=watch.log_tail)
    assert time.monotonic() - started < NOTICED_WITHIN_S
    assert caught.value.exit_code == ExitCode.HEALTH
    return caught.value


def test_an_oom_killed_engine(fake_gpu_host: FakeGpuHost, docker: DockerEngine) -> None:
    fake_gpu_host.docker("run", "--detach", "--name", "oom", "--memory", "32m", "--memory-swap", "32m",
                         "--entrypoint", "python3", ENGINE_IMAGE, "-c",
                         "print('loading weights', flush=True); x = bytearray(200 << 20)")
    try:
        error = _wait_for_death(docker, "oom")
    finally:
        docker.remove("oom", stop_timeout=1)
    assert "(exited, exit code 137, killed for lack of memory (OOM)); last log line: loading weights" in error.message
    assert error.log_tail == "loading weights\n"


def test_a_crash_looping_engine(fake_gpu_host: FakeGpuHost, docker: DockerEngine) -> None:
    fake_gpu_host.docker("run", "--detach", "--name", "looping", "--restart", "always", "--entrypoint", "sh",
                         ENGINE_IMAGE, "-c", "echo 'RuntimeError: CUDA error: no kernel image'; sleep 0.3; exit 3")
    try:
        error = _wait_for_death(docker, "looping")
    finally:
        docker.remove("looping", stop_timeout=1)
    assert "crash-looping: restarted" in error.message
    assert error.message.endswith("last log line: RuntimeError: CUDA error: no kernel image")
