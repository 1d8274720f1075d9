"""``gpuctl top`` against the fake engine on loopback: its /metrics read back, rates, latency, money, limits."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gpuctl.metrics.engines import read
from gpuctl.models.deployment import Deployment
from gpuctl.state import StateStore
from tests.fakehost.local_engine import LocalEngine

NOW = datetime.now(timezone.utc)


@pytest.fixture(autouse=True)
def now() -> None:
    """Times are relative to the test's start, not to when the module was collected."""
    global NOW
    NOW = datetime.now(timezone.utc)


@pytest.fixture
def engine() -> Iterator[LocalEngine]:
    with LocalEngine("serve", "org/m", mock_args="--ttft-ms 50 --itl-ms 10") as local:
        yield local


def write(project: Path, **fields: object) -> Deployment:
    base: dict[str, object] = {"model": "m", "idempotency_token": f"t-{fields['name']}", "project_id": "p1",
                               "status": "running", "engine": "vllm", "created_at": NOW - timedelta(hours=2)}
    deployment = Deployment.model_validate({**base, **fields})
    with StateStore(project).transaction() as state:
        state.deployments[deployment.name] = deployment
    return deployment


def rows(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_top_json_reads_the_engines_metrics(gpuctl, engine: LocalEngine, isolated: Path) -> None:
    for _ in range(3):
        engine.complete(max_tokens=5)
    write(isolated, name="pod", provider="runpod", instance_id="pod-1", endpoint=engine.url, price_per_hour=0.86,
          launched_at=NOW - timedelta(hours=1), expires_at=NOW + timedelta(hours=1), budget_usd=5.0, idle_seconds=600)
    result = gpuctl("top", "--json", "-n", "2", "--interval", "1s")
    assert result.exit_code == 0, result.stderr
    first, second = rows(result.stdout)
    scrape = read(engine.metrics())  # what the stand-in reports now (no traffic since)
    assert scrape.ttft is not None and scrape.itl is not None
    for row in (first, second):
        assert row["name"] == "pod" and row["engine"] == "vllm" and row["gpus"] is None  # RunPod: no host to read
        assert (row["running"], row["waiting"], row["kv_cache_usage"]) == (0.0, 0.0, 0.0)
        assert row["requests_total"] == scrape.reading.requests_total == engine.stats()["requests"] == 3
        assert 40 <= row["ttft"]["p50_ms"] <= 60 and row["ttft"]["count"] == 3  # the mock's 50 ms
        assert 5 <= row["itl"]["p50_ms"] <= 25  # the mock's 10 ms, in vLLM's 10/25 ms buckets
        assert row["latency_window"] == "since start"
        assert row["cost_usd"] == pytest.approx(0.86, abs=0.01)
        assert row["budget_left_usd"] == pytest.approx(5.0 - row["cost_usd"])
        assert 3500 < row["ttl_left_seconds"] <= 3600
        assert row["limits_enforced_by"] == "gpuctl" and row["problems"] == []
    assert first["prompt_tokens_per_s"] is None  # no earlier sample to take a rate from
    assert second["prompt_tokens_per_s"] == 0.0 and second["generation_tokens_per_s"] == 0.0
    assert 590 < second["idle_left_seconds"] <= 600  # gpuctl's own idle clock started with the first sample


def test_rates_and_latency_over_the_interval_under_traffic(gpuctl, engine: LocalEngine, isolated: Path) -> None:
    write(isolated, name="busy", provider="runpod", instance_id="pod-2", endpoint=engine.url, price_per_hour=1.0,
          launched_at=NOW - timedelta(minutes=5))
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            engine.complete(max_tokens=8)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        result = gpuctl("top", "busy", "--json", "-n", "3", "--interval", "1s")
    finally:
        stop.set()
        sender.join(10)
    assert result.exit_code == 0, result.stderr
    last = rows(result.stdout)[-1]
    assert last["generation_tokens_per_s"] > 0 and last["prompt_tokens_per_s"] > 0
    assert last["latency_window"] == "interval" and 40 <= last["ttft"]["p50_ms"] <= 60
    assert last["requests_total"] <= engine.stats()["requests"]


def test_nothing_running_and_a_name_that_is_not_running(gpuctl, isolated: Path) -> None:
    quiet = gpuctl("top", "--json", "-n", "1")
    assert quiet.exit_code == 0 and quiet.stdout == "" and "no running deployments" in quiet.stderr
    write(isolated, name="gone", provider="runpod", status="terminated")
    refused = gpuctl("top", "gone")
    assert refused.exit_code == 2 and "'gone' is not running (status terminated)" in refused.stderr


def test_an_unreachable_engine_is_a_problem_not_a_crash(gpuctl, isolated: Path) -> None:
    from tests.fakehost.local_engine import free_port

    write(isolated, name="dark", provider="runpod", instance_id="pod-3", endpoint=f"http://127.0.0.1:{free_port()}",
          price_per_hour=1.0, launched_at=NOW - timedelta(minutes=5))
    result = gpuctl("top", "--json", "-n", "1")
    (row,) = rows(result.stdout)
    assert result.exit_code == 0 and row["running"] is None and row["problems"] == ["metrics: ConnectError"]


def test_top_takes_down_a_deployment_whose_budget_is_spent(gpuctl, engine: LocalEngine, fake_cloud,
                                                           isolated: Path) -> None:
    """Where the provider runs the engine, top enforces the limits: a spent budget ends the pod."""
    from gpuctl.deploy import tags
    from gpuctl.deploy.naming import project_id

    project = project_id(isolated / ".gpuctl")
    pod = fake_cloud.add_instance("fakepod", tags.deployment_tags(project, "spent"), price=1.0)
    write(isolated, name="spent", provider="fakepod", project_id=project, instance_id=pod, endpoint=engine.url,
          price_per_hour=1.0, launched_at=NOW - timedelta(hours=1), budget_usd=0.5,
          tags=tags.deployment_tags(project, "spent"))
    result = gpuctl("top", "--json", "-n", "1")
    assert result.exit_code == 0, result.stderr
    (row,) = rows(result.stdout)
    assert row["budget_left_usd"] < 0
    assert "spent: its budget is spent: taking it down" in result.stderr
    assert fake_cloud.world["terminations"] == [pod]
    assert StateStore(isolated).read().deployments["spent"].status == "terminated"


def test_a_limit_gpuctl_enforces_takes_the_deployment_down(gpuctl, fake_cloud, engine: LocalEngine,
                                                           isolated: Path) -> None:
    from tests.fakehost.cloud import make_offer

    fake_cloud.add_offer(make_offer("fakepod", "fp.l40s", 2.0))
    write(isolated, name="spent", provider="fakepod", instance_id="fakepod-1", endpoint=engine.url,
          price_per_hour=10.0, launched_at=NOW - timedelta(hours=1), budget_usd=1.0)
    result = gpuctl("top", "--json", "-n", "1")
    assert result.exit_code == 0, result.stderr
    assert "spent: its budget is spent: taking it down" in result.stderr and "spent: down" in result.stderr
    assert StateStore(isolated).read().deployments["spent"].status == "terminated"


def test_a_services_name_watches_its_running_replicas(gpuctl, engine: LocalEngine, isolated: Path) -> None:
    from gpuctl.models.deployment import Service

    for name, status in (("svc-1", "running"), ("svc-2", "terminated"), ("other", "running")):
        write(isolated, name=name, provider="runpod", instance_id=f"pod-{name}", endpoint=engine.url,
              price_per_hour=1.0, launched_at=NOW - timedelta(minutes=5), status=status,
              service="svc" if name != "other" else None)
    with StateStore(isolated).transaction() as state:
        state.services["svc"] = Service(name="svc", model="m", status="running", replicas=2,
                                        members=["svc-1", "svc-2"])
    result = gpuctl("top", "svc", "--json", "-n", "1")
    assert result.exit_code == 0, result.stderr
    assert [row["name"] for row in rows(result.stdout)] == ["svc-1"]
