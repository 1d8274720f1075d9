"""``gpuctl up --host`` end to end against a fake GPU host: up -> status -> logs -> env -> ssh -> down.

The host is reached over real SSH (paramiko for gpuctl, OpenSSH for ``gpuctl ssh``), runs a real
dockerd, and serves the fake engine image; nothing is mocked inside gpuctl.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from gpuctl.state import StateStore
from tests.fakehost.cloud import gpuctl_process, run_gpuctl, wait_until, write_recipe
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

# every test deploys to (or near) fake_gpu_host: its weights come from that host's stand-in hub
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fake_host_hub")]

HF_TOKEN = "hf_NeverPrintThisToken_0123456789"


def test_host_end_to_end(gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, isolated: Path) -> None:
    write_recipe(isolated)
    host = ["--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key)]

    refused = gpuctl("up", "tiny", *host, "--name", "e2e", "-y")
    assert refused.exit_code == 2
    assert f"the host key of {fake_gpu_host.address} is not known yet: ssh-ed25519 SHA256:" in refused.stderr
    assert "--accept-host-key" in refused.stderr
    assert StateStore(isolated).read().deployments == {}

    result = gpuctl("up", "tiny", *host, "--accept-host-key", "--name", "e2e", "-y", "--ttl", "1h")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "e2e is ready: http://127.0.0.1:8000/v1"
    assert "gpuctl ssh e2e --tunnel" in result.stdout
    assert "deploy e2e: tiny on 1 x L40S at " in result.stderr and "($0.00/h), TTL 1h" in result.stderr
    pinned = (isolated / ".gpuctl" / "ssh" / "known_hosts").read_text()
    assert fake_gpu_host.host_public_key in pinned
    assert fake_gpu_host.containers() == ["gpuctl-e2e running"]
    ports = fake_gpu_host.docker("port", "gpuctl-e2e").stdout
    assert ports.startswith("8000/tcp -> 127.0.0.1:8000"), "private: bound to the host's loopback only"
    assert any("watchdog-e2e.sh" in cmd for _, cmd in fake_gpu_host.processes())

    status = gpuctl("status", "--json")
    (row,) = json.loads(status.stdout)
    assert (row["name"], row["status"], row["provider"], row["gpu"], row["gpu_count"]) == (
        "e2e", "running", "ssh", "L40S", 1)
    assert (row["endpoint"], row["tunnel"], row["health"], row["cost_usd"]) == (
        "http://127.0.0.1:8000/v1", True, "healthy", 0.0)
    assert 3500 < row["ttl_left_seconds"] <= 3600
    human = gpuctl("ls", "--no-probe")
    assert human.stdout.splitlines()[2].split()[:3] == ["e2e", "running", "ssh"]

    logs = gpuctl("logs", "e2e", "--tail", "5")
    assert logs.exit_code == 0 and "INFO fake engine: serving meta-llama/Meta-Llama-3-8B-Instruct" in logs.stdout
    follow = gpuctl_process("logs", "e2e", "-f", "--tail", "2")
    try:
        assert follow.stdout is not None and "fake engine: serving" in follow.stdout.readline()
        follow.send_signal(signal.SIGINT)
        follow.communicate(timeout=15)
    finally:
        follow.kill()
    assert follow.returncode == 0, "Ctrl-C ends following"
    wait_until(lambda: not any("docker logs" in cmd for _, cmd in fake_gpu_host.processes()), "docker logs -f to end")

    env = gpuctl("env", "e2e")
    assert env.stdout == "export OPENAI_BASE_URL=http://127.0.0.1:8000/v1\nexport OPENAI_API_KEY=EMPTY\n"
    assert "keep 'gpuctl ssh e2e --tunnel' running" in env.stderr

    over_ssh = run_gpuctl("ssh", "e2e", "--", "nvidia-smi", "-L")
    assert over_ssh.returncode == 0, over_ssh.stderr
    assert over_ssh.stdout.startswith("GPU 0: NVIDIA L40S")
    exit_code = run_gpuctl("ssh", "e2e", "--", "sh", "-c", "exit 3")
    assert exit_code.returncode == 3

    down = gpuctl("down", "e2e")
    assert down.exit_code == 0, down.stderr
    assert down.stdout.startswith("e2e: down after ") and down.stdout.rstrip().endswith("cost $0.00")
    assert fake_gpu_host.containers() == []
    assert not any("watchdog-e2e" in cmd for _, cmd in fake_gpu_host.processes())
    assert sorted(p.name for p in (fake_gpu_host.home / ".gpuctl").iterdir()) == []
    again = gpuctl("down", "e2e")
    assert again.exit_code == 0 and "e2e is already down: nothing to do" in again.stderr
    record = StateStore(isolated).read().deployments["e2e"]
    assert (record.status, record.cost_usd, record.error) == ("terminated", 0.0, None)
    assert gpuctl("status", "--json").stdout.strip() == "[]"


def test_public_endpoint_keeps_its_secrets(gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
                                           isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_recipe(isolated, "gated", gated=True)
    args = ["up", "gated", "--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key),
            "--accept-host-key", "--public", "--price-per-hour", "1.5", "--name", "pub", "-y"]

    no_token = gpuctl(*args)
    assert no_token.exit_code == 6 and "is gated and no Hugging Face token is set" in no_token.stderr
    assert fake_gpu_host.containers() == [] and StateStore(isolated).read().deployments == {}

    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    result = gpuctl(*args, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    endpoint = f"http://{fake_gpu_host.address}:8000"
    assert (doc["endpoint"], doc["public"], doc["tunnel"], doc["price_per_hour"]) == (endpoint, True, False, 1.5)
    key = (isolated / ".gpuctl" / "secrets" / "pub.env").read_text().strip().split("=", 1)[1]

    body = {"model": "meta-llama/Meta-Llama-3-8B-Instruct", "prompt": "hi", "max_tokens": 2}
    assert httpx.post(f"{endpoint}/v1/completions", json=body).status_code == 401
    authorized = httpx.post(f"{endpoint}/v1/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    assert authorized.status_code == 200

    inspect = json.loads(fake_gpu_host.docker("inspect", "gpuctl-pub").stdout)[0]
    (engine_pid,) = [pid for pid, cmd in fake_gpu_host.processes() if "/usr/local/bin/vllm serve" in cmd]
    environ = Path(f"/proc/{engine_pid}/environ").read_bytes().split(b"\0")
    assert f"HF_TOKEN={HF_TOKEN}".encode() in environ, "the token reached the engine process"
    assert f"VLLM_API_KEY={key}".encode() in environ
    assert HF_TOKEN not in json.dumps(inspect) and key not in json.dumps(inspect), "docker inspect shows no secret"
    command_lines = " ".join(cmd for _, cmd in fake_gpu_host.processes()) + " ".join(inspect["Args"])
    for secret in (HF_TOKEN, key):
        assert secret not in command_lines
        assert secret not in result.stdout + result.stderr
        assert secret not in (isolated / ".gpuctl" / "state.json").read_text()
    private = fake_gpu_host.home / ".gpuctl"
    leftovers = [p.name for p in private.iterdir()] if private.exists() else []
    assert not [name for name in leftovers if "env" in name], "no env file is ever written on the host"

    env = gpuctl("env", "pub").stdout
    assert env == f"export OPENAI_BASE_URL={endpoint}/v1\nexport OPENAI_API_KEY={key}\n"
    (row,) = json.loads(gpuctl("status", "--json").stdout)
    assert row["health"] == "healthy" and row["price_per_hour"] == 1.5 and row["cost_usd"] >= 0

    down = gpuctl("down", "pub", "--json")
    (ended,) = json.loads(down.stdout)
    assert ended["status"] == "terminated" and ended["cost_usd"] == pytest.approx(1.5 * ended["uptime_seconds"] / 3600,
                                                                                 abs=0.01)
    assert fake_gpu_host.containers() == []
    assert not (isolated / ".gpuctl" / "secrets" / "pub.env").exists()


def test_ttl_watchdog_stops_the_container_but_not_the_machine(gpuctl, fake_gpu_host: FakeGpuHost,
                                                              fakehost_env: FakeHostEnv, isolated: Path) -> None:
    write_recipe(isolated)
    result = gpuctl("up", "tiny", "--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key),
                    "--accept-host-key", "--name", "ttl", "-y", "--ttl", "5s")
    assert result.exit_code == 0, result.stderr
    wait_until(lambda: fake_gpu_host.containers() != ["gpuctl-ttl running"], "the TTL", timeout=15)
    assert fake_gpu_host.containers() == ["gpuctl-ttl exited"]
    (log_file,) = (fake_gpu_host.home / ".gpuctl").glob("watchdog.*/watchdog-ttl.log")
    log = log_file.read_text()
    assert "passed: stopping " in log and " and shutting down" in log  # the container, by its id
    assert fake_gpu_host.docker("version", check=False).returncode == 0, "the user's machine keeps running"
    (row,) = json.loads(gpuctl("status", "--json").stdout)
    assert row["ttl_left_seconds"] < 0 and row["health"].startswith("expired: its TTL stopped it")  # not probed
    assert "expired" in gpuctl("status", "--no-probe").stdout
    assert gpuctl("down", "ttl").exit_code == 0
    assert fake_gpu_host.containers() == []
    assert list((fake_gpu_host.home / ".gpuctl").iterdir()) == [], "down removes the watchdog's files"


def test_host_local_uses_this_machines_docker(fake_gpu_host: FakeGpuHost, isolated: Path) -> None:
    """``--host local``: run inside the fake host's network, with its docker engine and nvidia-smi as 'local'."""
    write_recipe(isolated)
    inside = ("nsenter", f"--net=/run/netns/{fake_gpu_host.netns}")
    env = {**fake_gpu_host.docker_env, "PATH": f"{fake_gpu_host.bin_dir}:{os.environ['PATH']}"}
    up = run_gpuctl("up", "tiny", "--host", "local", "--name", "loc", "-y", "-q", env=env, prefix=inside)
    assert up.returncode == 0, up.stderr
    assert up.stdout == "http://127.0.0.1:8000/v1\n"
    assert fake_gpu_host.containers() == ["gpuctl-loc running"]
    status = run_gpuctl("status", "--json", env=env, prefix=inside)
    (row,) = json.loads(status.stdout)
    assert (row["host"], row["tunnel"], row["health"]) == ("local", False, "healthy")
    ssh = run_gpuctl("ssh", "loc", env=env)
    assert ssh.returncode == 2 and "runs on this machine" in ssh.stderr
    down = run_gpuctl("down", "loc", env=env, prefix=inside)
    assert down.returncode == 0, down.stderr
    assert fake_gpu_host.containers() == []
