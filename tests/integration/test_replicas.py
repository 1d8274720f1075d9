"""``gpuctl up --replicas N`` end to end: the real vllm-router (PyPI) in front of replicas on fake GPU hosts.

Three fake hosts are the fake cloud's machines (one per instance, round robin); every replica goes
through the ordinary ``up`` (SSH, host check, weights from the stand-in hub, engine container, health,
smoke) and joins the router once healthy. Nothing inside gpuctl is mocked.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import httpx
import pytest

from gpuctl.deploy.router import is_ours
from gpuctl.state import StateStore
from tests.fakehost.cloud import Cloud, gpuctl_process, make_offer, wait_until, write_recipe
from tests.fakehost.fixtures import hosts_sharing_a_hub
from tests.fakehost.host import FakeGpuHost, FakeHostEnv

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(find_spec("vllm_router") is None, reason="vllm-router is not installed (test extra)")]

MODEL = "meta-llama/Meta-Llama-3-8B-Instruct"


@pytest.fixture(scope="module")
def hosts(fakehost_env: FakeHostEnv) -> Iterator[list[FakeGpuHost]]:
    """Three fake GPU hosts; the first one's stand-in hub serves the weights to all of them."""
    with hosts_sharing_a_hub(fakehost_env, 3) as started:
        yield started


@pytest.fixture
def cloud(fake_cloud: Cloud, hosts: list[FakeGpuHost], isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    assert hosts[0].hub is not None
    monkeypatch.setenv("HF_ENDPOINT", hosts[0].hub.url)
    for host in hosts:
        for container in host.docker("ps", "-aq").stdout.split():
            host.docker("rm", "--force", container)
    write_recipe(isolated)
    fake_cloud.use_hosts(hosts)
    fake_cloud.add_offer(make_offer("fakecloud", "fc.l40s", 1.25))
    return fake_cloud


def _env(gpuctl, name: str) -> tuple[str, str]:
    lines = gpuctl("env", name).stdout.splitlines()
    values = dict(line.removeprefix("export ").split("=", 1) for line in lines)
    return values["OPENAI_BASE_URL"], values["OPENAI_API_KEY"]


def _complete(base: str, key: str) -> int:
    body = {"model": MODEL, "prompt": "hello", "max_tokens": 2}
    return httpx.post(f"{base}/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                      timeout=30).status_code


def _served(host: FakeGpuHost) -> int:
    """Requests the engine on ``host`` answered (its mock's own count)."""
    return int(httpx.get(f"http://{host.address}:8000/_mock/stats", timeout=10).json()["requests"])


def test_replicas_serve_scale_survive_a_dead_engine_and_go_down(gpuctl, cloud: Cloud, hosts: list[FakeGpuHost],
                                                                 isolated: Path) -> None:
    refused = gpuctl("up", "tiny", "--replicas", "2", "--name", "svc", "--ttl", "1h")
    assert refused.exit_code == 2 and cloud.live() == []
    assert "deploy svc: 2 replica(s) of tiny behind vllm-router (on this machine)" in refused.stderr
    assert "svc-1: fakecloud 1 x L40S in fake-east-1 ($1.25/h)" in refused.stderr
    assert "total $2.50/h, TTL 1h, at most $2.50 in total" in refused.stderr

    result = gpuctl("up", "tiny", "--replicas", "2", "--name", "svc", "--router-policy", "round_robin", "--ttl",
                    "1h", "-y")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("svc is ready: http://127.0.0.1:")
    assert "2 replicas behind vllm-router, $2.50/h" in result.stdout
    assert len(cloud.live()) == 2
    state = StateStore(isolated).read()
    service = state.services["svc"]
    assert service.members == ["svc-1", "svc-2"] and service.status == "running" and service.router is not None
    assert all(state.deployments[m].service == "svc" and state.deployments[m].public for m in service.members)
    base, key = _env(gpuctl, "svc")
    assert base == f"{service.router.url}/v1"
    assert key not in (isolated / ".gpuctl" / "state.json").read_text()
    assert key not in Path(f"/proc/{service.router.pid}/cmdline").read_bytes().decode()

    before = [_served(h) for h in hosts[:2]]
    assert [_complete(base, key) for _ in range(6)] == [200] * 6
    assert all(after > was for after, was in zip([_served(h) for h in hosts[:2]], before, strict=True)), \
        "both replicas served"
    assert _complete(base, "wrong-key") == 401

    view = json.loads(gpuctl("status", "svc", "--json").stdout)
    assert (view["replicas_running"], view["replicas_wanted"], view["price_per_hour"]) == (2, 2, 2.5)
    assert view["router"]["up"] is True
    assert [(r["name"], r["health"], r["routed"]) for r in view["replicas"]] == [
        ("svc-1", "healthy", "healthy"), ("svc-2", "healthy", "healthy")]

    scaled = gpuctl("scale", "svc", "3", "-y")
    assert scaled.exit_code == 0, scaled.stderr
    assert "add to svc: 1 replica(s)" in scaled.stderr and "svc-3: fakecloud" in scaled.stderr
    assert len(cloud.live()) == 3

    hosts[1].docker("kill", "gpuctl-svc-2")  # one engine dies
    assert [_complete(base, key) for _ in range(10)] == [200] * 10, "the router routes around it"
    view = json.loads(gpuctl("status", "svc", "--json").stdout)
    dead = {r["name"]: r for r in view["replicas"]}["svc-2"]
    assert dead["health"].startswith("unreachable")
    assert view["problems"] == ["replica svc-2 is " + dead["health"] + ": 'gpuctl scale svc' takes it out and "
                                "reports the service short"]

    cleaned = gpuctl("scale", "svc", "-y")
    assert cleaned.exit_code == 0, cleaned.stderr
    assert "replica svc-2 died: taking it out of the router and down" in cleaned.stderr
    assert "svc runs 2 of 3 replicas: the dead were not replaced" in cleaned.stderr
    assert len(cloud.live()) == 2
    view = json.loads(gpuctl("status", "svc", "--json").stdout)
    assert (view["status"], view["replicas_running"], view["replicas_wanted"]) == ("degraded", 2, 3)
    assert view["problems"] == ["svc runs 2 of 3 replicas: 'gpuctl scale svc 3' adds new ones"]
    down_to_one = gpuctl("scale", "svc", "1", "-y")
    assert down_to_one.exit_code == 0, down_to_one.stderr
    assert len(cloud.live()) == 1
    view = json.loads(gpuctl("status", "svc", "--json").stdout)
    assert [r["name"] for r in view["replicas"] if r["status"] == "running"] == ["svc-1"]
    assert [_complete(base, key) for _ in range(3)] == [200] * 3

    down = gpuctl("down", "svc")
    assert down.exit_code == 0, down.stderr
    assert down.stdout.startswith("svc: down (")
    assert cloud.live() == []
    assert not is_ours(service.router.pid, service.router.pid_start), "no router left"
    assert StateStore(isolated).read().services["svc"].status == "terminated"
    assert all(h.containers() == [] for h in hosts)


def test_ctrl_c_mid_up_tears_down_every_replica_launched_so_far(cloud: Cloud, isolated: Path) -> None:
    process = gpuctl_process("up", "tiny", "--replicas", "3", "--name", "cc", "-y")
    try:
        wait_until(lambda: len(cloud.world["launches"]) >= 2, "the second replica's launch", timeout=120)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert cloud.live() == [], "every replica launched so far is gone"
    state = StateStore(isolated).read()
    service = state.services["cc"]
    assert service.status == "terminated" and service.router is not None
    assert not is_ours(service.router.pid, service.router.pid_start), "the router is gone too"
    assert all(d.status == "terminated" for d in state.deployments.values())


def test_router_on_a_replicas_machine(gpuctl, cloud: Cloud, hosts: list[FakeGpuHost], isolated: Path) -> None:
    """``--router host``: the router runs on the first replica's machine, reached through an SSH tunnel."""
    hosts[0].install_vllm_router()
    try:
        result = gpuctl("up", "tiny", "--replicas", "1", "--router", "host", "--name", "onhost", "-y")
        assert result.exit_code == 0, result.stderr
        assert "the router listens on root@" in result.stdout and "ssh -N -L 9000:127.0.0.1:9000" in result.stdout
        service = StateStore(isolated).read().services["onhost"]
        assert service.router is not None and (service.router.placement, service.router.port) == ("host", 9000)
        assert any("vllm::router" in cmd for _, cmd in hosts[0].processes())
        view = json.loads(gpuctl("status", "onhost", "--json").stdout)
        assert view["router"]["up"] is True
        assert [(r["name"], r["routed"]) for r in view["replicas"]] == [("onhost-1", "healthy")], \
            "the router reaches the replica on its own loopback"
        down = gpuctl("down", "onhost")
        assert down.exit_code == 0, down.stderr
        assert cloud.live() == []
        assert not any("vllm::router" in cmd for _, cmd in hosts[0].processes()), "the router went first"
    finally:
        hosts[0].uninstall_vllm_router()


def test_replace_failed_replaces_a_dead_replica(gpuctl, cloud: Cloud, hosts: list[FakeGpuHost],
                                                isolated: Path) -> None:
    result = gpuctl("up", "tiny", "--replicas", "2", "--replace-failed", "--name", "rf", "-y")
    assert result.exit_code == 0, result.stderr
    hosts[0].docker("kill", "gpuctl-rf-1")
    replaced = gpuctl("scale", "rf", "-y")
    assert replaced.exit_code == 0, replaced.stderr
    assert "replica rf-1 died: taking it out of the router and down" in replaced.stderr
    assert "rf-3: fakecloud 1 x L40S" in replaced.stderr, "a new replica in its place, priced and confirmed"
    view = json.loads(gpuctl("status", "rf", "--json").stdout)
    assert (view["status"], view["replicas_running"], view["replicas_wanted"], view["problems"]) == (
        "running", 2, 2, [])
    assert sorted(r["name"] for r in view["replicas"] if r["status"] == "running") == ["rf-2", "rf-3"]
    base, key = _env(gpuctl, "rf")
    assert [_complete(base, key) for _ in range(4)] == [200] * 4
    down = gpuctl("down", "--all")  # the service first: its router, then its replicas
    assert down.exit_code == 0, down.stderr
    assert "service rf: down (its router and replicas)" in down.stderr and cloud.live() == []
    service = StateStore(isolated).read().services["rf"]
    assert service.status == "terminated" and service.router is not None
    assert not is_ours(service.router.pid, service.router.pid_start), "no router left"
