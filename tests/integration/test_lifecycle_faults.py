"""Failures and interruptions of ``gpuctl up``: each ends with nothing left running and the right exit code.

VM-style faults use the in-test FakeCloud (tests/fakehost/cloud.py), whose instances are the fake GPU
host; interruptions use real ``gpuctl`` processes and real signals.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from gpuctl.state import StateStore
from tests.fakehost.cloud import Cloud, gpuctl_process, make_offer, wait_until, write_recipe
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

# every test deploys to (or near) fake_gpu_host: its weights come from that host's stand-in hub
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fake_host_hub")]


@pytest.fixture
def vm_cloud(fake_cloud: Cloud, fake_gpu_host: FakeGpuHost, isolated: Path) -> Cloud:
    write_recipe(isolated)
    fake_cloud.use_host(fake_gpu_host)
    return fake_cloud


def host_args(host: FakeGpuHost, env: FakeHostEnv) -> list[str]:
    return ["--host", host.target, "--identity", str(env.client_key), "--accept-host-key"]


def record(project: Path, name: str) -> dict:
    return json.loads((project / ".gpuctl" / "state.json").read_text())["deployments"].get(name) or {}


def events(project: Path, name: str) -> list[str]:
    if not (project / ".gpuctl" / "state.json").exists():
        return []
    history = json.loads((project / ".gpuctl" / "state.json").read_text())["history"]
    return [e["event"] for e in history if e["deployment"] == name]


def test_capacity_error_falls_back_to_the_next_vm_offer(gpuctl, vm_cloud: Cloud, fake_gpu_host: FakeGpuHost,
                                                        isolated: Path) -> None:
    vm_cloud.add_offer(make_offer("fakecloud", "fc.cheap", 0.9), fault="capacity")
    vm_cloud.add_offer(make_offer("fakecloud", "fc.next", 1.1))
    result = gpuctl("up", "tiny", "--name", "vm", "-y")
    assert result.exit_code == 0, result.stderr
    assert "fakecloud 1 x L40S in fake-east-1 ($0.90/h) has no capacity (fc.cheap is sold out)" in result.stderr
    assert result.stdout.startswith("vm is ready: http://127.0.0.1:8000/v1")
    state = StateStore(isolated).read().deployments["vm"]
    assert (state.instance_id, state.offer_id, state.host) == (
        "fakecloud-1", "fakecloud:fc.next:fake-east-1", f"root@{fake_gpu_host.address}:22")
    launches = vm_cloud.world["launches"]
    assert [launch["offer"] for launch in launches] == ["fakecloud:fc.cheap:fake-east-1",
                                                        "fakecloud:fc.next:fake-east-1"]
    assert launches[1]["engine"] is False and launches[1]["secrets"] == [], "a VM gets no engine secrets"
    project_key = (isolated / ".gpuctl" / "ssh" / "id_ed25519.pub").read_text().strip()
    assert project_key in (fake_gpu_host.home / ".ssh" / "authorized_keys").read_text()
    assert fake_gpu_host.containers() == ["gpuctl-vm running"]
    pinned = isolated / ".gpuctl" / "ssh" / "known_hosts"
    assert fake_gpu_host.host_public_key in pinned.read_text(), "a new machine's key is pinned on first contact"
    down = gpuctl("down", "vm")
    assert down.exit_code == 0 and down.stdout.startswith("vm: down after ")
    assert vm_cloud.live() == [] and fake_gpu_host.containers() == []
    assert fake_gpu_host.host_public_key not in pinned.read_text(), "its address will be someone else's"


def test_ssh_never_coming_up_times_out_and_terminates(gpuctl, vm_cloud: Cloud, fake_gpu_host: FakeGpuHost,
                                                      isolated: Path) -> None:
    vm_cloud.use_host(fake_gpu_host, port=2222)  # nothing listens there
    vm_cloud.add_offer(make_offer("fakecloud", "fc.a", 1.0))
    started = time.monotonic()
    result = gpuctl("up", "tiny", "--name", "nossh", "-y", "--ssh-timeout", "3s")
    assert result.exit_code == 7, result.stderr
    assert time.monotonic() - started < 15
    assert "SSH did not come up within 3s" in result.stderr
    assert vm_cloud.world["terminations"] == ["fakecloud-1"] and vm_cloud.live() == []
    assert record(isolated, "nossh")["status"] == "terminated"


def test_wrong_gpus_on_the_instance_fail_the_host_check(gpuctl, vm_cloud: Cloud, isolated: Path) -> None:
    vm_cloud.add_offer(make_offer("fakecloud", "fc.h100", 2.0, gpu="H100-SXM"))
    result = gpuctl("up", "tiny", "--name", "wrong", "-y")
    assert result.exit_code == 4
    assert "but the offer promised 1x H100-SXM" in result.stderr
    assert vm_cloud.live() == [] and record(isolated, "wrong")["status"] == "terminated"


def test_unhealthy_engine_exits_8_with_its_log_and_is_removed(gpuctl, fake_gpu_host: FakeGpuHost,
                                                              fakehost_env: FakeHostEnv, isolated: Path) -> None:
    write_recipe(isolated, "crash", env={"FAKE_ENGINE_EXIT": "1 torch.OutOfMemoryError: CUDA out of memory"})
    result = gpuctl("up", "crash", *host_args(fake_gpu_host, fakehost_env), "--name", "oom", "-y")
    assert result.exit_code == 8, result.stderr
    assert "the engine container stopped before it became healthy (exited, exit code 1)" in result.stderr
    assert "last lines of the engine log:\n  torch.OutOfMemoryError: CUDA out of memory" in result.stderr
    assert fake_gpu_host.containers() == []
    state = record(isolated, "oom")
    assert state["status"] == "terminated" and "CUDA out of memory" in state["error"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_the_health_wait_tears_down(fake_cloud: Cloud, fake_gpu_host: FakeGpuHost,
                                                        fakehost_env: FakeHostEnv, isolated: Path,
                                                        signum: signal.Signals) -> None:
    # the engine listens on another port than the one published: it never answers
    write_recipe(isolated, "deaf", env={"FAKE_ENGINE_MOCK_ARGS": "--port 9999"})
    process = gpuctl_process("up", "deaf", *host_args(fake_gpu_host, fakehost_env), "--name", "intr", "-y")
    try:
        wait_until(lambda: "engine-started" in events(isolated, "intr"), "the engine to start")
        time.sleep(0.3)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "error: interrupted" in stderr
    assert fake_gpu_host.containers() == []
    state = record(isolated, "intr")
    assert state["status"] == "terminated" and state["error"] == "interrupted"


def test_kill_9_during_launch_then_down_leaves_nothing(gpuctl, vm_cloud: Cloud, isolated: Path) -> None:
    vm_cloud.add_offer(make_offer("fakecloud", "fc.slow", 1.0), fault="hang")
    process = gpuctl_process("up", "tiny", "--name", "crash", "-y")
    try:
        wait_until(lambda: len(vm_cloud.world["instances"]) == 1, "the instance to exist")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        process.kill()
    state = record(isolated, "crash")
    assert state["status"] == "provisioning" and state["instance_id"] is None
    assert len(vm_cloud.live()) == 1, "billing, and only the tags point at it"

    sweep = gpuctl("gc", "--dry-run", "--json")
    (leftover,) = json.loads(sweep.stdout)
    assert (leftover["kind"], leftover["deployment"], leftover["reason"]) == (
        "deployment", "crash", "deployment is provisioning")

    down = gpuctl("down", "crash")
    assert down.exit_code == 0, down.stderr
    assert vm_cloud.world["terminations"] == ["fakecloud-1"] and vm_cloud.live() == []
    assert record(isolated, "crash")["status"] == "terminated"
    assert json.loads(gpuctl("gc", "--dry-run", "--json").stdout) == []


def test_two_ups_at_once_keep_the_state_consistent(gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
                                                   isolated: Path) -> None:
    write_recipe(isolated)
    args = host_args(fake_gpu_host, fakehost_env)
    processes = [gpuctl_process("up", "tiny", *args, "--name", name, "-y", "-q")
                 for name in ("one", "two", "two")]
    outcomes = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=90)
        outcomes.append((process.returncode, stdout, stderr))
    assert sorted(code for code, _, _ in outcomes) == [0, 0, 2]
    assert any("a deployment named 'two' already exists" in stderr for _, _, stderr in outcomes)
    deployments = StateStore(isolated).read().deployments
    assert {name: d.status for name, d in deployments.items()} == {"one": "running", "two": "running"}
    assert sorted(d.host_port for d in deployments.values()) == [8000, 8001]
    urls = sorted(stdout for code, stdout, _ in outcomes if code == 0)
    assert urls == ["http://127.0.0.1:8000/v1\n", "http://127.0.0.1:8001/v1\n"]
    assert fake_gpu_host.containers() == ["gpuctl-one running", "gpuctl-two running"]
    down = gpuctl("down", "--all")
    assert down.exit_code == 0 and len(down.stdout.splitlines()) == 2
    assert fake_gpu_host.containers() == []
