"""The watchdog's idle limit and budget on a fake GPU host: it reads the engine's /metrics on the host's
loopback and stops the engine container, with gpuctl doing nothing in between."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from gpuctl.deploy.watchdog import IdleLimit, arm
from gpuctl.engines import build_engine_spec
from gpuctl.host.docker import DockerEngine
from gpuctl.host.hostkeys import pinned_known_hosts
from gpuctl.host.ssh import SshSession, open_session
from gpuctl.host.target import parse_target
from gpuctl.host.watchdogs import find_watchdogs, stop_watchdogs
from gpuctl.models.engine import HOST_CACHE_DIR, EngineOptions
from gpuctl.recipes import resolve_model
from tests.fakehost.host import FakeGpuHost, FakeHostEnv
from tests.fakehost.shells import wait_until

pytestmark = pytest.mark.integration

PORT = 8000
MODEL = "Qwen/Qwen2.5-7B-Instruct"


@pytest.fixture(scope="module")
def session(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshSession]:
    state_dir = tmp_path_factory.mktemp("limits-project") / ".gpuctl"
    pinned_known_hosts(state_dir).write_text(fake_gpu_host.known_hosts_line + "\n")
    with open_session(parse_target(fake_gpu_host.target), state_dir, identity=fakehost_env.client_key) as opened:
        yield opened


@pytest.fixture
def engine(session: SshSession, fake_gpu_host: FakeGpuHost) -> Iterator[str]:
    """The fake vLLM engine container, published on the host's loopback; its id."""
    spec = build_engine_spec(resolve_model("qwen2.5-7b"), EngineOptions())
    docker = DockerEngine(session)
    container = docker.run_engine(spec, secrets={}, name="gpuctl-limits", host_port=PORT, cache_dir=HOST_CACHE_DIR)
    yield container
    docker.close()
    for dog in fake_gpu_host.own(find_watchdogs(session)):
        stop_watchdogs(session, token=dog.token)
    fake_gpu_host.docker("rm", "--force", "gpuctl-limits", check=False)


def running(fake_gpu_host: FakeGpuHost) -> bool:
    return fake_gpu_host.containers() == ["gpuctl-limits running"]


def log_of(fake_gpu_host: FakeGpuHost, token: str) -> str:
    (log,) = (fake_gpu_host.home / ".gpuctl").glob(f"watchdog.p.{token}/watchdog-limits.log")
    return log.read_text()


def test_idle_limit_ends_a_quiet_engine_and_requests_keep_it(fake_gpu_host: FakeGpuHost, session: SshSession,
                                                             engine: str) -> None:
    armed = arm(session, name="limits", container=engine, seconds_left=None, stop_machine=False, token="tok-idle",
                project="p", idle=IdleLimit(seconds=6, engine="vllm", port=PORT))
    assert armed.expires_at is None and armed.budget_ends_at is None
    activity = fake_gpu_host.home / ".gpuctl" / "watchdog.p.tok-idle" / "limits.activity"
    assert wait_until(activity.exists, timeout=60), "the watchdog never read the engine's metrics"
    with session.forward(PORT) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for _ in range(9):  # 9 s of traffic: longer than the limit, and the engine stays up
            body = {"model": MODEL, "prompt": "hi", "max_tokens": 2}
            assert client.post("/v1/completions", json=body).status_code == 200
            assert client.get("/metrics").status_code == 200  # reading metrics is no request
            time.sleep(1)
            assert running(fake_gpu_host), log_of(fake_gpu_host, "tok-idle")
    quiet_from = time.time()
    assert wait_until(lambda: not running(fake_gpu_host), timeout=60), log_of(fake_gpu_host, "tok-idle")
    assert time.time() - quiet_from >= 4, "stopped before the idle limit"
    log = log_of(fake_gpu_host, "tok-idle")
    assert "idle clock started" in log and "idle for" in log and f"stopping {engine}" in log


def test_a_budget_that_runs_out_stops_the_engine(fake_gpu_host: FakeGpuHost, session: SshSession,
                                                 engine: str) -> None:
    started = time.time()
    armed = arm(session, name="limits", container=engine, seconds_left=3600, stop_machine=False, token="tok-budget",
                project="p", budget_seconds_left=3)
    assert armed.budget_ends_at is not None and armed.expires_at is not None
    assert armed.budget_ends_at < armed.expires_at
    assert wait_until(lambda: not running(fake_gpu_host), timeout=60)
    assert time.time() - started >= 2
    assert "budget spent" in log_of(fake_gpu_host, "tok-budget")

