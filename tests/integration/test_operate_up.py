"""Operating what ``gpuctl up --host`` started, end to end on a fake GPU host: the cold start on the record
(every phase, in order, with the bytes it moved), the forecast the next plan makes from it, and the
watchdog's budget and idle limit ending the engine with gpuctl doing nothing in between."""

from __future__ import annotations

import json
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest

from gpuctl.engines import image_facts
from gpuctl.state import StateStore
from tests.fakehost.cloud import wait_until, write_recipe
from tests.fakehost.host import FakeGpu, FakeGpuHost, FakeHostEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fake_host_hub")]

HOST_PHASES = ["host", "image", "weights", "engine", "first_token"]


def host_args(fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv) -> list[str]:
    return ["--host", fake_gpu_host.target, "--identity", str(fakehost_env.client_key), "--accept-host-key"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def watchdog_log(fake_gpu_host: FakeGpuHost, name: str) -> str:
    logs = list((fake_gpu_host.home / ".gpuctl").glob(f"watchdog.*/watchdog-{name}.log"))
    return logs[0].read_text() if logs else ""


def test_up_records_every_phase_in_order_and_the_next_plan_forecasts_from_it(
        gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, isolated: Path) -> None:
    write_recipe(isolated)
    image = image_facts("vllm").image
    fake_gpu_host.docker("image", "rm", "--force", image, check=False)  # pulled from the registry, bytes and all
    result = gpuctl("up", "tiny", *host_args(fake_gpu_host, fakehost_env), "--name", "cold", "-y", "--ttl", "1h",
                    "--json")
    assert result.exit_code == 0, result.stderr
    cold = json.loads(result.stdout)["cold_start"]
    phases = cold["phases"]
    assert [p["name"] for p in phases] == HOST_PHASES, "a --host machine is not provisioned"
    for before, after in pairwise(phases):
        assert at(before["started_at"]) <= at(before["ended_at"]) <= at(after["started_at"]), (before, after)
    by_name = {p["name"]: p for p in phases}
    assert by_name["image"]["source"] == "registry" and by_name["image"]["bytes"] > 1_000_000
    assert by_name["weights"]["source"] == "hub" and by_name["weights"]["bytes"] > 0
    assert cold["seconds"] > 0 and cold["cost_usd"] == 0.0  # $0.00/h: the wait cost nothing
    assert "cold start " in result.stderr and "image pull" in result.stderr and "from registry" in result.stderr

    record = StateStore(isolated).read().deployments["cold"]
    assert [p.name for p in record.phases] == HOST_PHASES and all(p.ended_at for p in record.phases)
    shown = json.loads(gpuctl("status", "cold", "--json", "--no-probe").stdout)
    assert [p["name"] for p in shown["cold_start"]["phases"]] == HOST_PHASES
    human = gpuctl("status", "cold", "--no-probe").stdout
    assert "cold start " in human and "first token" in human

    history = (isolated.parent / "cache" / "cold-starts.jsonl").read_text().splitlines()
    assert len(history) == 1 and json.loads(history[0])["provider"] == "ssh"
    plan = json.loads(gpuctl("up", "tiny", "--host", fake_gpu_host.target, "--identity",
                             str(fakehost_env.client_key), "--dry-run", "--json").stdout)
    forecast = plan["cold_start"]
    assert forecast["history_ups"] == 1 and forecast["seconds"] > 0
    basis = {e["name"]: e["basis"] for e in forecast["phases"]}
    assert basis["host"] == "history: median of 1 up(s) on ssh"
    assert "the pull of " in basis["image"], "the image's size as pulled before"

    assert gpuctl("down", "cold").exit_code == 0
    # a second up on the same host: the image and the weights are there already
    again = gpuctl("up", "tiny", *host_args(fake_gpu_host, fakehost_env), "--name", "warm", "-y", "--json")
    assert again.exit_code == 0, again.stderr
    warm = {p["name"]: p for p in json.loads(again.stdout)["cold_start"]["phases"]}
    assert (warm["image"]["source"], warm["image"]["bytes"]) == ("cached", 0)
    assert (warm["weights"]["source"], warm["weights"]["bytes"]) == ("cache", 0)
    assert gpuctl("down", "warm").exit_code == 0


def test_a_budget_that_runs_out_ends_the_engine_by_the_watchdog(
        gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv, isolated: Path) -> None:
    write_recipe(isolated)
    # $600/h and $7.50: 45 s from the launch, long enough for the up itself on a loaded machine
    result = gpuctl("up", "tiny", *host_args(fake_gpu_host, fakehost_env), "--name", "spend", "-y",
                    "--price-per-hour", "600", "--budget", "7.5")
    assert result.exit_code == 0, result.stderr
    assert "budget $7.50; at most $7.50 (45s at $600.00/h)" in result.stderr
    record = StateStore(isolated).read().deployments["spend"]
    assert record.budget_usd == 7.5 and record.budget_ends_at is not None and record.watchdog_pid is not None
    assert record.expires_at is None, "no TTL was asked for"
    (row,) = json.loads(gpuctl("status", "--json", "--no-probe").stdout)
    assert 0 <= row["budget_left_usd"] < 7.5 and row["budget_usd"] == 7.5
    assert "BUDGET LEFT" in gpuctl("status", "--no-probe").stdout
    assert "budget $7.50, $" in gpuctl("status", "spend", "--no-probe").stdout
    wait_until(lambda: fake_gpu_host.containers() != ["gpuctl-spend running"], "the budget", timeout=120)
    assert fake_gpu_host.containers() == ["gpuctl-spend exited"]
    assert "budget spent" in watchdog_log(fake_gpu_host, "spend")
    assert gpuctl("down", "spend").exit_code == 0


def test_a_short_idle_limit_ends_a_quiet_engine(gpuctl, fake_gpu_host: FakeGpuHost, fakehost_env: FakeHostEnv,
                                               isolated: Path) -> None:
    (isolated / "gpuctl.yaml").write_text("idle: 1h\n")  # the flag wins over gpuctl.yaml
    write_recipe(isolated)
    result = gpuctl("up", "tiny", *host_args(fake_gpu_host, fakehost_env), "--name", "quiet", "-y", "--idle", "4s")
    assert result.exit_code == 0, result.stderr
    record = StateStore(isolated).read().deployments["quiet"]
    assert record.idle_seconds == 4 and record.watchdog_activity is not None
    assert record.watchdog_activity.endswith("/quiet.activity")
    wait_until(lambda: fake_gpu_host.containers() != ["gpuctl-quiet running"], "the idle limit", timeout=120)
    assert fake_gpu_host.containers() == ["gpuctl-quiet exited"]
    log = watchdog_log(fake_gpu_host, "quiet")
    assert "idle clock started" in log and "idle for" in log
    assert gpuctl("down", "quiet").exit_code == 0


def test_top_reads_the_hosts_gpus_and_the_engines_own_counters(gpuctl, make_fake_gpu_host, fakehost_env: FakeHostEnv,
                                                               isolated: Path) -> None:
    """top's GPU figures are the host's nvidia-smi, its request figures the engine's /metrics, both over SSH."""
    host = make_fake_gpu_host()
    write_recipe(isolated)
    up = gpuctl("up", "tiny", *host_args(host, fakehost_env), "--name", "seen", "-y", "--ttl", "1h")
    assert up.exit_code == 0, up.stderr
    try:
        host.set_gpus([FakeGpu(memory_used_mib=30001, utilization_pct=87)])  # the engine at work, as nvidia-smi sees it
        before = json.loads(gpuctl("top", "seen", "--json", "-n", "1").stdout.splitlines()[0])
        bench = gpuctl("bench", "seen", "-n", "6", "--warmup", "0", "-c", "2", "--output-len", "4", "--json")
        assert bench.exit_code == 0, bench.stderr
        result = gpuctl("top", "seen", "--json", "-n", "1")
        assert result.exit_code == 0, result.stderr
        (row,) = [json.loads(line) for line in result.stdout.splitlines()]
        assert row["gpus"] == [{"index": 0, "name": "NVIDIA L40S", "memory_total_mib": 46068,
                                "memory_used_mib": 30001, "utilization_pct": 87}]
        assert row["requests_total"] == before["requests_total"] + 6, "the engine counted the bench's requests"
        assert (row["running"], row["waiting"], row["problems"]) == (0, 0, [])
        assert row["ttft"] is not None and row["limits_enforced_by"] == "host"
    finally:
        assert gpuctl("down", "seen").exit_code == 0
