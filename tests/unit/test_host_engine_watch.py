"""Engine death within seconds: what the health wait asks the container's state (exit, OOM, crash loop)."""

from __future__ import annotations

import time

import pytest

from gpuctl.errors import ExitCode
from gpuctl.host.docker import ContainerSpec, ContainerState, DockerEngine, parse_state
from gpuctl.host.health import EngineHealthError, EngineWatch, death, wait_for_engine
from tests.fakehost.dockerapi import FakeContainer, FakeDockerApi
from tests.fakehost.shells import ScriptedShell


def _state(status: str, *, running: bool = False, exit_code: int = 0, oom: bool = False,
           restarts: int = 0) -> ContainerState:
    return parse_state({"Id": "c" * 64, "Name": "/e", "RestartCount": restarts, "Config": {"Image": "i"},
                        "State": {"Status": status, "Running": running, "ExitCode": exit_code, "OOMKilled": oom}})


@pytest.mark.parametrize(("state", "restarts_before", "why"), [
    (_state("running", running=True), 0, None),
    (_state("created"), 0, None),
    (_state("exited", exit_code=1), 0, "exited, exit code 1"),
    (_state("exited", exit_code=137, oom=True), 0, "exited, exit code 137, killed for lack of memory (OOM)"),
    (_state("restarting", running=True, exit_code=1, restarts=1), 0,
     "crash-looping: restarted 1 time(s), last exit code 1"),
    (_state("running", running=True, exit_code=137, oom=True, restarts=3), 2,
     "crash-looping: restarted 3 time(s), last exit code 137, killed for lack of memory (OOM)"),
    (_state("running", running=True, restarts=3), 3, None),
])
def test_death(state: ContainerState, restarts_before: int, why: str | None) -> None:
    assert death(state, restarts_before) == why


def _watched() -> tuple[FakeDockerApi, FakeContainer, EngineWatch]:
    api = FakeDockerApi()
    api.add_image("engine:1", cmd=["serve"])
    engine = DockerEngine(ScriptedShell().with_docker(api))
    engine.start(ContainerSpec(image="engine:1"), name="gpuctl-e")
    (container,) = api.containers.values()
    container.logs = [(2, b"loading\n"), (2, b"torch.OutOfMemoryError: CUDA out of memory\n")]
    return api, container, EngineWatch(engine, "gpuctl-e")


def test_an_oom_killed_engine_fails_the_health_wait_at_once_with_its_log() -> None:
    _, container, watch = _watched()
    assert watch.problem() is None
    container.status, container.exit_code, container.oom_killed = "exited", 137, True
    started = time.monotonic()
    with pytest.raises(EngineHealthError) as caught:
        wait_for_engine("http://127.0.0.1:9", timeout=1800, interval=0.05, exited=watch.problem,
                        log_tail=watch.log_tail)
    assert time.monotonic() - started < 5
    assert caught.value.exit_code == ExitCode.HEALTH
    assert caught.value.message == (
        "the engine container stopped before it became healthy (exited, exit code 137, killed for lack of memory "
        "(OOM)); last log line: torch.OutOfMemoryError: CUDA out of memory")
    assert caught.value.log_tail == "loading\ntorch.OutOfMemoryError: CUDA out of memory\n"


def test_a_crash_loop_behind_running_is_noticed_by_its_restart_count() -> None:
    _, container, watch = _watched()
    container.restart_count = 2  # restarts before the watch began are not this engine's crashes
    assert watch.problem() is None
    container.restart_count = 3
    assert watch.problem() == "crash-looping: restarted 3 time(s), last exit code 0"


def test_a_removed_container_and_a_few_failed_reads() -> None:
    api, container, watch = _watched()
    failure = "exit 255: Connection reset by peer"
    api.failure = failure  # the host stops answering for a while: tolerated a few polls, then an answer
    watch.engine.close()
    assert [watch.problem() for _ in range(3)] == [None, None, None]
    assert watch.problem() is not None and failure in str(watch.problem())
    assert watch.log_tail() == ""
    api.failure = None
    assert watch.problem() is None
    del api.containers[container.id]
    assert watch.problem() == "the container is gone"
