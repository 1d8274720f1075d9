"""The TTL watchdog on a fake GPU host: found by its labels (not only a recorded pid), keyed to one deployment."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.deploy.watchdog import arm, disarm, interval_for
from gpuctl.host.docker import ContainerSpec, DockerEngine
from gpuctl.host.hostkeys import pinned_known_hosts
from gpuctl.host.labels import CONTAINER, DEPLOYMENT, PROJECT, ROLE, TOKEN
from gpuctl.host.ssh import SshSession, open_session
from gpuctl.host.target import parse_target
from gpuctl.host.watchdogs import find_watchdogs, stop_watchdogs
from tests.fakehost.host import FakeGpuHost, FakeHostEnv, is_running
from tests.fakehost.shells import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def session(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshSession]:
    state_dir = tmp_path_factory.mktemp("watchdog-project") / ".gpuctl"
    pinned_known_hosts(state_dir).write_text(fake_gpu_host.known_hosts_line + "\n")
    with open_session(parse_target(fake_gpu_host.target), state_dir, identity=fakehost_env.client_key) as opened:
        yield opened


@pytest.fixture
def docker(session: SshSession, fake_gpu_host: FakeGpuHost) -> Iterator[DockerEngine]:
    engine = DockerEngine(session)
    yield engine
    engine.close()
    for dog in fake_gpu_host.own(find_watchdogs(session)):
        stop_watchdogs(session, token=dog.token)
    fake_gpu_host.docker("rm", "--force", *fake_gpu_host.docker("ps", "-aq").stdout.split(), check=False)
    shutil.rmtree(fake_gpu_host.home / ".gpuctl", ignore_errors=True)  # a watchdog that fired leaves its log


def sleeper(docker: DockerEngine, name: str) -> str:
    """A container that runs until stopped (what the watchdog stops), and stops at once when asked."""
    from tests.fakehost.image import ENGINE_IMAGE

    spec = ContainerSpec(image=ENGINE_IMAGE, entrypoint=["sh", "-c", 'trap "exit 0" TERM; sleep 3600 & wait'])
    return docker.start(spec, name=name)


def watchdog_pids(host: FakeGpuHost) -> list[int]:
    return [pid for pid, cmd in host.processes() if " gpuctl-watchdog " in f"{cmd} "]


def test_a_watchdog_whose_pid_was_never_recorded_is_found_and_stopped(fake_gpu_host: FakeGpuHost,
                                                                      session: SshSession,
                                                                      docker: DockerEngine) -> None:
    sleeper(docker, "gpuctl-web")
    armed = arm(session, name="web", container="gpuctl-web", seconds_left=3600, stop_machine=False)
    assert is_running(armed.pid)
    # gpuctl was killed before the pid reached the state file: 'down' knows only the name
    disarm(session, name="web", pid=None)
    assert wait_until(lambda: watchdog_pids(fake_gpu_host) == [], timeout=10), "the watchdog outlived 'down'"
    assert [p.name for p in (fake_gpu_host.home / ".gpuctl").iterdir()] == []


def test_an_orphaned_watchdog_never_stops_a_later_deployment_of_the_same_name(fake_gpu_host: FakeGpuHost,
                                                                             session: SshSession,
                                                                             docker: DockerEngine) -> None:
    sleeper(docker, "gpuctl-web")
    arm(session, name="web", container="gpuctl-web", seconds_left=2, stop_machine=False)
    # the first deployment's container goes, its watchdog stays behind (its pid was never recorded) ...
    assert docker.remove("gpuctl-web", stop_timeout=1)
    # ... and a new deployment of the same name starts before the old deadline
    later = sleeper(docker, "gpuctl-web")
    assert wait_until(lambda: watchdog_pids(fake_gpu_host) == [], timeout=20), "the old watchdog reached its deadline"
    state = docker.inspect("gpuctl-web")
    assert state is not None and state.id == later and state.running, "the later deployment was stopped"


def test_a_watchdog_is_labelled_and_stops_only_its_own_container(fake_gpu_host: FakeGpuHost, session: SshSession,
                                                                 docker: DockerEngine) -> None:
    first = sleeper(docker, "gpuctl-api")
    # a minute: long enough to be found on a loaded machine; its deadline is then moved to now (the
    # watchdog re-reads its deadline file at every tick, every 6 s for a one-minute TTL)
    armed = arm(session, name="api", container="gpuctl-api", seconds_left=60, stop_machine=False,
                token="gpuctl-aaaa", project="p1")
    other = arm(session, name="api", container=first, seconds_left=3600, stop_machine=False,
                token="gpuctl-bbbb", project="p1")
    (found,) = find_watchdogs(session, token="gpuctl-aaaa")
    assert found.labels == {"gpuctl": "managed", ROLE: "watchdog", PROJECT: "p1", DEPLOYMENT: "api",
                            TOKEN: "gpuctl-aaaa", CONTAINER: first}
    assert found.pgid == armed.pid and armed.token == "gpuctl-aaaa"
    directory = fake_gpu_host.home / ".gpuctl" / "watchdog.p1.gpuctl-aaaa"
    assert sorted(p.name for p in directory.iterdir()) == ["api.deadline", "watchdog-api.log", "watchdog-api.sh"]
    assert int((directory / "api.deadline").read_text()) == pytest.approx(time.time() + 60, abs=5)
    (directory / "api.deadline").write_text(f"{int(time.time())}\n")
    assert wait_until(lambda: getattr(docker.inspect(first), "running", True) is False, timeout=60)
    assert "stopping " + first in (directory / "watchdog-api.log").read_text()
    # the other deployment's watchdog (token bbbb) was not touched by anything above
    assert [w.pgid for w in fake_gpu_host.own(find_watchdogs(session, project="p1"))] == [other.pid]
    stopped = disarm(session, name="api", token="gpuctl-bbbb", project="p1")
    assert [w.pgid for w in stopped] == [other.pid]
    assert fake_gpu_host.own(find_watchdogs(session)) == []
    assert sorted(p.name for p in (fake_gpu_host.home / ".gpuctl").iterdir()) == ["watchdog.p1.gpuctl-aaaa"]


def test_interval_follows_the_ttl() -> None:
    assert (interval_for(60), interval_for(5), interval_for(86400)) == (6, 1, 30)


def test_arming_needs_the_container(session: SshSession, docker: DockerEngine, tmp_path: Path) -> None:
    from gpuctl.host.errors import HostError

    with pytest.raises(HostError, match="no container 'gpuctl-nothing'"):
        arm(session, name="nothing", container="gpuctl-nothing", seconds_left=60, stop_machine=False)
