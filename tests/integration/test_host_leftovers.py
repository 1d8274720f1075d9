"""What gpuctl leaves on a host, found by label and removed: after a kill -9, for 'down' and for 'gc'."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.deploy.watchdog import arm
from gpuctl.host.docker import ContainerSpec, DockerEngine
from gpuctl.host.hostkeys import pinned_known_hosts
from gpuctl.host.labels import host_labels
from gpuctl.host.leftovers import find_leftovers_on_host, remove_deployment, remove_leftovers
from gpuctl.host.ssh import SshSession, open_session
from gpuctl.host.target import parse_target
from gpuctl.host.watchdogs import find_watchdogs
from gpuctl.models.engine import HOST_CACHE_DIR
from gpuctl.weights.fetcher import repo_folder
from tests.fakehost.host import ENGINE_IMAGE, FakeGpuHost, FakeHostEnv
from tests.standins.hub_server import GOOD_TOKEN, HubServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def state_dir(fake_gpu_host: FakeGpuHost, tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("leftovers-project") / ".gpuctl"
    pinned_known_hosts(state).write_text(fake_gpu_host.known_hosts_line + "\n")
    return state


@pytest.fixture(scope="module")
def session(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, state_dir: Path) -> Iterator[SshSession]:
    with open_session(parse_target(fake_gpu_host.target), state_dir, identity=fakehost_env.client_key) as opened:
        yield opened


@pytest.fixture
def docker(session: SshSession, fake_gpu_host: FakeGpuHost) -> Iterator[DockerEngine]:
    engine = DockerEngine(session)
    yield engine
    engine.close()
    for pid, cmd in fake_gpu_host.processes():
        if " gpuctl-watchdog " in f"{cmd} ":
            os.kill(pid, signal.SIGKILL)
    fake_gpu_host.docker("rm", "--force", *fake_gpu_host.docker("ps", "-aq").stdout.split(), check=False)
    shutil.rmtree(fake_gpu_host.home / ".gpuctl", ignore_errors=True)


def sleeper(docker: DockerEngine, name: str, **labels: str) -> str:
    spec = ContainerSpec(image=ENGINE_IMAGE, entrypoint=["sh", "-c", 'trap "exit 0" TERM; sleep 3600 & wait'],
                         labels=labels)
    return docker.start(spec, name=name)


FETCH = textwrap.dedent("""
    import sys
    from pathlib import Path
    from gpuctl.host.docker import DockerEngine
    from gpuctl.host.labels import host_labels
    from gpuctl.host.ssh import open_session
    from gpuctl.host.target import parse_target
    from gpuctl.weights import ensure_cached
    target, state_dir, identity, repo, endpoint, token, image = sys.argv[1:]
    with open_session(parse_target(target), Path(state_dir), identity=Path(identity)) as session:
        ensure_cached(DockerEngine(session), repo, "main", image=image, endpoint=endpoint, hf_token=token,
                      labels=host_labels("fetcher", project="p1", deployment="web", token="gpuctl-web-1"))
""")


def test_a_fetcher_left_by_a_kill_9_holds_no_secret_and_is_swept(fake_gpu_host: FakeGpuHost, weights_hub: HubServer,
                                                                fakehost_env: FakeHostEnv, state_dir: Path,
                                                                session: SshSession, docker: DockerEngine,
                                                                tmp_path: Path) -> None:
    gated = weights_hub.repos["test-org/gated-llama"]
    fake_gpu_host.run_inside(["rm", "-rf", f"{HOST_CACHE_DIR}/hub/{repo_folder(gated.repo)}"])
    shard = "model-00002-of-00003.safetensors"
    stall = weights_hub.stall(hashlib.sha256(gated.files[shard]).hexdigest(), after=64 * 1024)
    script = tmp_path / "fetch.py"
    script.write_text(FETCH)
    fetching = subprocess.Popen(
        [sys.executable, str(script), fake_gpu_host.target, str(state_dir), str(fakehost_env.client_key),
         gated.repo, weights_hub.url, GOOD_TOKEN, ENGINE_IMAGE],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert stall.reached.wait(60), "the fetcher started downloading"
        fetching.send_signal(signal.SIGKILL)  # gpuctl dies mid-download: nothing of it cleans up
        fetching.wait(10)
        (name,) = fake_gpu_host.docker("ps", "-q", "--filter", "name=gpuctl-weights-").stdout.split()
        inspected = fake_gpu_host.docker("inspect", name).stdout
        assert GOOD_TOKEN not in inspected, "docker inspect of the fetcher left behind shows no token"
        found = subprocess.run(["grep", "-rlaF", GOOD_TOKEN, str(fake_gpu_host.workdir)], capture_output=True,
                               text=True).stdout.split()
        assert [path for path in found if not path.endswith(".log")] == [], "no file on the host holds the token"
        private = fake_gpu_host.home / ".gpuctl"
        assert not private.exists() or list(private.iterdir()) == []

        leftovers = find_leftovers_on_host(session, "p1")
        assert [(i.kind, i.role, i.deployment, i.token) for i in leftovers.items] == [
            ("container", "fetcher", "web", "gpuctl-web-1")]
        assert leftovers.problems == []
        remove_leftovers(session, leftovers.items)
        assert fake_gpu_host.docker("ps", "-aq").stdout.split() == []
    finally:
        stall.release.set()
        fetching.kill()


def test_a_sweep_finds_everything_of_the_project_and_keeps_what_is_live(fake_gpu_host: FakeGpuHost,
                                                                       session: SshSession,
                                                                       docker: DockerEngine) -> None:
    live = host_labels("engine", project="p1", deployment="web", token="gpuctl-live")
    sleeper(docker, "gpuctl-web", **live)
    arm(session, name="web", container="gpuctl-web", seconds_left=3600, stop_machine=False, token="gpuctl-live",
        project="p1")
    dead = host_labels("fetcher", project="p1", deployment="old", token="gpuctl-dead")
    sleeper(docker, "gpuctl-weights-0123abcd", **dead)
    sleeper(docker, "gpuctl-other", **host_labels("engine", project="p2", deployment="web", token="gpuctl-p2"))
    private = fake_gpu_host.home / ".gpuctl"
    (private / "watchdog.p1.gpuctl-dead").mkdir()
    (private / "watchdog.p2.gpuctl-p2").mkdir()
    (private / "engine.env-1a2b3c4d").write_text("HF_TOKEN=hf_left_by_an_older_gpuctl\n")

    found = find_leftovers_on_host(session, "p1")
    assert sorted((i.kind, i.name, i.token) for i in found.items) == sorted([
        ("container", "gpuctl-web", "gpuctl-live"), ("container", "gpuctl-weights-0123abcd", "gpuctl-dead"),
        ("watchdog", str(Path("/root/.gpuctl/watchdog.p1.gpuctl-live/watchdog-web.sh")), "gpuctl-live"),
        ("file", "watchdog.p1.gpuctl-live", "gpuctl-live"), ("file", "watchdog.p1.gpuctl-dead", "gpuctl-dead"),
        ("file", "engine.env-1a2b3c4d", None)])
    sweep = found.without_tokens(["gpuctl-live"])
    removed = remove_leftovers(session, sweep.items)
    assert sorted(i.name for i in removed) == ["engine.env-1a2b3c4d", "gpuctl-weights-0123abcd",
                                               "watchdog.p1.gpuctl-dead"]
    assert sorted(fake_gpu_host.containers()) == ["gpuctl-other running", "gpuctl-web running"]
    assert sorted(p.name for p in private.iterdir()) == ["watchdog.p1.gpuctl-live", "watchdog.p2.gpuctl-p2"]
    assert [w.token for w in fake_gpu_host.own(find_watchdogs(session))] == ["gpuctl-live"]


def test_down_removes_one_deployment_and_never_a_later_one_of_the_same_name(fake_gpu_host: FakeGpuHost,
                                                                           session: SshSession,
                                                                           docker: DockerEngine) -> None:
    first = host_labels("engine", project="p1", deployment="web", token="gpuctl-first")
    sleeper(docker, "gpuctl-web", **first)
    sleeper(docker, "gpuctl-weights-99999999", **{**first, "gpuctl-role": "fetcher"})
    armed = arm(session, name="web", container="gpuctl-web", seconds_left=3600, stop_machine=False,
                token="gpuctl-first", project="p1")
    later = host_labels("engine", project="p1", deployment="web", token="gpuctl-later")
    sleeper(docker, "gpuctl-web-2", **later)
    arm(session, name="web", container="gpuctl-web-2", seconds_left=3600, stop_machine=False, token="gpuctl-later",
        project="p1")

    gone = remove_deployment(session, project="p1", name="web", token="gpuctl-first", container="gpuctl-web")
    assert sorted(gone) == [f"TTL watchdog (pid {armed.pid})", "container gpuctl-web (engine)",
                            "container gpuctl-weights-99999999 (fetcher)"]
    assert fake_gpu_host.containers() == ["gpuctl-web-2 running"]
    assert [w.token for w in fake_gpu_host.own(find_watchdogs(session))] == ["gpuctl-later"]
    assert sorted(p.name for p in (fake_gpu_host.home / ".gpuctl").iterdir()) == ["watchdog.p1.gpuctl-later"]
    assert json.loads(fake_gpu_host.docker("inspect", "gpuctl-web-2").stdout)[0]["State"]["Running"]
