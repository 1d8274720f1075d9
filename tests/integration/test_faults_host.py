"""Faults of a deployment on the user's own host (``--host``, a fake GPU host): each ends with nothing of
gpuctl's left running there.

One fake host serves the whole module; each test ends with its containers and watchdogs gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuctl.models.engine import HOST_CACHE_DIR
from gpuctl.state import StateStore
from gpuctl.weights.fetcher import repo_folder
from tests.fakehost.cloud import wait_until, write_recipe
from tests.fakehost.host import FakeGpuHost, FakeHostEnv
from tests.integration.fault_kit import finish, gpuctl_proc, record, wait_for_event
from tests.standins.hub_server import tiny_model

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fake_host_hub")]

REPO = "meta-llama/Meta-Llama-3-8B-Instruct"
#: the commit recipes/llama-3-8b.yaml pins (the recipe 'tiny' is a copy of it)
COMMIT = "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2"


@pytest.fixture(autouse=True)
def clean_host(fake_gpu_host: FakeGpuHost) -> Iterator[None]:
    """Whatever a failed test left on the module's host goes before the next test (test-side cleanup)."""
    yield
    ids = fake_gpu_host.docker("ps", "-aq").stdout.split()
    if ids:
        fake_gpu_host.docker("rm", "--force", *ids, check=False)
    for pid, cmd in fake_gpu_host.processes():
        if "watchdog-" in cmd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def host_args(host: FakeGpuHost, env: FakeHostEnv) -> list[str]:
    return ["--host", host.target, "--identity", str(env.client_key), "--accept-host-key"]


def watchdogs(host: FakeGpuHost, name: str) -> list[str]:
    return [cmd for _, cmd in host.processes() if f"watchdog-{name}" in cmd]


def stall_a_shard(host: FakeGpuHost):
    """The next download of the model's first shard stops halfway until released: the fetch is in progress."""
    assert host.hub is not None
    model = host.hub.repos.get(REPO) or host.hub.add(tiny_model(REPO, commit=COMMIT))
    shard = next(data for name, data in model.files.items() if name.endswith(".safetensors"))
    return host.hub.stall(hashlib.sha256(shard).hexdigest(), after=1)


def test_down_during_the_weights_fetch_stops_the_launch(gpuctl, fake_gpu_host: FakeGpuHost,
                                                        fakehost_env: FakeHostEnv, isolated: Path) -> None:
    write_recipe(isolated)
    stall = stall_a_shard(fake_gpu_host)
    up = gpuctl_proc("up", "tiny", *host_args(fake_gpu_host, fakehost_env), "--name", "race", "-y", "--ttl", "1h")
    try:
        assert stall.reached.wait(60), "the fetch began"
        down = gpuctl("down", "race")
    finally:
        stall.release.set()
    code, stdout, stderr = finish(up)
    assert "is ready" not in stdout and code == 130, stderr
    assert down.exit_code == 0, down.stderr
    assert fake_gpu_host.containers() == [], "no engine, no fetcher"
    assert watchdogs(fake_gpu_host, "race") == []
    assert record(isolated, "race")["status"] == "terminated"


@pytest.mark.parametrize("damage", ["corrupt", "lost"])
def test_down_with_host_recovers_a_deployment_whose_state_file_is_gone(
        gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, isolated: Path, damage: str) -> None:
    write_recipe(isolated)
    args = host_args(fake_gpu_host, fakehost_env)
    up = gpuctl("up", "tiny", *args, "--name", "lost", "-y", "--ttl", "1h")
    assert up.exit_code == 0, up.stderr
    wait_until(lambda: bool(watchdogs(fake_gpu_host, "lost")), "the watchdog to run")
    state_file = isolated / ".gpuctl" / "state.json"
    if damage == "corrupt":
        state_file.write_text('{"schema_version": 1, "deployments": {"lost": ')
        assert gpuctl("down", "lost").exit_code == 2
    else:
        state_file.unlink()
        assert gpuctl("down", "lost").exit_code == 3
    recovered = gpuctl("down", "lost", "--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key))
    assert recovered.exit_code == 0, recovered.stderr
    assert fake_gpu_host.containers() == [] and watchdogs(fake_gpu_host, "lost") == []
    assert not list((fake_gpu_host.home / ".gpuctl").glob("*lost*")), "its files on the host are gone too"
    if damage == "corrupt":
        assert state_file.read_text().endswith('"lost": '), "a corrupt state file is never overwritten"


def test_kill_9_at_each_step_then_down_leaves_nothing_on_the_host(gpuctl, fake_gpu_host: FakeGpuHost,
                                                                  fakehost_env: FakeHostEnv, isolated: Path) -> None:
    write_recipe(isolated)
    args = host_args(fake_gpu_host, fakehost_env)
    for step in ("reserved", "host-checked", "engine-started", "ttl-armed"):
        name = f"k9-{step}"
        up = gpuctl_proc("up", "tiny", *args, "--name", name, "-y", "--ttl", "1h")
        wait_for_event(isolated, name, step, up)
        up.kill()
        finish(up)
        down = gpuctl("down", name)
        assert down.exit_code == 0, (step, down.stderr)
        wait_until(lambda: fake_gpu_host.containers() == [], f"nothing left after a kill at {step}")
        assert watchdogs(fake_gpu_host, name) == [], step


def test_gc_finds_what_an_ended_deployment_left_on_the_host(gpuctl, fake_gpu_host: FakeGpuHost,
                                                            fakehost_env: FakeHostEnv, isolated: Path) -> None:
    """A record that says 'terminated' while its container runs (what an older gpuctl's race left): gc sweeps
    the project's --host machines too."""
    write_recipe(isolated)
    up = gpuctl("up", "tiny", *host_args(fake_gpu_host, fakehost_env), "--name", "orphan", "-y", "--ttl", "1h")
    assert up.exit_code == 0, up.stderr
    store = StateStore(isolated)
    with store.transaction() as state:  # as the race left it: the record ended, the container not
        state.deployments["orphan"] = state.deployments["orphan"].model_copy(update={"status": "terminated"})
    (row,) = json.loads(gpuctl("gc", "--dry-run", "--json").stdout)
    assert (row["kind"], row["deployment"], row["host"], row["instance_id"]) == (
        "host", "orphan", fake_gpu_host.target, "gpuctl-orphan")
    assert "container gpuctl-orphan" in row["reason"] and "TTL watchdog" in row["reason"]
    swept = gpuctl("gc", "-y")
    assert swept.exit_code == 0, swept.stderr
    assert fake_gpu_host.containers() == [] and watchdogs(fake_gpu_host, "orphan") == []
    assert json.loads(gpuctl("gc", "--dry-run", "--json").stdout) == []


@pytest.mark.parametrize("record_after", ["stale", "replaced"])
def test_gc_sweeps_what_a_killed_up_left_on_the_host(gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
                                                     isolated: Path, record_after: str) -> None:
    """kill -9 while the weights fetcher runs on the host; then ``gc``. 'stale': the record says the launch is
    under way (its process is gone): gc takes it down. 'replaced': the record no longer knows the killed
    launch's token (a later deployment of the name took its place): gc finds the fetcher by its labels."""
    write_recipe(isolated)
    # an earlier test of the module cached the weights on the host: then nothing would be fetched
    fake_gpu_host.run_inside(["rm", "-rf", f"{HOST_CACHE_DIR}/hub/{repo_folder(REPO)}"])
    stall = stall_a_shard(fake_gpu_host)
    up = gpuctl_proc("up", "tiny", *host_args(fake_gpu_host, fakehost_env), "--name", "k9gc", "-y", "--ttl", "1h")
    try:
        assert stall.reached.wait(60), "the fetch began"
        (fetcher,) = fake_gpu_host.containers()
        assert fetcher.startswith("gpuctl-weights-") and fetcher.endswith(" running"), fetcher
        up.kill()
        finish(up)
        if record_after == "replaced":
            with StateStore(isolated).transaction() as state:
                state.deployments["k9gc"] = state.deployments["k9gc"].model_copy(update={
                    "status": "terminated", "owner_pid": None, "idempotency_token": "gpuctl-later", "attempts": []})
        (row,) = json.loads(gpuctl("gc", "--dry-run", "--json").stdout)
        if record_after == "stale":
            assert (row["kind"], row["deployment"], row["reason"]) == ("deployment", "k9gc", "deployment is starting")
        else:
            assert (row["kind"], row["deployment"], row["host"]) == ("host", "k9gc", fake_gpu_host.target)
            assert row["reason"] == f"unknown to the state file; container {fetcher.split()[0]} (fetcher) still there"
        assert fake_gpu_host.containers() == [fetcher], "--dry-run removes nothing"
        swept = gpuctl("gc", "-y")
    finally:
        stall.release.set()
    assert swept.exit_code == 0, swept.stderr
    assert fake_gpu_host.containers() == [] and watchdogs(fake_gpu_host, "k9gc") == []
    assert json.loads(gpuctl("gc", "--dry-run", "--json").stdout) == []
    assert record(isolated, "k9gc")["status"] == "terminated"
