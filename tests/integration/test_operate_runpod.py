"""Limits where the provider runs the engine itself (RunPod, through its spec-validated stand-in): no watchdog can
run beside the pod, so the plan says gpuctl enforces them, the record carries when the budget runs out, and
``gpuctl gc`` ends a pod whose budget is spent."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gpuctl.state import StateStore
from tests.integration.fault_kit import RUNPOD_UP, RunPodWorld

pytestmark = pytest.mark.integration


def test_gc_ends_a_pod_whose_budget_is_spent(gpuctl, runpod_world: RunPodWorld, isolated: Path) -> None:
    plan = json.loads(gpuctl(*RUNPOD_UP, "--dry-run", "--json", "--idle", "10m").stdout)
    price = plan["offer"]["price_per_hour"]
    limits = plan["limits"]
    assert (limits["enforced_by"], limits["idle_seconds"]) == ("gpuctl", 600)
    assert any("enforced by gpuctl while 'gpuctl top' watches" in note for note in plan["warnings"])
    forecast = plan["cold_start"]
    names = [e["name"] for e in forecast["phases"]]
    assert names[:1] == ["provision"] and "host" not in names, "a pod is provisioned, never reached by SSH"

    budget = round(price * 3 / 3600, 6)  # three seconds of the pod
    result = gpuctl(*RUNPOD_UP, "--name", "capped", "--budget", str(budget), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["budget_usd"] == budget and doc["watchdog_pid"] is None
    assert [p["name"] for p in doc["cold_start"]["phases"]][-3:] == ["provision", "engine", "first_token"]
    ends = datetime.fromisoformat(doc["budget_ends_at"])
    assert 2.0 <= (ends - datetime.fromisoformat(doc["launched_at"])).total_seconds() <= 3.0
    assert runpod_world.pods(), "the pod runs"

    before = json.loads(gpuctl("gc", "--dry-run", "--json").stdout)
    if datetime.now(timezone.utc) < ends:
        assert before == [], "nothing to collect before the budget is spent"
    time.sleep(max(0.0, (ends - datetime.now(timezone.utc)).total_seconds()) + 0.5)
    (leftover,) = json.loads(gpuctl("gc", "--dry-run", "--json").stdout)
    assert (leftover["kind"], leftover["deployment"]) == ("deployment", "capped")
    assert leftover["reason"].startswith("budget $") and " spent at " in leftover["reason"]
    collected = gpuctl("gc", "-y")
    assert collected.exit_code == 0, collected.stderr
    assert runpod_world.pods() == [], "the pod no longer bills"
    assert StateStore(isolated).read().deployments["capped"].status == "terminated"
