"""The fake GPU host itself: SSH, fake nvidia-smi, docker with the GPU hook, offline registry mirror, teardown.

Checked with the system's own ssh and docker clients, not gpuctl's, so a gpuctl bug cannot hide a
fixture bug.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from gpuctl.engines import tgi
from tests.fakehost.host import NS_PREFIX, FakeGpu, FakeGpuHost, FakeHostEnv, is_running

pytestmark = pytest.mark.integration

QUERY = "nvidia-smi --query-gpu=name,memory.total,memory.used,utilization.gpu --format=csv,noheader,nounits"


def ssh(host: FakeGpuHost, env: FakeHostEnv, tmp_path: Path, command: str) -> subprocess.CompletedProcess[str]:
    known = tmp_path / "known_hosts"
    known.write_text(host.known_hosts_line + "\n")
    return subprocess.run(
        ["ssh", "-i", str(env.client_key), "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
         "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", host.target, command],
        capture_output=True, text=True, timeout=60)


def test_ssh_session_sees_the_host_environment(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
                                               tmp_path: Path) -> None:
    result = ssh(fake_gpu_host, fakehost_env, tmp_path,
                 "echo $HOME; id -u; command -v nvidia-smi; docker info --format '{{.RegistryConfig.Mirrors}}'")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "/root", "0", str(fake_gpu_host.bin_dir / "nvidia-smi"), "[http://127.0.0.1:5000/]"]


def test_fake_nvidia_smi_answers_like_the_real_one(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
                                                   tmp_path: Path) -> None:
    result = ssh(fake_gpu_host, fakehost_env, tmp_path,
                 f"{QUERY}; nvidia-smi --query-gpu=index,memory.total,utilization.gpu --format=csv; "
                 "nvidia-smi -L; nvidia-smi --query-gpu=bogus --format=csv; echo exit=$?")
    assert result.stdout.splitlines() == [
        "NVIDIA L40S, 46068, 0, 0",
        "index, memory.total [MiB], utilization.gpu [%]",
        "0, 46068 MiB, 0 %",
        f"GPU 0: NVIDIA L40S (UUID: GPU-{fake_gpu_host.index:04d}0000-fake)",
        'Field "bogus" is not a valid field to query.',
        "",
        "exit=2",
    ]


def test_gpus_and_failures_are_configurable(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
                                            tmp_path: Path) -> None:
    try:
        fake_gpu_host.set_gpus([FakeGpu("NVIDIA H100 80GB HBM3", 81559, 512, 7), FakeGpu("NVIDIA H100 80GB HBM3",
                                                                                        81559, "[N/A]", "[N/A]")])
        assert ssh(fake_gpu_host, fakehost_env, tmp_path, QUERY).stdout.splitlines() == [
            "NVIDIA H100 80GB HBM3, 81559, 512, 7", "NVIDIA H100 80GB HBM3, 81559, [N/A], [N/A]"]
        fake_gpu_host.fail_nvidia_smi(9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
                                         "driver.")
        failed = ssh(fake_gpu_host, fakehost_env, tmp_path, QUERY)
        assert failed.returncode == 9
        assert failed.stdout.startswith("NVIDIA-SMI has failed")
    finally:
        fake_gpu_host.heal_nvidia_smi()
        fake_gpu_host.set_gpus([FakeGpu()])


def test_the_host_has_its_own_home_and_gpuctl_dirs(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
                                                   tmp_path: Path) -> None:
    marker = f"fakehost-{time.time_ns()}"
    result = ssh(fake_gpu_host, fakehost_env, tmp_path,
                 f"echo {marker} > /root/{marker} && echo {marker} > /etc/gpuctl/{marker} && ls /var/lib/gpuctl")
    assert result.returncode == 0, result.stderr
    assert (fake_gpu_host.home / marker).read_text() == marker + "\n"
    assert fake_gpu_host.private_path(f"/etc/gpuctl/{marker}").read_text() == marker + "\n"
    assert not Path("/root", marker).exists()
    assert not Path("/etc/gpuctl", marker).exists()


def test_namespace_has_no_default_route(fake_gpu_host: FakeGpuHost) -> None:
    routes = fake_gpu_host.run_inside(["ip", "route"]).stdout
    assert "default" not in routes
    assert f"10.200.{fake_gpu_host.index}.0/24" in routes


def test_registry_mirror_serves_the_engine_image_offline(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
                                                         tmp_path: Path) -> None:
    pulled = ssh(fake_gpu_host, fakehost_env, tmp_path, f"docker pull -q {fakehost_env.image}")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == f"docker.io/{fakehost_env.image}"
    started = time.monotonic()
    missing = ssh(fake_gpu_host, fakehost_env, tmp_path, "docker pull -q library/not-mirrored:1")
    assert missing.returncode != 0
    assert time.monotonic() - started < 15  # no internet: fails at once instead of hanging on DNS


def test_gpu_request_succeeds_and_the_engine_serves(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv) -> None:
    fake_gpu_host.docker("pull", "-q", fakehost_env.image)
    probe = fake_gpu_host.docker("run", "--rm", "--gpus", "all", "--entrypoint", "sh", fakehost_env.image, "-c",
                                 "echo $NVIDIA_VISIBLE_DEVICES")
    assert probe.stdout == "all\n"
    fake_gpu_host.docker("run", "-d", "--name", "fixture-engine", "-p", "0.0.0.0:8100:8000", fakehost_env.image,
                         "org/fixture-model", "--port", "8000")
    try:
        assert [m["id"] for m in _models(fake_gpu_host, 8100)] == ["org/fixture-model"]
    finally:
        fake_gpu_host.docker("rm", "-f", "fixture-engine")


def test_preloaded_image_plays_tgi(fake_gpu_host: FakeGpuHost) -> None:
    fake_gpu_host.preload(tgi.IMAGE)
    fake_gpu_host.docker("run", "-d", "--name", "fixture-tgi", "-p", "0.0.0.0:8101:80", tgi.IMAGE,
                         "--model-id", "org/tgi-model", "--hostname", "0.0.0.0", "--port", "80", "--num-shard", "1")
    try:
        assert [m["id"] for m in _models(fake_gpu_host, 8101)] == ["org/tgi-model"]
    finally:
        fake_gpu_host.docker("rm", "-f", "fixture-tgi")


def test_teardown_leaves_nothing_behind(make_fake_gpu_host, tmp_path: Path) -> None:
    before = _machine_network_state()
    host = make_fake_gpu_host(gpus=[FakeGpu("NVIDIA A10G", 23028)] * 2)
    pids = [pid for pid, _ in host.processes()]
    assert len(pids) >= 4  # holder, sshd, registry, dockerd (+ containerd)
    inside = json.loads(host.docker("info", "--format", "{{json .Runtimes}}").stdout)
    assert "runc" in inside
    host.stop()
    assert not Path(f"/run/netns/{NS_PREFIX}{host.index}").exists()
    assert not Path(f"/sys/class/net/gfh{host.index}r").exists()
    assert not host.workdir.exists()
    assert [pid for pid in pids if is_running(pid)] == []
    assert _machine_network_state() == before


def _models(host: FakeGpuHost, port: int) -> list[dict]:
    url = f"http://{host.address}:{port}/v1/models"
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(url, timeout=2).json()["data"]
        except httpx.HTTPError:
            assert time.monotonic() < deadline, f"nothing answers {url}"
            time.sleep(0.1)


def _machine_network_state() -> tuple[str, str]:
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    return rules, Path("/proc/sys/net/ipv4/ip_forward").read_text()
