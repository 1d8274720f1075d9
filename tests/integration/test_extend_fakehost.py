"""``gpuctl extend`` on a host: the watchdog's deadline file moves by the same amount as the record (issue 15)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gpuctl.deploy.watchdog import arm
from gpuctl.host.docker import ContainerSpec, DockerEngine
from gpuctl.host.hostkeys import pinned_known_hosts
from gpuctl.host.ssh import open_session
from gpuctl.host.target import parse_target
from gpuctl.host.watchdogs import find_watchdogs, paths, stop_watchdogs
from tests.fakehost.cloud import add_deployment
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

pytestmark = pytest.mark.integration


@pytest.fixture
def armed(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, isolated: Path) -> Iterator[Path]:
    """A sleeping container with a watchdog due in an hour, and the record of its deployment; the deadline file."""
    from tests.fakehost.image import ENGINE_IMAGE

    state_dir = isolated / ".gpuctl"
    state_dir.mkdir(exist_ok=True)
    pinned_known_hosts(state_dir).write_text(fake_gpu_host.known_hosts_line + "\n")
    session = open_session(parse_target(fake_gpu_host.target), state_dir, identity=fakehost_env.client_key)
    try:
        with DockerEngine(session) as docker:
            docker.start(ContainerSpec(image=ENGINE_IMAGE, entrypoint=["sh", "-c", "sleep 3600"]), name="gpuctl-web")
        done = arm(session, name="web", container="gpuctl-web", seconds_left=3600, stop_machine=False)
        add_deployment(isolated, "web", provider="ssh", host=fake_gpu_host.target, container="gpuctl-web",
                       identity=str(fakehost_env.client_key), expires_at=done.expires_at, ttl_seconds=3600,
                       watchdog_pid=done.pid)
        [dog] = find_watchdogs(session, deployment="web")
        yield fake_gpu_host.private_path(paths(dog.script.rsplit("/", 1)[0], "web")[1])
    finally:
        stop_watchdogs(session, deployment="web")
        fake_gpu_host.docker("rm", "--force", "gpuctl-web", check=False)
        shutil.rmtree(fake_gpu_host.home / ".gpuctl", ignore_errors=True)
        session.close()


def test_extend_moves_the_host_deadline_and_the_record(gpuctl, isolated: Path, armed: Path) -> None:
    deadline = int(armed.read_text())
    record_before = datetime.fromisoformat(json.loads((isolated / ".gpuctl" / "state.json").read_text())
                                           ["deployments"]["web"]["expires_at"])
    result = gpuctl("extend", "web", "2h")
    assert result.exit_code == 0, result.stderr
    assert int(armed.read_text()) == deadline + 7200
    record = json.loads((isolated / ".gpuctl" / "state.json").read_text())["deployments"]["web"]
    assert datetime.fromisoformat(record["expires_at"]) == record_before + timedelta(hours=2)
    assert datetime.fromisoformat(record["expires_at"]) > datetime.now(timezone.utc) + timedelta(hours=2)
