"""``gpuctl ssh NAME``: the OpenSSH command line, with the deployment's keys and gpuctl's pinned host keys.

Running it against a real sshd is covered in tests/integration/test_lifecycle.py.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from gpuctl.providers.runpod.provider import RunPodProvider
from tests.fakehost.cloud import Cloud, add_deployment
from tests.providers.launch_fakes import SECRETS, offer, request, vllm_engine


@pytest.fixture
def remote(fake_cloud: Cloud, isolated: Path) -> Path:
    add_deployment(isolated, "box", provider="ssh", host="ubuntu@gpu-box:2222", identity="/keys/id_box",
                   container="gpuctl-box", host_port=8001, tunnel=True, endpoint="http://127.0.0.1:8001")
    return isolated


def argv(gpuctl, *args: str) -> list[str]:
    result = gpuctl("ssh", "--print", *args)
    assert result.exit_code == 0, result.stderr
    return shlex.split(result.stdout)


def test_the_command_line(gpuctl, remote: Path, isolated: Path) -> None:
    home = Path.home()
    pinned = isolated / ".gpuctl" / "ssh" / "known_hosts"
    project_key = isolated / ".gpuctl" / "ssh" / "id_ed25519"
    project_key.parent.mkdir(parents=True, exist_ok=True)
    project_key.write_text("not a real key\n")
    assert argv(gpuctl, "box") == [
        "ssh", "-p", "2222", "-o", f"UserKnownHostsFile={home}/.ssh/known_hosts {home}/.ssh/known_hosts2 {pinned}",
        "-o", "StrictHostKeyChecking=yes", "-i", str(project_key), "-l", "ubuntu", "gpu-box"]


def test_a_command_and_a_tunnel(gpuctl, remote: Path) -> None:
    assert argv(gpuctl, "box", "--", "nvidia-smi", "-L")[-2:] == ["--", "nvidia-smi -L"]
    if _free(8001) and _free(9000):  # a tunnel refuses a local port in use (tests/cli/test_ssh_tunnel.py)
        assert argv(gpuctl, "box", "--tunnel")[1:7] == [
            "-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:8001:127.0.0.1:8001", "-p"]
        assert "127.0.0.1:9000:127.0.0.1:8001" in argv(gpuctl, "box", "--tunnel", "--port", "9000")


def _free(port: int) -> bool:
    import socket

    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize(("fields", "args", "message"), [
    ({"provider": "ssh", "host": "local", "container": "gpuctl-x"}, (), "runs on this machine: no SSH needed"),
    ({"provider": "fakepod", "status": "starting"}, (), "'x' has no machine yet (status starting)"),
    ({"provider": "ssh", "host": "u@h"}, ("--tunnel", "--", "ls"), "--tunnel takes no command"),
])
def test_refusals(gpuctl, fake_cloud: Cloud, isolated: Path, fields: dict, args: tuple[str, ...],
                  message: str) -> None:
    add_deployment(isolated, "x", **fields)
    result = gpuctl("ssh", "x", *args)
    assert result.exit_code == 2 and message in result.stderr


def test_a_pod_without_published_ssh_is_refused(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    add_deployment(isolated, "pod", provider="fakepod", instance_id=fake_cloud.add_instance("fakepod", {}))
    result = gpuctl("ssh", "pod")
    assert result.exit_code == 2
    assert "'pod' publishes no SSH port (Fake Pods status running)" in result.stderr


@pytest.fixture
def runpod_pod(runpod_api, isolated: Path) -> str:
    """A running RunPod pod (the stand-in's) whose direct SSH is 127.0.0.9:40022, recorded as deployment 'pod'."""
    runpod_api.state.address, runpod_api.state.ssh_port = "127.0.0.9", 40022
    provider = RunPodProvider()
    pod = provider.launch(request(offer("runpod", "NVIDIA L40S", "US-TX-3", tier="secure"), engine=vllm_engine(),
                                  secrets=dict(SECRETS)))
    add_deployment(isolated, "pod", provider="runpod", instance_id=pod.id, status="running")
    return pod.id


def test_a_runpod_pod_is_reached_on_the_ssh_port_it_publishes(gpuctl, runpod_pod: str, isolated: Path) -> None:
    pinned = isolated / ".gpuctl" / "ssh" / "known_hosts"
    project_key = isolated / ".gpuctl" / "ssh" / "id_ed25519"
    result = gpuctl("ssh", "pod")  # the stand-in's pod is still starting: no SSH yet
    assert result.exit_code == 2 and "'pod' publishes no SSH port (RunPod status STARTING)" in result.stderr
    home = Path.home()
    project_key.parent.mkdir(parents=True, exist_ok=True)
    project_key.write_text("not a real key\n")
    assert argv(gpuctl, "pod", "--", "nvidia-smi") == [
        "ssh", "-p", "40022", "-o", f"UserKnownHostsFile={home}/.ssh/known_hosts {home}/.ssh/known_hosts2 {pinned}",
        "-o", "StrictHostKeyChecking=yes", "-i", str(project_key), "-l", "root", "127.0.0.9", "--", "nvidia-smi"]
