"""``gpuctl ssh NAME``: the OpenSSH command line, with the deployment's keys and gpuctl's pinned host keys.

Running it against a real sshd is covered in tests/integration/test_lifecycle.py.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.fakehost.cloud import Cloud, add_deployment


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
    assert argv(gpuctl, "box", "--tunnel")[1:7] == [
        "-N", "-o", "ExitOnForwardFailure=yes", "-L", "8001:127.0.0.1:8001", "-p"]
    assert "9000:127.0.0.1:8001" in argv(gpuctl, "box", "--tunnel", "--port", "9000")


@pytest.mark.parametrize(("fields", "args", "message"), [
    ({"provider": "ssh", "host": "local", "container": "gpuctl-x"}, (), "runs on this machine: no SSH needed"),
    ({"provider": "fakepod"}, (), "does not run on a host gpuctl can reach (fakepod runs the engine itself)"),
    ({"provider": "ssh", "host": "u@h"}, ("--tunnel", "--", "ls"), "--tunnel takes no command"),
])
def test_refusals(gpuctl, fake_cloud: Cloud, isolated: Path, fields: dict, args: tuple[str, ...],
                  message: str) -> None:
    add_deployment(isolated, "x", **fields)
    result = gpuctl("ssh", "x", *args)
    assert result.exit_code == 2 and message in result.stderr
