"""``gpuctl cost``: launch-price bills per deployment and project, beside RunPod's own billing records."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gpuctl.cli.cost import parse_since
from gpuctl.deploy.records import Records
from gpuctl.errors import UsageError
from gpuctl.models.deployment import Deployment
from gpuctl.providers.runpod.provider import RunPodProvider
from gpuctl.state import StateStore
from tests.providers.test_runpod_lifecycle import secure_l40s
from tests.standins.runpod_server import DISK_USD_PER_GB_HOUR

NOW = datetime.now(timezone.utc)


@pytest.fixture(autouse=True)
def now() -> None:
    """Times are relative to the test's start, not to when the module was collected."""
    global NOW
    NOW = datetime.now(timezone.utc)


def write(project: Path, **fields: object) -> Deployment:
    base: dict[str, object] = {"model": "m", "idempotency_token": f"t-{fields['name']}", "project_id": "p1",
                               "created_at": NOW - timedelta(days=3)}
    deployment = Deployment.model_validate({**base, **fields})
    with StateStore(project).transaction() as state:
        state.deployments[deployment.name] = deployment
    return deployment


def test_bill_at_launch_prices_beside_runpods_figure(gpuctl, runpod_api, isolated: Path) -> None:
    pod = RunPodProvider().launch(secure_l40s()).id
    usage = runpod_api.state.usage[pod]
    usage.start, usage.end = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    # launched at a price that has changed since: the bill keeps the launch price
    write(isolated, name="pod", provider="runpod", status="terminated", instance_id=pod, price_per_hour=0.80,
          launched_at=NOW - timedelta(hours=2), ended_at=NOW - timedelta(hours=1))
    write(isolated, name="vm", provider="lambda", status="running", instance_id="i-1", price_per_hour=1.5,
          launched_at=NOW - timedelta(minutes=30))
    write(isolated, name="mine", provider="ssh", status="terminated", price_per_hour=0.0,
          launched_at=NOW - timedelta(hours=5), ended_at=NOW - timedelta(hours=4))
    write(isolated, name="never", provider="lambda", status="terminated", price_per_hour=1.5)  # failed before launch
    result = gpuctl("cost", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {r["name"]: r for r in report["deployments"]}
    assert set(rows) == {"pod", "vm", "mine"}
    assert rows["pod"]["hours"] == pytest.approx(1.0) and rows["pod"]["cost_usd"] == pytest.approx(0.80)
    disk = runpod_api.state.pods[pod].body["disk"] * DISK_USD_PER_GB_HOUR
    assert rows["pod"]["provider_cost_usd"] == pytest.approx(0.86 + disk, abs=1e-4)  # what RunPod says
    assert rows["vm"]["cost_usd"] == pytest.approx(0.75, abs=0.01) and rows["vm"]["provider_cost_usd"] is None
    (project,) = report["projects"]
    assert project["project_id"] == "p1" and project["deployments"] == 3 and project["provider_covered"] == 1
    assert project["cost_usd"] == pytest.approx(0.80 + rows["vm"]["cost_usd"], abs=1e-3)
    notes = {p["provider"]: (p["billing_api"], p["note"]) for p in report["providers"]}
    assert notes["runpod"][0] is True
    assert notes["lambda"] == (False, "Lambda Cloud has no billing API gpuctl can read: the figure is gpuctl's own "
                                      "(price at launch x time billed)")
    assert notes["ssh"][1].startswith("your own machine")
    (call,) = runpod_api.calls("GET", "/v2/billing/pods")
    assert call.query["startTime"] == [(NOW - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")]


def test_since_cuts_the_window_and_drops_what_ended_before(gpuctl, isolated: Path) -> None:
    write(isolated, name="old", provider="lambda", status="terminated", instance_id="i-1", price_per_hour=2.0,
          launched_at=NOW - timedelta(days=2), ended_at=NOW - timedelta(days=2) + timedelta(hours=1))
    write(isolated, name="now", provider="lambda", status="running", instance_id="i-2", price_per_hour=2.0,
          launched_at=NOW - timedelta(hours=3))
    result = gpuctl("cost", "--since", "1h", "--json")
    rows = json.loads(result.stdout)["deployments"]
    assert [r["name"] for r in rows] == ["now"] and rows[0]["cost_usd"] == pytest.approx(2.0, abs=0.01)
    table = gpuctl("cost")
    assert table.exit_code == 0
    assert "old" in table.stdout and "now" in table.stdout and "project p1: $" in table.stdout
    assert "Lambda Cloud has no billing API" in table.stderr


def test_one_deployment_by_name_and_unknown_names(gpuctl, isolated: Path) -> None:
    write(isolated, name="solo", provider="lambda", status="running", instance_id="i-1", price_per_hour=1.0,
          launched_at=NOW - timedelta(hours=1))
    assert [r["name"] for r in json.loads(gpuctl("cost", "solo", "--json").stdout)["deployments"]] == ["solo"]
    missing = gpuctl("cost", "nope")
    assert missing.exit_code == 3 and "no deployment named 'nope'" in missing.stderr
    assert Records(StateStore(isolated)).get("solo").name == "solo"


def test_since_takes_dates_times_and_durations() -> None:
    now = datetime(2026, 5, 10, 12, tzinfo=timezone.utc)
    assert parse_since("2026-05-01", now) == datetime(2026, 5, 1, tzinfo=timezone.utc)
    assert parse_since("2026-05-01T06:30", now) == datetime(2026, 5, 1, 6, 30, tzinfo=timezone.utc)
    assert parse_since("7d", now) == datetime(2026, 5, 3, 12, tzinfo=timezone.utc)
    with pytest.raises(UsageError, match="neither a date nor a duration"):
        parse_since("last tuesday", now)
