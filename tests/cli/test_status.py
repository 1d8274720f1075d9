"""``gpuctl status`` / ``ls``: uptime, cost so far, TTL left and live health, from the state file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.fakehost.cloud import Cloud, add_deployment
from tests.standins.mock_openai import MockProcess


@pytest.fixture(scope="module")
def engine() -> Iterator[MockProcess]:
    with MockProcess() as server:
        yield server


@pytest.fixture
def seeded(fake_cloud: Cloud, engine: MockProcess, isolated: Path) -> Path:
    now = datetime.now(timezone.utc)  # at seeding time: uptime and cost are then exact to the second
    add_deployment(isolated, "alive", provider="fakepod", gpu="L40S", gpu_count=1, region="fake-east-1",
                   price_per_hour=1.25, endpoint=engine.url, health_path="/health",
                   launched_at=now - timedelta(hours=2), expires_at=now + timedelta(minutes=30))
    add_deployment(isolated, "dead", provider="fakepod", gpu="A100-80GB-SXM", gpu_count=2, price_per_hour=3.0,
                   endpoint="http://127.0.0.1:9", launched_at=now - timedelta(minutes=10))
    add_deployment(isolated, "crashed", status="provisioning", launched_at=None, price_per_hour=1.0)
    add_deployment(isolated, "gone", status="terminated", price_per_hour=2.0, launched_at=now - timedelta(hours=3),
                   ended_at=now - timedelta(hours=1), cost_usd=4.0)
    return isolated


def test_nothing_deployed(gpuctl) -> None:
    result = gpuctl("status")
    assert result.exit_code == 0 and result.stdout == ""
    assert "no deployments ('gpuctl up MODEL' starts one)" in result.stderr
    assert json.loads(gpuctl("ls", "--json").stdout) == []


def test_json_rows_with_cost_ttl_and_health(gpuctl, seeded: Path, engine: MockProcess) -> None:
    rows = {row["name"]: row for row in json.loads(gpuctl("status", "--json").stdout)}
    assert sorted(rows) == ["alive", "crashed", "dead"], "ended deployments are hidden"
    alive = rows["alive"]
    assert (alive["endpoint"], alive["gpu"], alive["gpu_count"], alive["health"]) == (
        f"{engine.url}/v1", "L40S", 1, "healthy")
    assert alive["uptime_seconds"] == pytest.approx(7200, abs=30)
    assert alive["cost_usd"] == pytest.approx(2.5, abs=0.02)
    assert alive["ttl_left_seconds"] == pytest.approx(1800, abs=30)
    assert rows["dead"]["health"] == "unreachable: ConnectError"
    assert rows["dead"]["cost_usd"] == pytest.approx(0.5, abs=0.02)
    assert rows["crashed"]["health"] == "abandoned: 'gpuctl down crashed' cleans up"
    assert rows["crashed"]["uptime_seconds"] is None and rows["crashed"]["cost_usd"] == 0.0


def test_all_includes_ended_deployments_with_their_final_cost(gpuctl, seeded: Path) -> None:
    rows = {row["name"]: row for row in json.loads(gpuctl("status", "--all", "--no-probe", "--json").stdout)}
    gone = rows["gone"]
    assert (gone["status"], gone["cost_usd"], gone["uptime_seconds"], gone["ttl_left_seconds"]) == (
        "terminated", 4.0, 7200.0, None)
    assert rows["alive"]["health"] is None, "--no-probe contacts nothing"


def test_human_table(gpuctl, seeded: Path, engine: MockProcess) -> None:
    result = gpuctl("ls", "--no-probe")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "PROVIDER", "GPU", "REGION", "ENDPOINT", "UPTIME", "$/HR", "COST",
                                "TTL", "LEFT", "HEALTH"]
    alive = next(line for line in lines if line.startswith("alive"))
    assert alive.split() == ["alive", "running", "fakepod", "1", "x", "L40S", "fake-east-1", f"{engine.url}/v1",
                             "2h", "$1.25", "$2.50", "30m", "-"]


def test_a_live_instance_never_shows_a_negative_uptime_or_no_cost(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    """What 'down' racing 'up' once left behind: ended before it launched, then running."""
    now = datetime.now(timezone.utc)
    add_deployment(isolated, "raced", status="running", instance_id="fakecloud-9", price_per_hour=2.0,
                   launched_at=now - timedelta(hours=1), ended_at=now - timedelta(hours=2), cost_usd=0.0,
                   expires_at=now + timedelta(hours=1))
    add_deployment(isolated, "launching", status="starting", instance_id="fakecloud-8", price_per_hour=2.0,
                   launched_at=None, created_at=now - timedelta(minutes=30))
    rows = {row["name"]: row for row in json.loads(gpuctl("status", "--no-probe", "--json").stdout)}
    raced = rows["raced"]
    assert raced["uptime_seconds"] == pytest.approx(3600, abs=30)
    assert raced["cost_usd"] == pytest.approx(2.0, abs=0.02)
    assert raced["ttl_left_seconds"] == pytest.approx(3600, abs=30)
    assert rows["launching"]["cost_usd"] == pytest.approx(1.0, abs=0.02), "billing since it was created, at most"


def test_one_deployment_with_its_budget_idle_limit_and_cold_start(gpuctl, fake_cloud: Cloud, isolated: Path) -> None:
    from gpuctl.models.phases import Phase

    now = datetime.now(timezone.utc)
    launched = now - timedelta(hours=1)
    phases = [Phase(name="provision", started_at=launched - timedelta(seconds=1), ended_at=launched + timedelta(
                  seconds=59)),
              Phase(name="image", started_at=launched + timedelta(seconds=60), ended_at=launched + timedelta(
                  seconds=160), bytes=8_200_000_000, source="registry"),
              Phase(name="engine", started_at=launched + timedelta(seconds=160))]  # an up that died in it
    add_deployment(isolated, "capped", instance_id="fakecloud-1", price_per_hour=2.0, launched_at=launched,
                   budget_usd=5.0, idle_seconds=1800, budget_ends_at=launched + timedelta(hours=2.5), phases=phases)
    add_deployment(isolated, "plain", instance_id="fakecloud-2", price_per_hour=1.0, launched_at=launched)

    doc = json.loads(gpuctl("status", "capped", "--no-probe", "--json").stdout)
    assert doc["name"] == "capped" and doc["budget_usd"] == 5.0 and doc["idle_seconds"] == 1800
    assert doc["budget_left_usd"] == pytest.approx(3.0, abs=0.02)
    cold = doc["cold_start"]
    assert [p["name"] for p in cold["phases"]] == ["provision", "image", "engine"]
    assert cold["phases"][2]["ended_at"] is None and cold["seconds"] == pytest.approx(161, abs=0.01)
    assert cold["billed_seconds"] == pytest.approx(160, abs=0.01) and cold["cost_usd"] == pytest.approx(0.0889)

    human = gpuctl("status", "capped", "--no-probe").stdout
    assert "idle limit 30m" in human and "budget $5.00, $3.00 left (spent at " in human
    assert "cold start 2m41s, $0.09 at $2.00/h:" in human
    assert "image pull       1m40s  8.2 GB from registry" in human and "engine load unfinished" in " ".join(
        human.split())

    table = gpuctl("status", "--no-probe").stdout.splitlines()
    assert "BUDGET LEFT" in table[0]
    assert table[2].split()[-2:] == ["$3.00", "-"] and table[3].split()[-2:] == ["-", "-"]
    missing = gpuctl("status", "nope")
    assert missing.exit_code == 3 and "nope" in missing.stderr
